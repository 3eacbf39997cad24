import { referenceLogits as llamaLogits, type RefConfig, type RefWeights } from '../reference/llama-f64';
import { qwen3Logits } from '../reference/qwen3-f64';

/**
 * Small configs of each supported family with the real config.json fields and every feature switched
 * on, each with the independent float64 forward that checks it.
 */
export interface FamilyCase {
  config: Record<string, unknown>;
  reference: (config: Record<string, unknown>, w: RefWeights, ids: number[]) => Float64Array;
}

const llama = (config: Record<string, unknown>, w: RefWeights, ids: number[]) => llamaLogits(config as unknown as RefConfig, w, ids);

/** Llama 3.x's shape scaled down: GQA, tied embeddings, rope_theta 500000. */
const LLAMA3 = {
  architectures: ['LlamaForCausalLM'], model_type: 'llama', hidden_size: 64, intermediate_size: 96, num_hidden_layers: 2,
  num_attention_heads: 4, num_key_value_heads: 2, head_dim: 16, vocab_size: 300, rms_norm_eps: 1e-5, rope_theta: 500000,
  tie_word_embeddings: true, max_position_embeddings: 256, hidden_act: 'silu', attention_bias: false, mlp_bias: false,
};

export const FAMILY_CASES: Record<string, FamilyCase> = {
  // Wavelengths of head_dim 16 at theta 500000 fall in all three llama3 bands for an original context of 64.
  'llama rope llama3': {
    config: { ...LLAMA3, rope_scaling: { rope_type: 'llama3', factor: 8.0, low_freq_factor: 1.0, high_freq_factor: 4.0, original_max_position_embeddings: 64 } },
    reference: llama,
  },
  'llama rope linear': { config: { ...LLAMA3, rope_theta: 10000, rope_scaling: { type: 'linear', factor: 2.0 } }, reference: llama },
  // max_position_embeddings 64: length 200 makes transformers recompute the base for that length.
  'llama rope dynamic': { config: { ...LLAMA3, rope_theta: 10000, max_position_embeddings: 64, rope_scaling: { rope_type: 'dynamic', factor: 2.0 } }, reference: llama },
  'llama rope yarn': {
    config: { ...LLAMA3, rope_theta: 10000, rope_scaling: { rope_type: 'yarn', factor: 4.0, original_max_position_embeddings: 64 } },
    reference: llama,
  },
  'llama rope yarn (mscale, beta)': {
    config: { ...LLAMA3, rope_theta: 10000, rope_scaling: { rope_type: 'yarn', factor: 8.0, mscale: 0.707, mscale_all_dim: 1.0, beta_fast: 16, beta_slow: 2 } },
    reference: llama,
  },
  // Qwen3-0.6B's shape scaled down: head_dim 32 with hidden 64 and 4 heads (not hidden / heads), q/k norms, tied.
  qwen3: {
    config: {
      architectures: ['Qwen3ForCausalLM'], model_type: 'qwen3', hidden_size: 64, intermediate_size: 96, num_hidden_layers: 2,
      num_attention_heads: 4, num_key_value_heads: 2, head_dim: 32, vocab_size: 300, rms_norm_eps: 1e-6, rope_theta: 1000000,
      tie_word_embeddings: true, max_position_embeddings: 512, hidden_act: 'silu', attention_bias: false,
      use_sliding_window: false, sliding_window: null, max_window_layers: 28, rope_scaling: null,
    },
    reference: qwen3Logits,
  },
  // Every switch on: attention biases, yarn, and sliding-window layers from layer 1 (window 16 < 200).
  'qwen3 (biases, yarn, sliding window)': {
    config: {
      architectures: ['Qwen3ForCausalLM'], model_type: 'qwen3', hidden_size: 64, intermediate_size: 96, num_hidden_layers: 3,
      num_attention_heads: 4, num_key_value_heads: 2, head_dim: 32, vocab_size: 300, rms_norm_eps: 1e-6, rope_theta: 1000000,
      tie_word_embeddings: false, max_position_embeddings: 512, hidden_act: 'silu', attention_bias: true,
      use_sliding_window: true, sliding_window: 16, max_window_layers: 1,
      rope_scaling: { rope_type: 'yarn', factor: 4.0, original_max_position_embeddings: 128 },
    },
    reference: qwen3Logits,
  },
};
