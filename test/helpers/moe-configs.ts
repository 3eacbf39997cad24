/**
 * Small configs of each MoE family with the real config.json fields (dimensions scaled down), for
 * the exactness tests against test/reference/moe-f64.ts and for the expert tools' tests.
 */
const ATTENTION = { hidden_size: 64, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, vocab_size: 300, max_position_embeddings: 512, hidden_act: 'silu' };

export const MOE_CASES: Record<string, Record<string, unknown>> = {
  // Mixtral-8x7B's fields: 8 experts, top-2 always renormalised, a sliding window (16 < 200).
  mixtral: {
    ...ATTENTION, architectures: ['MixtralForCausalLM'], model_type: 'mixtral', intermediate_size: 48, num_local_experts: 8,
    num_experts_per_tok: 2, rms_norm_eps: 1e-5, rope_theta: 1000000, sliding_window: 16, tie_word_embeddings: false, router_aux_loss_coef: 0.02,
  },
  // Qwen1.5-MoE-A2.7B's fields: shared expert with its gate, top-4 not renormalised, q/k/v biases, layer 1 dense (mlp_only_layers).
  qwen2_moe: {
    ...ATTENTION, num_hidden_layers: 3, architectures: ['Qwen2MoeForCausalLM'], model_type: 'qwen2_moe', intermediate_size: 96, moe_intermediate_size: 32,
    shared_expert_intermediate_size: 80, num_experts: 6, num_experts_per_tok: 4, norm_topk_prob: false, decoder_sparse_step: 1,
    mlp_only_layers: [1], rms_norm_eps: 1e-6, rope_theta: 1000000, use_sliding_window: false, sliding_window: 32, max_window_layers: 2, tie_word_embeddings: false,
  },
  // decoder_sparse_step 2: only odd layers are sparse.
  'qwen2_moe (decoder_sparse_step 2, renormalised)': {
    ...ATTENTION, num_hidden_layers: 3, architectures: ['Qwen2MoeForCausalLM'], model_type: 'qwen2_moe', intermediate_size: 96, moe_intermediate_size: 32,
    shared_expert_intermediate_size: 48, num_experts: 4, num_experts_per_tok: 2, norm_topk_prob: true, decoder_sparse_step: 2,
    rms_norm_eps: 1e-6, rope_theta: 10000, tie_word_embeddings: true,
  },
  // Qwen3-30B-A3B's fields: explicit head_dim, q/k norms per head, renormalised top-k.
  qwen3_moe: {
    ...ATTENTION, head_dim: 32, architectures: ['Qwen3MoeForCausalLM'], model_type: 'qwen3_moe', intermediate_size: 96, moe_intermediate_size: 32,
    num_experts: 8, num_experts_per_tok: 2, norm_topk_prob: true, decoder_sparse_step: 1, mlp_only_layers: [], rms_norm_eps: 1e-6,
    rope_theta: 1000000, attention_bias: false, use_sliding_window: false, sliding_window: null, tie_word_embeddings: false, rope_scaling: null,
  },
  // OLMoE-1B-7B's fields: q/k norms over the whole projection, top-k not renormalised.
  olmoe: {
    ...ATTENTION, architectures: ['OlmoeForCausalLM'], model_type: 'olmoe', intermediate_size: 32, num_experts: 8, num_experts_per_tok: 2,
    norm_topk_prob: false, rms_norm_eps: 1e-5, rope_theta: 10000, attention_bias: false, clip_qkv: null, tie_word_embeddings: false, rope_scaling: null,
  },
};
