/**
 * Every family's graph against its independent float64 forward (test/reference/*-f64.ts, written from
 * the Hugging Face modeling code): random-weight checkpoints with the family's real config fields,
 * dimensions scaled down and every feature switched on, logits compared for lengths 1, 7 and 200
 * and for a batch.
 */
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { Checkpoint } from '../../../src/engine/io/checkpoint';
import { DecoderRunner } from '../../../src/engine/model/decoder-runner';
import { loadF32Tensors } from '../../reference/safetensors-minimal';
import { tempDir } from '../../helpers/fixtures';
import { seededRandom } from '../../helpers/seeded-random';
import { writeTinyCheckpoint } from '../../helpers/tiny-checkpoint';
import { FAMILY_CASES } from '../../helpers/family-configs';

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

/** The engine's logits for a batch of equal-length sequences, block by block. */
async function engineLogits(runner: DecoderRunner, checkpoint: Checkpoint, sequences: number[][]): Promise<Float32Array> {
  const seq = sequences[0]!.length;
  const hidden = new Float32Array(sequences.length * seq * runner.config.hiddenSize);
  runner.embed(sequences.flat(), hidden);
  let h: Float32Array = hidden;
  for (let layer = 0; layer < runner.config.numLayers; layer++) {
    [h] = (await runner.block.run(runner.block.feeds(await checkpoint.readBlock(layer), layer), h, sequences.length, seq)) as [Float32Array];
  }
  return runner.logits(h, sequences.length, seq);
}

function randomIds(n: number, vocab: number, seed: number): number[] {
  const random = seededRandom(seed);
  return Array.from({ length: n }, () => Math.floor(random() * vocab));
}

describe('model families: engine logits against the float64 references', () => {
  for (const [name, { config, reference }] of Object.entries(FAMILY_CASES)) {
    it(`${name}: lengths 1, 7, 200 and a batch agree to 1e-4`, async () => {
      const dir = path.join(tempDir(), 'model');
      await writeTinyCheckpoint(dir, config, 11);
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
    });
  }
});
