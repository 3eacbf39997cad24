import type { CalibrationSet } from '../calibrate/calibration-data';
import { batchPlan, type Batch } from '../evaluate/batching';
import type { TapPoint, TapReduce } from '../graph/decoder-block';
import { LINEAR_INPUT } from '../graph/decoder-block';
import type { OpRegistry } from '../graph/op-registry';
import type { RuntimeSettings } from '../graph/session';
import type { Checkpoint } from '../io/checkpoint';
import { BlockRunner } from '../model/block-runner';
import { blockTensorShapes, layerPrefix, LINEARS } from '../model/config';
import type { DecoderRunner } from '../model/decoder-runner';
import type { OutputFolder } from '../export/output-folder';
import { throwIfCancelled, type RunControl } from '../progress';
import { magnitudePrune, wandaPrune } from './score-prune';
import { sparseGpt } from './sparsegpt';
import { isTargeted, type Method, type PruneSpec } from './spec';

/** What each method needs to know about a linear's inputs, reduced inside ORT. */
const STATISTIC: Record<Method, TapReduce | undefined> = {
  magnitude: undefined,
  wanda: 'sumsq',
  sparsegpt: 'gram',
};

export function needsCalibration(method: Method): boolean {
  return STATISTIC[method] !== undefined;
}

export interface LayerRecord {
  layer: number;
  seconds: number;
  pruned: string[];
}

export interface SequentialContext {
  checkpoint: Checkpoint;
  runner: DecoderRunner;
  ops: OpRegistry;
  runtime: RuntimeSettings;
  spec: PruneSpec;
  calibration?: CalibrationSet;
  output: OutputFolder;
}

/**
 * The sequential layer loop of the references (SparseGPT's llama.py, Wanda's prune_wanda): the
 * calibration windows are embedded once, then for each decoder block in turn the block runs on them
 * with taps to collect its linears' input statistics, its targeted linears are pruned, the block is
 * written out, and the *pruned* block runs again to give the next block its inputs. Memory is one
 * block's weights plus the calibration hidden states and statistics.
 */
export async function pruneSequentially(ctx: SequentialContext, control: RunControl): Promise<LayerRecord[]> {
  const { checkpoint, runner, spec, calibration, output } = ctx;
  const cfg = checkpoint.config;
  const reduce = STATISTIC[spec.method];
  const calibrated = reduce !== undefined && calibration !== undefined;
  const points: TapPoint[] = ['attn_in', 'o_in', 'mlp_in', 'down_in'];
  const tapRunner = calibrated ? await BlockRunner.create(cfg, ctx.runtime, points.map((point) => ({ point, reduce }))) : undefined;
  try {
    let hidden: Float32Array | undefined;
    let batches: Batch[] = [];
    if (calibrated) {
      runner.block.checkSequenceLength(calibration.seqlen);
      hidden = new Float32Array(calibration.ids.length * cfg.hiddenSize);
      runner.embed(calibration.ids, hidden);
      batches = batchPlan(cfg, calibration.seqlen, calibration.nsamples, { chunkBytes: Infinity }).chunks[0]!.batches;
    }
    const records: LayerRecord[] = [];
    for (let layer = 0; layer < cfg.numLayers; layer++) {
      throwIfCancelled(control.signal);
      const start = performance.now();
      const prefix = layerPrefix(layer);
      const weights = await checkpoint.readBlock(layer);
      const stats = tapRunner && hidden ? await collectStatistics(tapRunner, weights, hidden, batches, calibration!, points) : undefined;
      const pruned: string[] = [];
      for (const linear of LINEARS) {
        const name = `${linear}.weight`;
        if (!isTargeted(spec, prefix + name)) continue;
        throwIfCancelled(control.signal);
        const [rows, cols] = blockTensorShapes(cfg).get(name)!;
        const stat = stats?.get(LINEAR_INPUT[linear]);
        weights.set(name, await pruneLinear(ctx, weights.get(name)!, rows!, cols!, stat, prefix + name, control));
        pruned.push(prefix + name);
      }
      for (const [name, values] of weights) await output.write(prefix + name, values);
      if (hidden && layer < cfg.numLayers - 1) await propagate(runner.block, weights, hidden, batches, calibration!.seqlen, control);
      records.push({ layer, seconds: (performance.now() - start) / 1000, pruned });
      control.onProgress?.({ type: 'stage', stage: 'prune', done: layer + 1, total: cfg.numLayers, detail: `block ${layer + 1}/${cfg.numLayers}` });
    }
    return records;
  } finally {
    await tapRunner?.release();
  }
}

function pruneLinear(
  ctx: SequentialContext,
  weight: Float32Array,
  rows: number,
  cols: number,
  stat: Float32Array | undefined,
  where: string,
  control: RunControl,
): Promise<Float32Array> {
  const { ops, spec } = ctx;
  switch (spec.method) {
    case 'magnitude':
      return magnitudePrune(ops, weight, rows, cols, spec.sparsity, spec.nm);
    case 'wanda':
      return wandaPrune(ops, weight, rows, cols, stat!, spec.sparsity, spec.nm);
    case 'sparsegpt':
      return sparseGpt(ops, weight, rows, cols, stat!, { sparsity: spec.sparsity, nm: spec.nm, blocksize: spec.blocksize, percdamp: spec.percdamp }, where, control.log);
  }
}

/**
 * Runs the dense block over every calibration window and sums its taps. Wanda's statistic is the mean
 * over sequences of each input column's squared norm; SparseGPT's Hessian is (2/n) Σ X Xᵀ.
 */
async function collectStatistics(
  tapRunner: BlockRunner,
  weights: Map<string, Float32Array>,
  hidden: Float32Array,
  batches: Batch[],
  calibration: CalibrationSet,
  points: TapPoint[],
): Promise<Map<TapPoint, Float32Array>> {
  const { seqlen, nsamples } = calibration;
  const d = tapRunner.config.hiddenSize;
  const feeds = tapRunner.feeds(weights);
  const sums = new Map<TapPoint, Float64Array>();
  for (const batch of batches) {
    const slice = hidden.subarray(batch.offset * seqlen * d, (batch.offset + batch.size) * seqlen * d);
    const [, ...taps] = await tapRunner.run(feeds, slice, batch.size, seqlen);
    for (const [i, point] of points.entries()) {
      const tap = taps[i]!;
      let sum = sums.get(point);
      if (!sum) sums.set(point, (sum = new Float64Array(tap.length)));
      for (let j = 0; j < tap.length; j++) sum[j]! += tap[j]!;
    }
  }
  const scale = tapRunner.taps[0]!.reduce === 'gram' ? 2 / nsamples : 1 / nsamples;
  return new Map([...sums].map(([point, sum]) => [point, Float32Array.from(sum, (v) => v * scale)]));
}

/** Replaces the calibration hidden states with the (pruned) block's output. */
async function propagate(block: BlockRunner, weights: Map<string, Float32Array>, hidden: Float32Array, batches: Batch[], seqlen: number, control: RunControl): Promise<void> {
  const d = block.config.hiddenSize;
  const feeds = block.feeds(weights);
  for (const batch of batches) {
    throwIfCancelled(control.signal);
    const slice = hidden.subarray(batch.offset * seqlen * d, (batch.offset + batch.size) * seqlen * d);
    const [out] = await block.run(feeds, slice, batch.size, seqlen);
    slice.set(out!);
  }
}
