/**
 * Qwen3 as llama.cpp's `qwen3` (src/models/qwen3.cpp): Llama's block plus an RMSNorm of each query and
 * key head before rotary (attn_q_norm, attn_k_norm), NEOX rotary. llama.cpp's
 * qwen3 has no sliding window, so a config that slides (use_sliding_window) is refused.
 */
import { PruneLensError } from '../../errors';
import type { ModelConfig } from '../../model/config';
import type { GgufArchitecture } from './gguf-architecture';
import type { GgufValue } from './gguf-writer';

export const QWEN3: GgufArchitecture = {
  name: 'qwen3',
  // Only q/k/v may carry biases: llama.cpp's qwen3 loads no o_proj or MLP bias (attention_bias also biases o_proj, so it is refused by name).
  blockTensors: {
    'input_layernorm.weight': 'attn_norm.weight',
    'self_attn.q_proj.weight': 'attn_q.weight',
    'self_attn.k_proj.weight': 'attn_k.weight',
    'self_attn.v_proj.weight': 'attn_v.weight',
    'self_attn.q_proj.bias': 'attn_q.bias',
    'self_attn.k_proj.bias': 'attn_k.bias',
    'self_attn.v_proj.bias': 'attn_v.bias',
    'self_attn.q_norm.weight': 'attn_q_norm.weight',
    'self_attn.k_norm.weight': 'attn_k_norm.weight',
    'self_attn.o_proj.weight': 'attn_output.weight',
    'post_attention_layernorm.weight': 'ffn_norm.weight',
    'mlp.gate_proj.weight': 'ffn_gate.weight',
    'mlp.up_proj.weight': 'ffn_up.weight',
    'mlp.down_proj.weight': 'ffn_down.weight',
  },
  interleavedRope: false,
  check(cfg, where) {
    if (cfg.arch.layers.some((l) => l.window !== undefined)) {
      throw new PruneLensError('architecture', 'llama.cpp\'s qwen3 has no sliding-window attention; this config slides (use_sliding_window), so its GGUF would compute something else', where);
    }
    if (cfg.arch.activation !== 'silu') throw new PruneLensError('architecture', `llama.cpp's qwen3 computes SwiGLU; hidden_act must be "silu"`, where);
  },
  ropeScaling: { yarn: yarnMetadata },
};

/**
 * YaRN as llama.cpp applies it from rope.scaling.{type,factor,original_context_length}: the ramp between
 * beta_fast 32 and beta_slow 1 with truncated bounds, and attention factor 0.1·ln(factor) + 1. Configs
 * asking for other betas, untruncated bounds or another attention factor are refused, since this
 * llama.cpp reads none of those.
 */
function yarnMetadata(cfg: ModelConfig, where: string): { metadata: [string, GgufValue][] } {
  const rope = cfg.arch.layers[0]!.rope;
  if (rope.type !== 'yarn') throw new Error('unreachable: yarn metadata for another rope type');
  const plain = rope.factor <= 1 ? 1 : 0.1 * Math.log(rope.factor) + 1;
  if (rope.betaFast !== 32 || rope.betaSlow !== 1 || !rope.truncate || Math.abs(rope.attentionFactor - plain) > 1e-6) {
    throw new PruneLensError('architecture', 'llama.cpp applies YaRN with beta_fast 32, beta_slow 1, truncated bounds and attention factor 0.1·ln(factor) + 1 only; this rope_scaling asks for other values', where);
  }
  const a = QWEN3.name;
  return {
    metadata: [
      [`${a}.rope.scaling.type`, { type: 'string', value: 'yarn' }],
      [`${a}.rope.scaling.factor`, { type: 'f32', value: rope.factor }],
      [`${a}.rope.scaling.original_context_length`, { type: 'u32', value: rope.originalMax }],
    ],
  };
}
