import { drawCalibration, type CalibrationRequest } from '../calibrate/calibration-data';
import { PruneLensError } from '../errors';
import { evaluatePerplexity, type PerplexityResult } from '../evaluate/perplexity';
import { OutputFolder, RECORD_FILE } from '../export/output-folder';
import { buildRecord, type PruneRecord } from '../export/record';
import { renderReport, REPORT_FILE } from '../export/report';
import { OpRegistry } from '../graph/op-registry';
import type { RuntimeSettings } from '../graph/session';
import { Checkpoint } from '../io/checkpoint';
import { peakRssMb } from '../memory';
import { blockTensorNames, linearWeightNames } from '../model/config';
import { DecoderRunner } from '../model/decoder-runner';
import type { RunControl } from '../progress';
import { readTextFile } from '../text/text-file';
import { TextTokenizer } from '../text/tokenizer';
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
  /** Required by Wanda and SparseGPT; magnitude needs no data. */
  calibration?: CalibrationRequest;
  evaluation?: EvaluationRequest;
  runtime: RuntimeSettings;
}

/**
 * The whole pruning job: evaluate the dense model, calibrate and prune block by block into a new
 * folder beside the source, read the written model back to measure its sparsity and perplexity,
 * record everything in prunelens.json and a report, and only then move the folder into place.
 * A failure or cancel at any point deletes the partial folder; the source is only ever read.
 */
export async function pruneModel(options: PruneModelOptions): Promise<PruneRecord> {
  const start = performance.now();
  const { spec, runtime } = options;
  checkSparsity(spec.sparsity);
  if (needsCalibration(spec.method) && !options.calibration) {
    throw new PruneLensError('usage', `${spec.method} needs calibration text (--calib FILE)`);
  }
  const checkpoint = await Checkpoint.open(options.model);
  try {
    const targets = linearWeightNames(checkpoint.config).filter((n) => isTargeted(spec, n));
    if (targets.length === 0) throw new PruneLensError('usage', `no linear weight matches --include ${spec.include.join(',')} / --exclude ${spec.exclude.join(',')}`);
    const tokenizer = await TextTokenizer.load(checkpoint.dir);
    const evalIds = options.evaluation ? tokenizer.encode(await readTextFile(options.evaluation.file)) : undefined;
    const calibration = needsCalibration(spec.method) ? await drawCalibration(tokenizer, options.calibration!) : undefined;
    const runner = await DecoderRunner.create(checkpoint, runtime);
    const ops = new OpRegistry(runtime);
    try {
      const evaluate = (weights: Checkpoint, stage: string): Promise<PerplexityResult> =>
        evaluatePerplexity(runner, weights, evalIds!, {
          ...options.evaluation!,
          source: options.evaluation!.file,
          signal: options.signal,
          onProgress: (e) => options.onProgress?.(e.type === 'stage' ? { ...e, stage } : e),
        });
      const output = await OutputFolder.create(checkpoint, options.out, options.overwrite ?? false);
      try {
        const dense = evalIds ? await evaluate(checkpoint, 'evaluate dense') : undefined;
        const pruneStart = performance.now();
        const blockTensors = new Set(blockTensorNames(checkpoint.config));
        for (const name of checkpoint.tensorNames()) if (!blockTensors.has(name)) await output.copy(name);
        const layers = await pruneSequentially({ checkpoint, runner, ops, runtime, spec, calibration, output }, options);
        const pruneSeconds = (performance.now() - pruneStart) / 1000;
        await output.finishWeights();
        const written = await Checkpoint.open(output.partial);
        try {
          const pruned = evalIds ? await evaluate(written, 'evaluate pruned') : undefined;
          const record = await buildRecord({
            source: checkpoint,
            written,
            out: output.out,
            spec,
            targets,
            calibration,
            evaluation: options.evaluation,
            dense,
            pruned,
            layers,
            seconds: { total: (performance.now() - start) / 1000, prune: pruneSeconds },
            peakRssMb: peakRssMb(),
          });
          await output.writeFile(RECORD_FILE, `${JSON.stringify(record, null, 2)}\n`);
          await output.writeFile(REPORT_FILE, renderReport(record));
          await written.close();
          await output.commit();
          return record;
        } finally {
          await written.close();
        }
      } catch (err) {
        await output.abort();
        throw err;
      }
    } finally {
      await Promise.all([ops.release(), runner.release()]);
    }
  } finally {
    await checkpoint.close();
  }
}
