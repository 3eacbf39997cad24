import assert from 'node:assert/strict';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Checkpoint } from '../../../src/engine/io/checkpoint';
import { DecoderRunner } from '../../../src/engine/model/decoder-runner';
import { TextTokenizer } from '../../../src/engine/text/tokenizer';
import { referenceBlock, referenceEmbed, referenceLogits, type RefConfig, type RefWeights } from '../../reference/llama-f64';
import { loadF32Tensors } from '../../reference/safetensors-minimal';
import { FIXTURE_MODEL, tempDir } from '../../helpers/fixtures';
import { writeTinyCheckpoint } from '../../helpers/tiny-checkpoint';
import { engineLogits, maxAbsDiff } from '../../helpers/engine-logits';

function refWeights(file: string): RefWeights {
  const tensors = loadF32Tensors(file);
  return (name) => tensors.get(name);
}

describe('decoder graph against an independent float64 forward', () => {
  let checkpoint: Checkpoint;
  let runner: DecoderRunner;
  let cfg: RefConfig;
  let w: RefWeights;
  let tokenizer: TextTokenizer;
  before(async () => {
    checkpoint = await Checkpoint.open(FIXTURE_MODEL);
    runner = await DecoderRunner.create(checkpoint, { provider: 'cpu' });
    cfg = checkpoint.config.raw as unknown as RefConfig;
    w = refWeights(path.join(FIXTURE_MODEL, 'model.safetensors'));
    tokenizer = await TextTokenizer.load(FIXTURE_MODEL);
  });
  after(async () => {
    await runner.release();
    await checkpoint.close();
  });

  it('gives the same logits for single sequences of several lengths (max abs diff < 1e-4)', async () => {
    const text = 'Once upon a time, there was a little dog named Max. He liked to run in the big green park with his friends. One day, ';
    const ids = Array.from(tokenizer.encode(text.repeat(4)));
    for (const len of [1, 7, 64, 200]) {
      const seqIds = ids.slice(0, len);
      const diff = maxAbsDiff(await engineLogits(runner, checkpoint, [seqIds]), referenceLogits(cfg, w, seqIds));
      assert.ok(diff < 1e-4, `length ${len}: max abs logit difference ${diff}`);
    }
  });

  it('keeps sequences in a batch independent', async () => {
    const a = Array.from(tokenizer.encode('The cat sat on the mat and looked at the sun.')).slice(0, 12);
    const b = Array.from(tokenizer.encode('Tom and Sue went to the shop to buy some milk.')).slice(0, 12);
    const batched = await engineLogits(runner, checkpoint, [a, b]);
    const v = cfg.vocab_size;
    assert.ok(maxAbsDiff(batched.subarray(0, 12 * v), referenceLogits(cfg, w, a)) < 1e-4);
    assert.ok(maxAbsDiff(batched.subarray(12 * v), referenceLogits(cfg, w, b)) < 1e-4);
  });

  it('runs one block alone on given hidden states', async () => {
    const ids = Array.from(tokenizer.encode('A bird flew over the tall tree.'));
    const T = ids.length;
    const input = referenceEmbed(cfg, w, ids);
    for (let l = 0; l < cfg.num_hidden_layers - 1; l++) input.set(referenceBlock(cfg, w, l, input, T));
    const layer = cfg.num_hidden_layers - 1;
    const [out] = await runner.block.run(runner.block.feeds(await checkpoint.readBlock(layer), layer), Float32Array.from(input), 1, T);
    const diff = maxAbsDiff(out!, referenceBlock(cfg, w, layer, input, T));
    assert.ok(diff < 1e-5, `block ${layer}: max abs difference ${diff}`);
  });

  it('uses fed weights without rebuilding: zeroing o_proj and down_proj makes the block the identity', async () => {
    const ids = Array.from(tokenizer.encode('Lily had a red ball.'));
    const T = ids.length;
    const input = Float32Array.from(referenceEmbed(cfg, w, ids));
    const weights = await checkpoint.readBlock(0);
    weights.get('self_attn.o_proj.weight')!.fill(0);
    weights.get('mlp.down_proj.weight')!.fill(0);
    const [out] = await runner.block.run(runner.block.feeds(weights, 0), input, 1, T);
    assert.deepEqual(out, input);
  });
});

const FAMILIES: Record<string, Record<string, unknown>> = {
  // Qwen2: q/k/v biases, untied head, a large rope_theta, 3 query heads per key/value head.
  qwen2: {
    model_type: 'qwen2', hidden_size: 48, intermediate_size: 80, num_hidden_layers: 2, num_attention_heads: 6,
    num_key_value_heads: 2, vocab_size: 512, rms_norm_eps: 1e-6, rope_theta: 1000000, tie_word_embeddings: false,
    max_position_embeddings: 128, hidden_act: 'silu',
  },
  mistral: {
    model_type: 'mistral', hidden_size: 32, intermediate_size: 64, num_hidden_layers: 2, num_attention_heads: 4,
    num_key_value_heads: 1, vocab_size: 512, rms_norm_eps: 1e-5, rope_theta: 10000, tie_word_embeddings: false,
    max_position_embeddings: 128, sliding_window: 4096, hidden_act: 'silu',
  },
  // Llama with an explicit head_dim that differs from hidden / heads, and every linear biased.
  'llama (head_dim, biases)': {
    model_type: 'llama', hidden_size: 32, intermediate_size: 48, num_hidden_layers: 2, num_attention_heads: 4,
    num_key_value_heads: 4, head_dim: 16, vocab_size: 512, rms_norm_eps: 1e-5, rope_theta: 500000,
    tie_word_embeddings: true, attention_bias: true, mlp_bias: true, max_position_embeddings: 128, hidden_act: 'silu',
  },
};

describe('model families against the float64 forward', () => {
  for (const [family, config] of Object.entries(FAMILIES)) {
    it(`${family}: logits match`, async () => {
      const dir = path.join(tempDir(), 'model');
      await writeTinyCheckpoint(dir, config, 7);
      const checkpoint = await Checkpoint.open(dir);
      const runner = await DecoderRunner.create(checkpoint, { provider: 'cpu' });
      try {
        const ids = [1, 45, 300, 12, 511, 7, 99, 250, 3, 60, 61, 62];
        const w = refWeights(path.join(dir, 'model.safetensors'));
        const diff = maxAbsDiff(await engineLogits(runner, checkpoint, [ids]), referenceLogits(config as unknown as RefConfig, w, ids));
        assert.ok(diff < 1e-4, `max abs logit difference ${diff}`);
      } finally {
        await runner.release();
        await checkpoint.close();
      }
    });
  }
});
