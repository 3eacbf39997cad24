/**
 * The bench's random-weight checkpoints: read back through the engine's own reader, they hold the
 * initialisation transformers gives (normal(0, 0.02) weights, norms at 1), the same bytes for the
 * same seed, and a forward pass over them stays finite.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { evaluateModel } from '../../../src/engine/evaluate/evaluate-model';
import { Checkpoint } from '../../../src/engine/io/checkpoint';
import { normalQuantile, writeRandomCheckpoint, type RandomDType } from '../../../scripts/random-checkpoint';
import { EVAL_TEXT, FIXTURE_MODEL, tempDir } from '../../helpers/fixtures';
import { MOE_CASES } from '../../helpers/moe-configs';

// The embedded tokenizer's 512 ids must be rows of the embedding.
const CONFIG = { ...MOE_CASES.qwen3_moe!, vocab_size: 512 };

async function write(dtype: RandomDType, seed: number): Promise<string> {
  const dir = path.join(tempDir(), 'model');
  await writeRandomCheckpoint(dir, CONFIG, { dtype, seed, tokenizerFrom: FIXTURE_MODEL });
  return dir;
}

describe('random checkpoints', () => {
  it('the quantile function matches known normal quantiles', () => {
    for (const [p, z] of [[0.5, 0], [0.975, 1.959963984540054], [0.8413447460685429, 1], [1e-5, -4.264890793922825], [0.02, -2.053748910631823]] as const) {
      assert.ok(Math.abs(normalQuantile(p) - z) < 1e-8, `quantile(${p}) = ${normalQuantile(p)}, expected ${z}`);
    }
  });

  for (const dtype of ['BF16', 'F32'] as const) {
    it(`${dtype}: weights are normal(0, 0.02), norms 1, each tensor its own draw`, async () => {
      const checkpoint = await Checkpoint.open(await write(dtype, 7));
      try {
        assert.equal(checkpoint.dtype, dtype);
        const embed = await checkpoint.readF32('model.embed_tokens.weight');
        let sum = 0;
        let sumsq = 0;
        let withinOne = 0;
        let largest = 0;
        for (const v of embed) {
          sum += v;
          sumsq += v * v;
          if (Math.abs(v) < 0.02) withinOne++;
          largest = Math.max(largest, Math.abs(v));
        }
        const n = embed.length;
        const std = Math.sqrt(sumsq / n);
        // Sampling error of a mean of n normals is 0.02 / sqrt(n) (0.00007 here); 5 of those is far outside chance.
        assert.ok(Math.abs(sum / n) < (5 * 0.02) / Math.sqrt(n), `mean ${sum / n}`);
        assert.ok(Math.abs(std / 0.02 - 1) < 0.01, `std ${std}`);
        assert.ok(Math.abs(withinOne / n - 0.6827) < 0.01, `${withinOne / n} within one std`);
        assert.ok(largest < 4.3 * 0.02 && largest > 3 * 0.02, `largest |w| ${largest}`);
        const block = await checkpoint.readBlock(0);
        for (const [name, values] of block) if (name.endsWith('norm.weight')) assert.ok(values.every((v) => v === 1), name);
        const a = block.get('mlp.experts.0.gate_proj.weight')!;
        const b = block.get('mlp.experts.1.gate_proj.weight')!;
        assert.notDeepEqual(a, b);
      } finally {
        await checkpoint.close();
      }
    });
  }

  it('the same seed writes the same bytes, another seed others', async () => {
    const read = async (seed: number) => fs.readFileSync(path.join(await write('BF16', seed), 'model.safetensors'));
    const [a, b, c] = [await read(3), await read(3), await read(4)];
    assert.ok(a.equals(b));
    assert.equal(a.length, c.length);
    assert.ok(!a.equals(c));
  });

  it('a forward pass over the random weights is finite, near the uniform perplexity of the vocabulary', async () => {
    const result = await evaluateModel({ model: await write('BF16', 1), textFile: EVAL_TEXT, seqlen: 64, maxWindows: 4, runtime: { provider: 'cpu' } });
    assert.ok(Number.isFinite(result.ppl), `ppl ${result.ppl}`);
    // Initial logits are nearly flat: within a few percent of the 512-way uniform perplexity.
    assert.ok(Math.abs(result.ppl / 512 - 1) < 0.1, `ppl ${result.ppl}`);
  });
});
