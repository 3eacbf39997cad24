import assert from 'node:assert/strict';
import * as path from 'node:path';
import { Checkpoint } from '../../src/engine/io/checkpoint';
import { DecoderRunner } from '../../src/engine/model/decoder-runner';
import type { RefWeights } from '../reference/llama-f64';
import { loadF32Tensors } from '../reference/safetensors-minimal';
import { tempDir } from './fixtures';
import { seededRandom } from './seeded-random';
import { writeTinyCheckpoint } from './tiny-checkpoint';

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

/** A float64 forward written for the tests: logits [ids.length, vocab] from the checkpoint's tensors. */
export type ReferenceLogits = (config: Record<string, unknown>, w: RefWeights, ids: number[]) => Float64Array;

function randomIds(n: number, vocab: number, seed: number): number[] {
  const random = seededRandom(seed);
  return Array.from({ length: n }, () => Math.floor(random() * vocab));
}

/**
 * Writes a random-weight checkpoint of `config` and asserts that the engine's logits equal
 * `reference`'s to 1e-4 for lengths 1, 7 and 200 and for a batch of three.
 */
export async function assertLogitsMatchReference(config: Record<string, unknown>, reference: ReferenceLogits, renameTensor?: (name: string) => string): Promise<void> {
  const dir = path.join(tempDir(), 'model');
  await writeTinyCheckpoint(dir, config, 11, renameTensor);
  const tensors = loadF32Tensors(path.join(dir, 'model.safetensors'));
  const w = (n: string) => tensors.get(n);
  const checkpoint = await Checkpoint.open(dir);
  const runner = await DecoderRunner.create(checkpoint, { provider: 'cpu' });
  try {
    const vocab = config.vocab_size as number;
    const long = randomIds(200, vocab, 5);
    for (const len of [1, 7, 200]) {
      const ids = long.slice(0, len);
      const diff = maxAbsDiff(await engineLogits(runner, checkpoint, [ids]), reference(config, w, ids));
      assert.ok(diff < 1e-4, `length ${len}: max abs logit difference ${diff}`);
    }
    const batch = [randomIds(24, vocab, 1), randomIds(24, vocab, 2), randomIds(24, vocab, 3)];
    const logits = await engineLogits(runner, checkpoint, batch);
    batch.forEach((ids, b) => {
      const diff = maxAbsDiff(logits.subarray(b * 24 * vocab, (b + 1) * 24 * vocab), reference(config, w, ids));
      assert.ok(diff < 1e-4, `batch row ${b}: max abs logit difference ${diff}`);
    });
  } finally {
    await runner.release();
    await checkpoint.close();
  }
}
