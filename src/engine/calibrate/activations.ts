import type { CalibrationSet } from './calibration-data';
import { batchPlan, type Batch } from '../evaluate/batching';
import type { TapPoint, TapReduce } from '../graph/decoder-block';
import type { BlockRunner } from '../model/block-runner';
import type { DecoderRunner } from '../model/decoder-runner';
import { throwIfCancelled } from '../progress';

/**
 * The calibration windows' hidden states at the current block: embedded once, then replaced by each
 * block's output as the sequential loop moves on. Blocks run on them in batches sized like
 * evaluation's; the whole set is one chunk, since every block needs every window.
 */
export class CalibrationActivations {
  private constructor(
    readonly hidden: Float32Array,
    readonly calibration: CalibrationSet,
    private readonly batches: Batch[],
    private readonly hiddenSize: number,
  ) {}

  static async embed(runner: DecoderRunner, calibration: CalibrationSet): Promise<CalibrationActivations> {
    const cfg = runner.config;
    runner.block.checkSequenceLength(calibration.seqlen);
    const hidden = new Float32Array(calibration.ids.length * cfg.hiddenSize);
    await runner.embed(calibration.ids, hidden, calibration.seqlen);
    const batches = batchPlan(cfg, calibration.seqlen, calibration.nsamples, { chunkBytes: Infinity }).chunks[0]!.batches;
    return new CalibrationActivations(hidden, calibration, batches, cfg.hiddenSize);
  }

  /**
   * Runs `block` (as layer `layer`) over every batch (or the batches of the first `windows` windows) and hands each
   * batch's outputs (block output first, then taps) to `each`, with the batch's offset into `hidden`
   * so callers can line up buffers of the same layout. The outputs are the same arrays batch after
   * batch (BlockRunner.run's `reuse`): `each` uses them before it returns and keeps none.
   */
  async forEach(
    block: BlockRunner,
    layer: number,
    weights: Map<string, Float32Array>,
    signal: AbortSignal | undefined,
    each: (outputs: Float32Array[], offset: number, length: number) => Promise<void> | void,
    windows = this.calibration.nsamples,
  ): Promise<void> {
    const { seqlen } = this.calibration;
    const width = seqlen * this.hiddenSize;
    const feeds = block.feeds(weights, layer);
    for (const batch of this.batches) {
      if (batch.offset >= windows) break;
      throwIfCancelled(signal);
      const size = Math.min(batch.size, windows - batch.offset);
      const offset = batch.offset * width;
      const length = size * width;
      await each(await block.run(feeds, this.hidden.subarray(offset, offset + length), size, seqlen, true), offset, length);
    }
  }

  /** Replaces the hidden states with `block`'s output on them. */
  async advance(block: BlockRunner, layer: number, weights: Map<string, Float32Array>, signal: AbortSignal | undefined): Promise<void> {
    await this.forEach(block, layer, weights, signal, ([out], offset) => this.hidden.set(out!, offset));
  }
}

/** Sums of each tap over the batches, in float64. */
export class TapSums {
  private readonly sums = new Map<TapPoint, Float64Array>();

  add(point: TapPoint, tap: Float32Array): void {
    let sum = this.sums.get(point);
    if (!sum) this.sums.set(point, (sum = new Float64Array(tap.length)));
    for (let j = 0; j < tap.length; j++) sum[j]! += tap[j]!;
  }

  /** Wanda's statistic is the mean over sequences of each input column's squared norm; SparseGPT's Hessian is (2/n) Σ X Xᵀ. */
  statistics(reduce: TapReduce, nsamples: number): Map<TapPoint, Float32Array> {
    const scale = reduce === 'gram' ? 2 / nsamples : 1 / nsamples;
    // A plain loop: Float32Array.from with a map function took 14 s per TinyLlama block (its four Gram
    // matrices, 44 M entries), most of it boxing each value and collecting the garbage.
    return new Map(
      [...this.sums].map(([point, sum]) => {
        const out = new Float32Array(sum.length);
        for (let j = 0; j < sum.length; j++) out[j] = sum[j]! * scale;
        return [point, out];
      }),
    );
  }
}
