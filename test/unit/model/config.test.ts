import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { PruneLensError } from '../../../src/engine/errors';
import { expectedTensorShapes, parameterCount, parseModelConfig } from '../../../src/engine/model/config';

const LLAMA = {
  model_type: 'llama', hidden_size: 64, intermediate_size: 172, num_hidden_layers: 5, num_attention_heads: 8,
  num_key_value_heads: 4, vocab_size: 512, rms_norm_eps: 1e-5, rope_theta: 10000, tie_word_embeddings: true,
};

function rejects(raw: unknown, kind: string, pattern: RegExp): void {
  assert.throws(
    () => parseModelConfig(raw, '/models/x/config.json'),
    (err: unknown) => err instanceof PruneLensError && err.kind === kind && err.message.startsWith('/models/x/config.json: ') && pattern.test(err.message),
  );
}

describe('config.json', () => {
  it('reads a Llama config with grouped-query attention', () => {
    const cfg = parseModelConfig(LLAMA, 'config.json');
    assert.equal(cfg.headDim, 8);
    assert.equal(cfg.numKvHeads, 4);
    assert.equal(cfg.biasedLinears.size, 0);
    assert.deepEqual(expectedTensorShapes(cfg).get('model.layers.4.self_attn.k_proj.weight'), [32, 64]);
    assert.equal(expectedTensorShapes(cfg).has('lm_head.weight'), false);
    // 512x64 embeddings + 5 x (2x64 norms + 64x64 + 2x32x64 + 64x64 + 3x172x64) + 64 final norm
    assert.equal(parameterCount(cfg), 32768 + 5 * (128 + 4096 + 4096 + 4096 + 33024) + 64);
  });

  it('gives Qwen2 its q/k/v biases and an untied head', () => {
    const cfg = parseModelConfig({ ...LLAMA, model_type: 'qwen2', tie_word_embeddings: false }, 'config.json');
    const shapes = expectedTensorShapes(cfg);
    assert.deepEqual(shapes.get('model.layers.0.self_attn.q_proj.bias'), [64]);
    assert.deepEqual(shapes.get('model.layers.0.self_attn.v_proj.bias'), [32]);
    assert.equal(shapes.has('model.layers.0.self_attn.o_proj.bias'), false);
    assert.deepEqual(shapes.get('lm_head.weight'), [512, 64]);
  });

  it('names the supported architectures when model_type is unknown', () => {
    rejects({ ...LLAMA, model_type: 'bloom' }, 'architecture', /model_type "bloom" is not supported; supported: llama, mistral, qwen2, qwen3, gemma, gemma2, gemma3_text, phi3, gpt2, opt, gpt_neox/);
    rejects({ ...LLAMA, model_type: undefined }, 'architecture', /model_type null is not supported/);
  });

  it('refuses inconsistent or unsupported settings, naming the field', () => {
    rejects({ ...LLAMA, num_key_value_heads: 3 }, 'config', /num_attention_heads \(8\) must be a multiple of num_key_value_heads \(3\)/);
    rejects({ ...LLAMA, hidden_size: 60 }, 'config', /hidden_size \(60\) is not divisible by num_attention_heads \(8\)/);
    rejects({ ...LLAMA, hidden_size: -64 }, 'config', /"hidden_size" must be a positive integer, got -64/);
    rejects({ ...LLAMA, intermediate_size: undefined }, 'config', /"intermediate_size" must be a positive integer, got null/);
    rejects({ ...LLAMA, rms_norm_eps: 'small' }, 'config', /"rms_norm_eps" must be a positive number, got "small"/);
    rejects({ ...LLAMA, hidden_act: 'gelu' }, 'config', /hidden_act "gelu" is not supported/);
    rejects({ ...LLAMA, rope_scaling: { rope_type: 'llama3', factor: 8 } }, 'config', /rope_scaling "low_freq_factor" must be a positive number for rope type "llama3", got null/);
    rejects({ ...LLAMA, rope_scaling: { rope_type: 'ntk-by-parts', factor: 8 } }, 'config', /rope_scaling type "ntk-by-parts" is not supported; supported: default, linear, dynamic, llama3, yarn, longrope/);
    rejects([LLAMA], 'config', /must hold a JSON object/);
  });
});
