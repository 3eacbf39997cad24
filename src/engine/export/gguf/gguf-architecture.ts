/**
 * What one llama.cpp architecture needs from a checkpoint of the family that maps onto it. Each family
 * is a small file beside this one; the registry (architectures.ts) lists them by model_type.
 */
import type { ModelConfig } from '../../model/config';
import type { GgufValue } from './gguf-writer';

/** A tensor llama.cpp needs that the checkpoint does not hold, computed from config.json. */
export interface ExtraTensor {
  name: string;
  values: Float32Array;
}

export interface GgufArchitecture {
  /** llama.cpp's LLM_ARCH name. */
  name: string;
  /** Hugging Face block-relative tensor name -> llama.cpp's name after `blk.N.`. */
  blockTensors: Readonly<Record<string, string>>;
  /**
   * llama.cpp's `llama` architecture rotates adjacent pairs of q/k rows (its NORM rope) where
   * Hugging Face rotates the two halves of each head, so q and k rows are reordered on the way out;
   * NEOX-rope architectures (qwen2, qwen3, gemma, phi3) take Hugging Face's order unchanged.
   */
  interleavedRope: boolean;
  /** llama.cpp's loader requires `output.weight`: a checkpoint with tied embeddings has them written again as the output head. */
  duplicateTiedOutput?: boolean;
  /**
   * Refuses, before anything is written, a checkpoint whose computation this llama.cpp architecture
   * cannot reproduce (message says what and why; `where` is config.json).
   */
  check?(cfg: ModelConfig, where: string): void;
  /** Metadata beyond the shared llama-style keys. */
  metadata?(cfg: ModelConfig): [string, GgufValue][];
  /** Value changes on the way out (Gemma's norms store w where llama.cpp multiplies by 1 + w), by Hugging Face name. */
  convert?(cfg: ModelConfig, hfName: string, values: Float32Array): Float32Array;
  /**
   * What the rope_scaling types this family can carry (keyed by rope_type; "su" reads as longrope)
   * add to the file: tensors and metadata. Any other rope_scaling is refused.
   */
  ropeScaling?: Readonly<Record<string, (cfg: ModelConfig, where: string) => { tensors?: ExtraTensor[]; metadata?: [string, GgufValue][] }>>;
  /**
   * Families whose checkpoint names are not Llama's (GPT-2, GPT-NeoX): llama.cpp's name for a stored
   * tensor, replacing the global names and blockTensors.
   */
  tensorName?(cfg: ModelConfig, hfName: string): string | undefined;
  /** A stored tensor llama.cpp lays out differently (GPT-2's [in, out] Conv1D, GPT-NeoX's per-head qkv): its shape and values there. */
  relayout?(cfg: ModelConfig, hfName: string, shape: number[]): { shape: number[]; convert(values: Float32Array): Float32Array } | undefined;
}

export const LLAMA_BLOCK: Readonly<Record<string, string>> = {
  'input_layernorm.weight': 'attn_norm.weight',
  'self_attn.q_proj.weight': 'attn_q.weight',
  'self_attn.k_proj.weight': 'attn_k.weight',
  'self_attn.v_proj.weight': 'attn_v.weight',
  'self_attn.o_proj.weight': 'attn_output.weight',
  'self_attn.q_proj.bias': 'attn_q.bias',
  'self_attn.k_proj.bias': 'attn_k.bias',
  'self_attn.v_proj.bias': 'attn_v.bias',
  'self_attn.o_proj.bias': 'attn_output.bias',
  'post_attention_layernorm.weight': 'ffn_norm.weight',
  'mlp.gate_proj.weight': 'ffn_gate.weight',
  'mlp.up_proj.weight': 'ffn_up.weight',
  'mlp.down_proj.weight': 'ffn_down.weight',
  'mlp.gate_proj.bias': 'ffn_gate.bias',
  'mlp.up_proj.bias': 'ffn_up.bias',
  'mlp.down_proj.bias': 'ffn_down.bias',
};

/** A block tensor's layer-relative name: `self_attn.q_proj.weight` for `model.layers.3.self_attn.q_proj.weight`. */
export function blockRelative(hfName: string): string | undefined {
  return /^model\.layers\.\d+\.(.+)$/.exec(hfName)?.[1];
}
