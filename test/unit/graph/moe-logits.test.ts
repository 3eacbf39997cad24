/**
 * Every MoE family's graph against its independent float64 forward (test/reference/moe-f64.ts, which
 * routes token by token as the Hugging Face code does): random-weight checkpoints, logits compared
 * for lengths 1, 7 and 200 and for a batch.
 */
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { Checkpoint } from '../../../src/engine/io/checkpoint';
import { DecoderRunner } from '../../../src/engine/model/decoder-runner';
import { loadF32Tensors } from '../../reference/safetensors-minimal';
import { moeLogits } from '../../reference/moe-f64';
import { tempDir } from '../../helpers/fixtures';
import { seededRandom } from '../../helpers/seeded-random';
import { writeTinyCheckpoint } from '../../helpers/tiny-checkpoint';
import { MOE_CASES } from '../../helpers/moe-configs';
import { engineLogits, maxAbsDiff } from '../../helpers/engine-logits';

function randomIds(n: number, vocab: number, seed: number): number[] {
  const random = seededRandom(seed);
  return Array.from({ length: n }, () => Math.floor(random() * vocab));
}

describe('MoE families: engine logits against the float64 references', () => {
  for (const [name, config] of Object.entries(MOE_CASES)) {
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
          const diff = maxAbsDiff(await engineLogits(runner, checkpoint, [ids]), moeLogits(config, w, ids));
          assert.ok(diff < 1e-4, `length ${len}: max abs logit difference ${diff}`);
        }
        const batch = [randomIds(24, vocab, 1), randomIds(24, vocab, 2), randomIds(24, vocab, 3)];
        const logits = await engineLogits(runner, checkpoint, batch);
        batch.forEach((ids, b) => {
          const diff = maxAbsDiff(logits.subarray(b * 24 * vocab, (b + 1) * 24 * vocab), moeLogits(config, w, ids));
          assert.ok(diff < 1e-4, `batch row ${b}: max abs logit difference ${diff}`);
        });
      } finally {
        await runner.release();
        await checkpoint.close();
      }
    });
  }
});
