import assert from 'node:assert/strict';
import type { Checkpoint } from '../../src/engine/io/checkpoint';
import type { DecoderRunner } from '../../src/engine/model/decoder-runner';

/** The largest elementwise difference of two equal-length arrays. */
export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

/** The engine's logits for a batch of equal-length sequences, block by block. */
export async function engineLogits(runner: DecoderRunner, checkpoint: Checkpoint, sequences: number[][]): Promise<Float32Array> {
  const seq = sequences[0]!.length;
  const hidden = new Float32Array(sequences.length * seq * runner.config.hiddenSize);
  await runner.embed(sequences.flat(), hidden, seq);
  let h: Float32Array = hidden;
  for (let layer = 0; layer < runner.config.numLayers; layer++) {
    [h] = (await runner.block.run(runner.block.feeds(await checkpoint.readBlock(layer), layer), h, sequences.length, seq)) as [Float32Array];
  }
  return runner.logits(h, sequences.length, seq);
}
