/**
 * Phi-3 and Phi-4-mini as llama.cpp's `phi3` (src/models/phi3.cpp), as convert_hf_to_gguf.py writes
 * them: the fused projections stay fused (qkv_proj -> attn_qkv, gate_up_proj -> ffn_up, which llama.cpp
 * splits gate-first as Hugging Face does), NEOX rotary over the first head_dim × partial_rotary_factor
 * dimensions, and longrope's factors as the rope_factors_long / rope_factors_short tensors with its
 * attention factor in rope.scaling.attn_factor.
 *
 * llama.cpp differs from Hugging Face in two ways it owns, both written as the converter writes them:
 * it switches Phi-3's sliding window off (the window is recorded, and only matters past it), and it
 * picks the long factors when the context it is given exceeds the original one, where Hugging Face
 * decides per sequence length.
 */
import { PruneLensError } from '../../errors';
import type { ModelConfig } from '../../model/config';
import type { ExtraTensor, GgufArchitecture } from './gguf-architecture';
import type { GgufValue } from './gguf-writer';

export const PHI3: GgufArchitecture = {
  name: 'phi3',
  blockTensors: {
    'input_layernorm.weight': 'attn_norm.weight',
    'self_attn.qkv_proj.weight': 'attn_qkv.weight',
    'self_attn.o_proj.weight': 'attn_output.weight',
    'post_attention_layernorm.weight': 'ffn_norm.weight',
    'mlp.gate_up_proj.weight': 'ffn_up.weight',
    'mlp.down_proj.weight': 'ffn_down.weight',
  },
  interleavedRope: false,
  check(cfg, where) {
    if (cfg.numHeads * cfg.headDim !== cfg.hiddenSize) {
      throw new PruneLensError(
        'architecture',
        `llama.cpp's phi3 sizes attention by hidden_size: heads × head_dim must equal ${cfg.hiddenSize}, here ${cfg.numHeads} × ${cfg.headDim}. A structured prune that removed heads cannot run in llama.cpp; remove MLP channels or layers instead`,
        where,
      );
    }
    if (cfg.arch.activation !== 'silu') throw new PruneLensError('architecture', `llama.cpp's phi3 computes SwiGLU; hidden_act must be "silu"`, where);
  },
  metadata(cfg) {
    const original = cfg.raw.original_max_position_embeddings;
    return [
      [`phi3.attention.sliding_window`, { type: 'u32', value: cfg.arch.layers.find((l) => l.window !== undefined)?.window ?? 0 }],
      ...(typeof original === 'number' ? [[`phi3.rope.scaling.original_context_length`, { type: 'u32', value: original }] as [string, GgufValue]] : []),
    ];
  },
  ropeScaling: { longrope: longrope, su: longrope },
};

function longrope(cfg: ModelConfig): { tensors: ExtraTensor[]; metadata: [string, GgufValue][] } {
  const rope = cfg.arch.layers[0]!.rope;
  if (rope.type !== 'longrope') throw new Error('unreachable: longrope tensors for another rope type');
  return {
    tensors: [
      { name: 'rope_factors_long.weight', values: Float32Array.from(rope.longFactor) },
      { name: 'rope_factors_short.weight', values: Float32Array.from(rope.shortFactor) },
    ],
    metadata: [
      ['phi3.rope.scaling.attn_factor', { type: 'f32', value: rope.attentionFactor }],
      ['phi3.rope.scaling.original_context_length', { type: 'u32', value: rope.originalMax }],
    ],
  };
}
