import * as path from 'node:path';
import { allocationNeedsCalibration, prepareAllocation, type AllocationRequest } from '../allocate/allocation';
import { drawCalibration, type CalibrationRequest } from '../calibrate/calibration-data';
import { PruneLensError } from '../errors';
import { evaluateStage, type PerplexityResult } from '../evaluate/perplexity';
import { OutputFolder, RECORD_FILE } from '../export/output-folder';
import { buildRecord, type PruneRecord } from '../export/record';
import { reportFiles } from '../export/report';
import { TOKEN_LOSSES_FILE, tokenLossesFor, writeTokenLosses, type TokenLosses } from '../export/token-losses';
import type { RuntimeSettings } from '../graph/session';
import { Checkpoint } from '../io/checkpoint';
import { peakRssMb } from '../memory';
import { blockTensorNames, linearWeightNames } from '../model/config';
import type { RunControl } from '../progress';
import { readTextFile } from '../text/text-file';
import { withModelSession } from '../model/model-session';
import { needsCalibration, pruneSequentially } from './sequential';
import { checkSparsity, isTargeted, type PruneSpec } from './spec';

export interface EvaluationRequest {
  file: string;
  seqlen: number;
  maxWindows?: number;
}

export interface PruneModelOptions extends RunControl {
  model: string;
  out: string;
  /** Replace `out` if it holds an earlier PruneLens output. */
  overwrite?: boolean;
  spec: PruneSpec;
  /** Uniform by default. */
  allocation?: AllocationRequest;
  /** Required by Wanda, SparseGPT, OWL and the BESA-style search; magnitude alone needs no data. */
  calibration?: CalibrationRequest;
  evaluation?: EvaluationRequest;
  runtime: RuntimeSettings;
}

/** Refuses option combinations before any work; shared with planning. */
export function checkPruneOptions(spec: PruneSpec, allocation: AllocationRequest, calibration: CalibrationRequest | undefined): void {
  checkSparsity(spec.sparsity);
  if (spec.nm && allocation.kind !== 'uniform') {
    throw new PruneLensError('usage', `N:M sparsity is the same in every layer; it cannot be combined with the ${allocation.kind} allocation`);
  }
  const needs = needsCalibration(spec.method, spec.update) ? spec.method : allocationNeedsCalibration(allocation) ? `the ${allocation.kind} allocation` : undefined;
  if (needs && !calibration) throw new PruneLensError('usage', `${needs} needs calibration text (--calib FILE)`);
}

/**
 * The whole pruning job: evaluate the dense model, calibrate and prune block by block into a new
 * folder beside the source, read the written model back to measure its sparsity and perplexity,
 * record everything in prunelens.json and a report, and only then move the folder into place.
 * A failure or cancel at any point deletes the partial folder; the source is only ever read.
 */
export async function pruneModel(options: PruneModelOptions): Promise<PruneRecord> {
  const start = performance.now();
  const { spec } = options;
  const allocation = options.allocation ?? { kind: 'uniform' };
  checkPruneOptions(spec, allocation, options.calibration);
  return withModelSession(options.model, options.runtime, async (session) => {
    const { checkpoint, tokenizer, runner } = session;
    const targets = linearWeightNames(checkpoint.config).filter((n) => isTargeted(spec, n));
    if (targets.length === 0) throw new PruneLensError('usage', `no linear weight matches --include ${spec.include.join(',')} / --exclude ${spec.exclude.join(',')}`);
    const evalText = options.evaluation ? await readTextFile(options.evaluation.file) : undefined;
    const evalIds = evalText !== undefined ? tokenizer.encode(evalText) : undefined;
    const calibrated = needsCalibration(spec.method, spec.update) || allocationNeedsCalibration(allocation);
    const calibration = calibrated ? await drawCalibration(tokenizer, options.calibration!) : undefined;
    const evaluate = (weights: Checkpoint, stage: string): Promise<PerplexityResult> => evaluateStage(stage, runner, weights, evalIds!, options.evaluation!, options);
    const output = await OutputFolder.create(checkpoint, options.out, options.overwrite ?? false);
    return output.complete(async () => {
      // The plan is read (or OWL's pass run) first, so a bad plan fails before any evaluation.
      const allocationStart = performance.now();
      const allocator = await prepareAllocation({ ...session, spec, calibration }, allocation, false, options);
      const allocationSeconds = (performance.now() - allocationStart) / 1000;
      const dense = evalIds ? await evaluate(checkpoint, 'evaluate dense') : undefined;
      const pruneStart = performance.now();
      const blockTensors = new Set(blockTensorNames(checkpoint.config));
      for (const name of checkpoint.tensorNames()) if (!blockTensors.has(name)) await output.copy(name);
      const result = await pruneSequentially({ ...session, spec, calibration, output, ladder: allocator.ladder, ratios: allocator.ratios }, options);
      const pruneSeconds = allocationSeconds + (performance.now() - pruneStart) / 1000;
      await output.finishWeights();
      const written = await Checkpoint.open(output.partial);
      try {
        const pruned = evalIds ? await evaluate(written, 'evaluate pruned') : undefined;
        const record = await buildRecord({
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
        });
        await output.writeFile(RECORD_FILE, `${JSON.stringify(record, null, 2)}\n`);
        for (const [name, content] of reportFiles(record, dense && pruned ? { dense: dense.tokenNll, pruned: pruned.tokenNll } : undefined)) {
          await output.writeFile(name, content);
        }
        if (dense && pruned) {
          const { file, seqlen } = options.evaluation!;
          let losses: TokenLosses | undefined;
          try {
            losses = tokenLossesFor(tokenizer, evalText!, file, evalIds!, seqlen, dense.windows, dense.tokenNll, pruned.tokenNll);
          } catch (err) {
            // The inline loss view is an extra: a tokenizer whose spans cannot be placed must not cost the pruned model.
            if (!(err instanceof PruneLensError && err.kind === 'text')) throw err;
            options.onProgress?.({ type: 'warning', message: `no ${TOKEN_LOSSES_FILE}: ${err.message}` });
          }
          if (losses) await writeTokenLosses(path.join(output.partial, TOKEN_LOSSES_FILE), losses);
        }
        await written.close();
        await output.commit();
        return record;
      } finally {
        await written.close();
      }
    });
  });
}
