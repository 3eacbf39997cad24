import { createHash } from 'node:crypto';
import { promises as fs, statSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import * as path from 'node:path';
import { allocationNeedsCalibration, checkAllocationFor, prepareAllocation, type AllocationRequest, type Allocator } from '../allocate/allocation';
import { linearRatio, type ErrorTable, type Plan } from '../allocate/plan';
import { checkCalibrationRequest, drawCalibration, type CalibrationRequest, type CalibrationSet } from '../calibrate/calibration-data';
import { PruneLensError } from '../errors';
import type { PerplexityResult } from '../evaluate/perplexity';
import { OutputFolder } from '../export/output-folder';
import { buildRecord, type PruneRecord } from '../export/record';
import { reportFiles } from '../export/report';
import type { ResumeJournal } from '../export/resume-journal';
import type { RuntimeSettings } from '../graph/session';
import type { Checkpoint } from '../io/checkpoint';
import { peakRssMb } from '../memory';
import { evaluationWindowsAtMost, type MemoryJob } from '../memory-plan';
import { blockTensorNames, checkTokenIds, linearWeightNames } from '../model/config';
import type { RunControl } from '../progress';
import { encodeText } from '../text/encode-text';
import { readTextFile } from '../text/text-file';
import { withModelSession, type MemoryRequest } from '../model/model-session';
import { methodOf, needsCalibration, statisticOf } from './methods';
import { checkCalibrationMemory, checkWritable, evaluateDense, finishJob, type EvaluationRequest, type EvaluationText } from './prune-job';
import { pruneSequentially, type BlockProgress, type LayerRecord } from './sequential';
import { checkSparsity, isTargeted, type PruneSpec } from './spec';

export type { EvaluationRequest } from './prune-job';

export interface PruneModelOptions extends RunControl {
  model: string;
  out: string;
  /** Replace `out` if it holds an earlier PruneLens output (and nothing else; see README, "Output safety"). */
  overwrite?: boolean;
  /**
   * Continue the unfinished output a killed run of the same job left (same model, texts, options and
   * threads) from its last completed block; the result is bit-identical to an uninterrupted run.
   */
  resume?: boolean;
  spec: PruneSpec;
  /** Uniform by default. */
  allocation?: AllocationRequest;
  /** Required by Wanda, SparseGPT, OWL and the BESA-style search; magnitude alone needs no data. */
  calibration?: CalibrationRequest;
  evaluation?: EvaluationRequest;
  /**
   * The dense model's evaluation of this same text and seqlen, made earlier (the extension keeps it):
   * used instead of evaluating the dense model again. Refused if it does not fit the text.
   */
  dense?: PerplexityResult;
  runtime: RuntimeSettings;
}

/** Refuses option combinations before any work; shared with planning. */
export function checkPruneOptions(spec: PruneSpec, allocation: AllocationRequest, calibration: CalibrationRequest | undefined): void {
  checkSparsity(spec.sparsity);
  methodOf(spec.method).validate?.(spec);
  if (spec.nm && allocation.kind !== 'uniform') {
    throw new PruneLensError('usage', `N:M sparsity is the same in every layer; it cannot be combined with the ${allocation.kind} allocation`);
  }
  const needs = needsCalibration(spec) ? spec.method : allocationNeedsCalibration(allocation) ? `the ${allocation.kind} allocation` : undefined;
  if (needs && !calibration) throw new PruneLensError('usage', `${needs} needs calibration text (--calib FILE)`);
  if (calibration) checkCalibrationRequest(calibration);
}

/** What a resumed run finds in the journal; each field is set once its stage is done. */
interface PruneProgress {
  calibration?: Omit<CalibrationSet, 'ids'>;
  evalTokens?: number;
  plan?: Plan;
  allocationSeconds?: number;
  dense?: Omit<PerplexityResult, 'tokenNll'>;
  copied?: boolean;
  layers?: LayerRecord[];
  errors?: ErrorTable;
  blocksDone?: number;
  blocksTotal?: number;
}

/**
 * The whole pruning job: evaluate the dense model, calibrate and prune block by block into a new
 * folder beside the source, read the written model back to measure its sparsity and perplexity,
 * record everything in prunelens.json and a report, and only then move the folder into place.
 * Every check that needs no tokenizing or model run comes first. Each stage and each block is
 * journalled in the partial folder, so a killed run can be resumed; a failure or cancel deletes it.
 */
export async function pruneModel(options: PruneModelOptions): Promise<PruneRecord> {
  const start = performance.now();
  const { spec } = options;
  const allocation = options.allocation ?? { kind: 'uniform' };
  checkPruneOptions(spec, allocation, options.calibration);
  const calibrated = needsCalibration(spec) || allocationNeedsCalibration(allocation);
  const memory: MemoryRequest = { job: () => memoryJob(options, allocation, calibrated), onProgress: options.onProgress };
  return withModelSession(options.model, options.runtime, async (session) => {
    const { checkpoint, tokenizer } = session;
    const cfg = checkpoint.config;
    checkAllocationFor(cfg, allocation, checkpoint.dir);
    const targets = linearWeightNames(cfg).filter((n) => isTargeted(spec, n));
    if (targets.length === 0) throw new PruneLensError('usage', `no linear weight matches --include ${spec.include.join(',')} / --exclude ${spec.exclude.join(',')}`);
    checkWritable(checkpoint);
    const calibrationRequest = calibrated ? options.calibration! : undefined;
    const hiddenBytes = calibrationRequest ? checkCalibrationMemory(calibrationRequest, cfg) : 0;
    // Texts are read (and checked as UTF-8 text) now; tokenizing them is the slow part and comes later.
    const evalText = options.evaluation ? await readTextFile(options.evaluation.file) : undefined;
    const calibrationBytes = calibrationRequest ? await readInput(calibrationRequest.file, 'text') : undefined;
    const planBytes = allocation.kind === 'plan' ? await readInput(allocation.file, 'usage') : undefined;
    const early = allocation.kind === 'uniform' || allocation.kind === 'plan' ? await prepareAllocation({ ...session, spec }, allocation, false, options) : undefined;
    const fingerprint = {
      source: await sourceFingerprint(checkpoint),
      spec,
      allocation: allocation.kind === 'plan' ? { kind: 'plan', file: allocation.file, sha256: sha256(planBytes!) } : allocation,
      calibration: calibrationRequest ? { ...calibrationRequest, sha256: sha256(calibrationBytes!) } : null,
      evaluation: options.evaluation && evalText !== undefined ? { ...options.evaluation, sha256: sha256(Buffer.from(evalText)) } : null,
      // ORT's results depend on the thread count; a resumed run must use the same to be bit-identical.
      runtime: { provider: options.runtime.provider, threads: options.runtime.threads ?? availableParallelism() },
    };
    const inputs = [options.evaluation?.file, calibrationRequest?.file, allocation.kind === 'plan' ? allocation.file : undefined].filter((f): f is string => f !== undefined);
    const output = await OutputFolder.create(checkpoint, options.out, options.overwrite ?? false, undefined, {
      resume: options.resume,
      fingerprint,
      inputs,
      extraBytes: 2 * hiddenBytes,
      log: options.log,
    });
    return output.complete(async () => {
      const journal = output.journal!;
      const done = journal.progress as PruneProgress;
      const save = (progress: PruneProgress): Promise<void> => output.checkpoint(progress as Record<string, unknown>);

      let evalIds: Int32Array | undefined;
      if (options.evaluation) {
        evalIds = done.evalTokens !== undefined ? await loadArray(journal, 'eval-ids', 'i32') : undefined;
        if (!evalIds) {
          evalIds = await encodeText(tokenizer, evalText!, { ...options, source: options.evaluation.file });
          checkTokenIds(evalIds, cfg, options.evaluation.file);
          await journal.saveArray('eval-ids', evalIds);
          await save({ evalTokens: evalIds.length });
        }
      }
      let calibration: CalibrationSet | undefined;
      if (calibrationRequest) {
        const ids = done.calibration ? await loadArray(journal, 'calibration-ids', 'i32') : undefined;
        if (done.calibration && ids) {
          calibration = { ...done.calibration, ids };
        } else {
          calibration = await drawCalibration(tokenizer, calibrationRequest, options, cfg);
          const { ids: drawn, ...rest } = calibration;
          await journal.saveArray('calibration-ids', drawn);
          await save({ calibration: rest });
        }
      }
      const evaluation: EvaluationText | undefined = evalIds && { request: options.evaluation!, text: evalText!, ids: evalIds };

      // The allocation is made (or OWL's pass run) before any evaluation, and kept for a resumed run.
      let allocator: Allocator;
      let allocationSeconds = done.allocationSeconds ?? 0;
      if (done.plan) {
        allocator = allocatorOf(done.plan);
      } else {
        const allocationStart = performance.now();
        allocator = early ?? (await prepareAllocation({ ...session, spec, calibration }, allocation, false, options));
        allocationSeconds = (performance.now() - allocationStart) / 1000;
        await save({ plan: allocator.plan({ layers: [] }), allocationSeconds });
      }

      let dense: PerplexityResult | undefined;
      if (evalIds) {
        const nll = done.dense ? await loadArray(journal, 'dense-nll', 'f32') : undefined;
        if (done.dense && nll) {
          dense = { ...done.dense, tokenNll: nll };
        } else {
          dense = await evaluateDense(session, evaluation!, options, options.dense);
          const { tokenNll, ...rest } = dense;
          await journal.saveArray('dense-nll', tokenNll);
          await save({ dense: rest });
        }
      }

      const pruneStart = performance.now();
      const blockTensors = new Set(blockTensorNames(cfg));
      for (const name of checkpoint.tensorNames()) if (!blockTensors.has(name) && !output.isWritten(name)) await output.copy(name);
      if (!done.copied) await save({ copied: true, blocksDone: 0, blocksTotal: cfg.numLayers });

      const resume = await resumeState(journal, done, calibration !== undefined);
      const result = await pruneSequentially(
        {
          ...session,
          spec,
          calibration,
          output,
          ladder: allocator.ladder,
          ratios: allocator.ratios,
          resume,
          onBlockDone: async ({ layers, errors, hidden }: BlockProgress) => {
            if (hidden) await journal.saveArray(`hidden-${layers.length}`, hidden);
            await save({ layers, errors, blocksDone: layers.length, blocksTotal: cfg.numLayers });
            await journal.removeArray(`hidden-${layers.length - 1}`);
          },
        },
        options,
      );
      const pruneSeconds = allocationSeconds + (performance.now() - pruneStart) / 1000 + (done.layers ?? []).reduce((n, l) => n + l.seconds, 0);
      return finishJob(
        {
          output,
          session,
          evaluation,
          dense,
          record: (written, pruned) =>
            buildRecord({
              source: checkpoint,
              written,
              out: output.out,
              spec,
              plan: allocator.plan(result),
              targets,
              calibration,
              evaluation: options.evaluation,
              dense,
              pruned,
              layers: result.layers,
              seconds: { total: (performance.now() - start) / 1000, prune: pruneSeconds },
              peakRssMb: peakRssMb(),
              predictedPeakMb: session.memory!.peakBytes / 2 ** 20,
            }),
          report: reportFiles,
        },
        options,
      );
    });
  }, memory);
}

/** What the run will hold, from its options alone (the evaluation text's size bounds its windows). */
function memoryJob(options: PruneModelOptions, allocation: AllocationRequest, calibrated: boolean): MemoryJob {
  const { spec, evaluation, calibration } = options;
  const textBytes = evaluation ? (statSync(evaluation.file, { throwIfNoEntry: false })?.size ?? 0) : 0;
  return {
    evalWindows: evaluation ? evaluationWindowsAtMost(textBytes, evaluation.seqlen, evaluation.maxWindows) : 0,
    evalSeqlen: evaluation?.seqlen ?? 0,
    prune: {
      statistic: statisticOf(spec),
      nsamples: calibrated ? calibration!.nsamples : 0,
      seqlen: calibrated ? calibration!.seqlen : 0,
      admm: spec.method === 'alps' || spec.update !== undefined,
      blockErrors: allocation.kind === 'besa',
    },
  };
}

/** The loop's state from the journal: the blocks done and the hidden states saved after the last of them. */
async function resumeState(journal: ResumeJournal, done: PruneProgress, calibrated: boolean): Promise<BlockProgress | undefined> {
  const layers = done.layers ?? [];
  if (layers.length === 0) return undefined;
  const hidden = calibrated && layers.length < (done.blocksTotal ?? Infinity) ? await loadArray(journal, `hidden-${layers.length}`, 'f32') : undefined;
  if (calibrated && layers.length < (done.blocksTotal ?? Infinity) && !hidden) {
    throw new PruneLensError('output', `cannot resume: the saved calibration hidden states for block ${layers.length} are missing; run without --resume to start over`, journal.dir);
  }
  return { layers, errors: done.errors, hidden };
}

async function loadArray(journal: ResumeJournal, name: string, type: 'f32' | 'i32'): Promise<Float32Array | Int32Array | undefined>;
async function loadArray(journal: ResumeJournal, name: string, type: 'i32'): Promise<Int32Array | undefined>;
async function loadArray(journal: ResumeJournal, name: string, type: 'f32'): Promise<Float32Array | undefined>;
async function loadArray(journal: ResumeJournal, name: string, type: 'f32' | 'i32'): Promise<Float32Array | Int32Array | undefined> {
  return type === 'f32' ? journal.loadF32(name) : journal.loadI32(name);
}

/** An allocator that prunes by a plan made earlier (OWL's pass is not repeated on resume). */
function allocatorOf(plan: Plan): Allocator {
  return {
    ratios: (layer, linears) => Object.fromEntries(linears.map((l) => [l, linearRatio(plan, layer, l)])),
    plan: () => plan,
  };
}

async function readInput(file: string, kind: 'text' | 'usage'): Promise<Buffer> {
  return fs.readFile(file).catch((err: NodeJS.ErrnoException) => {
    throw new PruneLensError(kind, err.code === 'ENOENT' ? 'file not found' : err.code === 'EISDIR' ? 'is a folder, not a file' : `cannot read: ${err.message}`, file);
  });
}

function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** The source as a resumed run must find it again: its real folder and each file's size and modification time. */
async function sourceFingerprint(checkpoint: Checkpoint): Promise<Record<string, unknown>> {
  const files: Record<string, [number, number]> = {};
  for (const file of [...checkpoint.files, path.join(checkpoint.dir, 'config.json'), path.join(checkpoint.dir, 'tokenizer.json')]) {
    const stat = await fs.stat(file).catch(() => undefined);
    if (stat) files[path.basename(file)] = [stat.size, stat.mtimeMs];
  }
  return { dir: await fs.realpath(checkpoint.dir), files };
}


