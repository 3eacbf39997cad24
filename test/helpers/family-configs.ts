import { referenceLogits as llamaLogits, type RefConfig, type RefWeights } from '../reference/llama-f64';
import { gemmaLogits } from '../reference/gemma-f64';
import { phi3Logits } from '../reference/phi3-f64';
import { qwen3Logits } from '../reference/qwen3-f64';
import { gpt2Logits } from '../reference/gpt2-f64';
import { optLogits } from '../reference/opt-f64';
import { gptNeoxLogits } from '../reference/gpt-neox-f64';

/**
 * Small configs of each supported family with the real config.json fields and every feature switched
 * on, each with the independent float64 forward that checks it.
 */
export interface FamilyCase {
  config: Record<string, unknown>;
  reference: (config: Record<string, unknown>, w: RefWeights, ids: number[]) => Float64Array;
  /** The checkpoint's names where they differ from the engine's default for the family (GPT-2 saved with `transformer.`, OPT's releases' `decoder.`). */
  renameTensor?: (name: string) => string;
}

/** GPT-2 (124M)'s config fields scaled down; n_inner null means 4 × n_embd. */
const GPT2 = {
  architectures: ['GPT2LMHeadModel'], model_type: 'gpt2', n_embd: 64, n_head: 4, n_layer: 2, n_inner: null, n_positions: 256, n_ctx: 256,
  vocab_size: 300, layer_norm_epsilon: 1e-5, activation_function: 'gelu_new', scale_attn_weights: true, resid_pdrop: 0.1, embd_pdrop: 0.1, attn_pdrop: 0.1,
};

/** OPT-125m's config fields scaled down. */
const OPT = {
  architectures: ['OPTForCausalLM'], model_type: 'opt', hidden_size: 64, ffn_dim: 96, num_hidden_layers: 2, num_attention_heads: 4,
  max_position_embeddings: 256, vocab_size: 300, word_embed_proj_dim: 64, do_layer_norm_before: true, activation_function: 'relu',
  enable_bias: true, layer_norm_elementwise_affine: true, tie_word_embeddings: true, pad_token_id: 1, bos_token_id: 2, eos_token_id: 2,
};

/** Pythia-160m's config fields scaled down: head size 16, so rotary_pct 0.25 rotates 4 dimensions. */
const NEOX = {
  architectures: ['GPTNeoXForCausalLM'], model_type: 'gpt_neox', hidden_size: 64, intermediate_size: 256, num_hidden_layers: 2,
  num_attention_heads: 4, max_position_embeddings: 256, vocab_size: 300, rotary_pct: 0.25, rotary_emb_base: 10000, use_parallel_residual: true,
  hidden_act: 'gelu', layer_norm_eps: 1e-5, tie_word_embeddings: false, bos_token_id: 0, eos_token_id: 0,
};

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
  // Mistral slides in every layer; a window of 16 makes length 200 use the band.
  'mistral (sliding window)': {
    config: {
      architectures: ['MistralForCausalLM'], model_type: 'mistral', hidden_size: 64, intermediate_size: 96, num_hidden_layers: 2,
      num_attention_heads: 4, num_key_value_heads: 1, vocab_size: 300, rms_norm_eps: 1e-5, rope_theta: 10000,
      tie_word_embeddings: false, max_position_embeddings: 256, sliding_window: 16, hidden_act: 'silu',
    },
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
  // Gemma 7B's config fields: hidden_act "gelu" is ignored for hidden_activation; head_dim 32 with hidden 64 and 4 heads.
  gemma: {
    config: {
      architectures: ['GemmaForCausalLM'], model_type: 'gemma', hidden_size: 64, intermediate_size: 96, num_hidden_layers: 2,
      num_attention_heads: 4, num_key_value_heads: 1, head_dim: 32, vocab_size: 300, rms_norm_eps: 1e-6, rope_theta: 10000,
      max_position_embeddings: 256, hidden_act: 'gelu', hidden_activation: 'gelu_pytorch_tanh', attention_bias: false, rope_scaling: null,
    },
    reference: gemmaLogits,
  },
  // Gemma-2-2B's fields; the soft caps are scaled down (50 and 30 in the release) so random weights reach them.
  gemma2: {
    config: {
      architectures: ['Gemma2ForCausalLM'], model_type: 'gemma2', hidden_size: 64, intermediate_size: 96, num_hidden_layers: 3,
      num_attention_heads: 4, num_key_value_heads: 2, head_dim: 32, vocab_size: 300, rms_norm_eps: 1e-6, rope_theta: 10000,
      max_position_embeddings: 256, hidden_act: 'gelu_pytorch_tanh', hidden_activation: 'gelu_pytorch_tanh', query_pre_attn_scalar: 24,
      attn_logit_softcapping: 2.0, final_logit_softcapping: 3.0, sliding_window: 16, attention_bias: false, tie_word_embeddings: true,
    },
    reference: gemmaLogits,
  },
  // Gemma-3-1B's fields with a global layer's rope_scaling (linear 8, as the 4B and larger have) and soft caps switched on.
  gemma3_text: {
    config: {
      architectures: ['Gemma3ForCausalLM'], model_type: 'gemma3_text', hidden_size: 64, intermediate_size: 96, num_hidden_layers: 7,
      num_attention_heads: 4, num_key_value_heads: 1, head_dim: 32, vocab_size: 300, rms_norm_eps: 1e-6, rope_theta: 1000000,
      rope_local_base_freq: 10000, rope_scaling: { rope_type: 'linear', factor: 8.0 }, max_position_embeddings: 512,
      hidden_activation: 'gelu_pytorch_tanh', query_pre_attn_scalar: 24, sliding_window: 16, sliding_window_pattern: 6,
      attn_logit_softcapping: 2.0, final_logit_softcapping: 3.0, attention_bias: false,
    },
    reference: gemmaLogits,
  },
  // transformers >= 4.53 writes the layer kinds explicitly; here an irregular pattern.
  'gemma3_text (layer_types)': {
    config: {
      architectures: ['Gemma3ForCausalLM'], model_type: 'gemma3_text', hidden_size: 64, intermediate_size: 96, num_hidden_layers: 3,
      num_attention_heads: 4, num_key_value_heads: 2, head_dim: 16, vocab_size: 300, rms_norm_eps: 1e-6, rope_theta: 1000000,
      rope_local_base_freq: 10000, rope_scaling: null, max_position_embeddings: 512, hidden_activation: 'gelu_pytorch_tanh',
      query_pre_attn_scalar: 16, sliding_window: 8, layer_types: ['full_attention', 'sliding_attention', 'sliding_attention'],
      final_logit_softcapping: null, attn_logit_softcapping: null, tie_word_embeddings: true,
    },
    reference: gemmaLogits,
  },
  // Phi-3-mini-4k's fields: fused projections, no GQA, a sliding window in every layer (2047 there, 16 here).
  phi3: {
    config: {
      architectures: ['Phi3ForCausalLM'], model_type: 'phi3', hidden_size: 64, intermediate_size: 96, num_hidden_layers: 2,
      num_attention_heads: 4, num_key_value_heads: 4, vocab_size: 300, rms_norm_eps: 1e-5, rope_theta: 10000, rope_scaling: null,
      max_position_embeddings: 256, original_max_position_embeddings: 256, sliding_window: 16, hidden_act: 'silu', tie_word_embeddings: false,
    },
    reference: phi3Logits,
  },
  // Phi-4-mini's fields: GQA, partial rotary 0.75, longrope with short factors up to the original context (64 here) and long past it.
  'phi3 (longrope, partial rotary, GQA)': {
    config: {
      architectures: ['Phi3ForCausalLM'], model_type: 'phi3', hidden_size: 64, intermediate_size: 96, num_hidden_layers: 2,
      num_attention_heads: 4, num_key_value_heads: 2, vocab_size: 300, rms_norm_eps: 1e-5, rope_theta: 10000, partial_rotary_factor: 0.75,
      rope_scaling: { type: 'longrope', short_factor: [1, 1.02, 1.1, 1.3, 1.7, 2.2], long_factor: [1, 1.5, 3, 6, 12, 24] },
      max_position_embeddings: 1024, original_max_position_embeddings: 64, sliding_window: null, hidden_act: 'silu', tie_word_embeddings: true,
    },
    reference: phi3Logits,
  },
  // Phi-3's first releases name longrope "su".
  'phi3 (su)': {
    config: {
      architectures: ['Phi3ForCausalLM'], model_type: 'phi3', hidden_size: 64, intermediate_size: 96, num_hidden_layers: 2,
      num_attention_heads: 4, num_key_value_heads: 4, vocab_size: 300, rms_norm_eps: 1e-5, rope_theta: 10000,
      rope_scaling: { type: 'su', short_factor: [1, 1.1, 1.2, 1.4, 1.8, 2.5, 3, 4], long_factor: [1, 2, 3, 5, 8, 13, 21, 34] },
      max_position_embeddings: 2048, original_max_position_embeddings: 128, sliding_window: 64, hidden_act: 'silu', tie_word_embeddings: false,
    },
    reference: phi3Logits,
  },
  gpt2: { config: GPT2, reference: gpt2Logits },
  // transformers saves GPT2LMHeadModel with the `transformer.` prefix the published checkpoint lacks.
  'gpt2 (transformer. prefix, exact gelu, 3 layers)': {
    config: { ...GPT2, n_layer: 3, n_inner: 80, activation_function: 'gelu' },
    reference: gpt2Logits,
    renameTensor: (name) => `transformer.${name}`,
  },
  opt: { config: OPT, reference: optLogits },
  // OPT-350m: post-norm (no final LayerNorm), embeddings 32 wide projected in and out; released as OPTModel (`decoder.`).
  'opt (350m: post-norm, project_in/out)': {
    config: { ...OPT, num_hidden_layers: 3, word_embed_proj_dim: 32, do_layer_norm_before: false },
    reference: optLogits,
    renameTensor: (name) => name.replace(/^model\.decoder\./, 'decoder.'),
  },
  gpt_neox: { config: NEOX, reference: gptNeoxLogits },
  'gpt_neox (sequential residual, rotary_pct 0.5)': {
    config: { ...NEOX, num_hidden_layers: 3, use_parallel_residual: false, rotary_pct: 0.5, rotary_emb_base: 5000 },
    reference: gptNeoxLogits,
  },
};
