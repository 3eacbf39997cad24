/**
 * Where a family keeps its tensors in the checkpoint. The engine works on Llama's block-relative names
 * (`input_layernorm`, `self_attn.q_proj`, `mlp.up_proj`, ...) with [out, in] weights; a family that
 * names, fuses or transposes them differently says so here, and fused.ts converts blocks on read and
 * write, so pruning and export never see the difference and the output keeps the family's names.
 */
export interface TensorNames {
  /** Prefix of the embeddings, the blocks and the final norm (`model.`, `gpt_neox.`, `model.decoder.`, `` for GPT-2). */
  root: string;
  /** Other roots a published checkpoint uses (GPT-2 saved with its head: `transformer.`; OPT saved without it: `decoder.`). */
  otherRoots: readonly string[];
  /** The block list under the root: `layers` or `h`. */
  layers: string;
  embed: string;
  /** Learned absolute positions (GPT-2's `wpe`, OPT's `embed_positions`). */
  positions?: string;
  finalNorm: string;
  /** The LM head's full name (not under the root). */
  lmHead: string;
  /** OPT's projections between word_embed_proj_dim and hidden_size, when they differ. */
  projectIn?: string;
  projectOut?: string;
  /** Stored module names of the engine's block modules, where they differ. */
  renames: Readonly<Record<string, string>>;
  /** Linears stored as one tensor: q/k/v (and gate/up) stacked by rows, or per head ([q_h, k_h, v_h] for each head h). */
  fused: readonly FusedLinear[];
  /** GPT-2's Conv1D stores every linear weight as [in, out]. */
  transposed: boolean;
  /** Per-block buffers older exporters saved (causal-mask caches, rotary tables); nothing reads them. */
  buffers: readonly string[];
}

export interface FusedLinear {
  stored: string;
  parts: readonly string[];
  perHead: boolean;
}

export const LLAMA_NAMES: TensorNames = {
  root: 'model.',
  otherRoots: [],
  layers: 'layers',
  embed: 'embed_tokens',
  finalNorm: 'norm',
  lmHead: 'lm_head',
  renames: {},
  fused: [],
  transposed: false,
  buffers: [],
};

/** Phi-3: q, k, v stacked in `qkv_proj`, gate and up in `gate_up_proj`, in the order its forward splits them. */
export const PHI3_NAMES: TensorNames = {
  ...LLAMA_NAMES,
  fused: [
    { stored: 'self_attn.qkv_proj', parts: ['self_attn.q_proj', 'self_attn.k_proj', 'self_attn.v_proj'], perHead: false },
    { stored: 'mlp.gate_up_proj', parts: ['mlp.gate_proj', 'mlp.up_proj'], perHead: false },
  ],
};

/** OPT (modeling_opt.py): OPTForCausalLM's `model.decoder.`; the released checkpoints were saved from OPTModel (`decoder.`). */
export function optNames(projected: boolean): TensorNames {
  return {
    root: 'model.decoder.',
    otherRoots: ['decoder.'],
    layers: 'layers',
    embed: 'embed_tokens',
    positions: 'embed_positions',
    finalNorm: 'final_layer_norm',
    lmHead: 'lm_head',
    ...(projected ? { projectIn: 'project_in', projectOut: 'project_out' } : {}),
    renames: {
      input_layernorm: 'self_attn_layer_norm',
      post_attention_layernorm: 'final_layer_norm',
      'self_attn.o_proj': 'self_attn.out_proj',
      'mlp.up_proj': 'fc1',
      'mlp.down_proj': 'fc2',
    },
    fused: [],
    transposed: false,
    buffers: [],
  };
}

/** GPT-2 (modeling_gpt2.py): Conv1D weights [in, out], q/k/v stacked in `c_attn`; published without the `transformer.` prefix. */
export const GPT2_NAMES: TensorNames = {
  root: '',
  otherRoots: ['transformer.'],
  layers: 'h',
  embed: 'wte',
  positions: 'wpe',
  finalNorm: 'ln_f',
  lmHead: 'lm_head',
  renames: {
    input_layernorm: 'ln_1',
    post_attention_layernorm: 'ln_2',
    'self_attn.o_proj': 'attn.c_proj',
    'mlp.up_proj': 'mlp.c_fc',
    'mlp.down_proj': 'mlp.c_proj',
  },
  fused: [{ stored: 'attn.c_attn', parts: ['self_attn.q_proj', 'self_attn.k_proj', 'self_attn.v_proj'], perHead: false }],
  transposed: true,
  buffers: ['attn.bias', 'attn.masked_bias'],
};

/** GPT-NeoX / Pythia (modeling_gpt_neox.py): `query_key_value` holds [q_h, k_h, v_h] for each head h in turn. */
export const GPT_NEOX_NAMES: TensorNames = {
  root: 'gpt_neox.',
  otherRoots: [],
  layers: 'layers',
  embed: 'embed_in',
  finalNorm: 'final_layer_norm',
  lmHead: 'embed_out',
  renames: {
    'self_attn.o_proj': 'attention.dense',
    'mlp.up_proj': 'mlp.dense_h_to_4h',
    'mlp.down_proj': 'mlp.dense_4h_to_h',
  },
  fused: [{ stored: 'attention.query_key_value', parts: ['self_attn.q_proj', 'self_attn.k_proj', 'self_attn.v_proj'], perHead: true }],
  transposed: false,
  buffers: ['attention.bias', 'attention.masked_bias', 'attention.rotary_emb.inv_freq'],
};

/** Full name of a top-level tensor under the root (`model.embed_tokens.weight`, `wte.weight`). */
export function topName(names: TensorNames, module: string, suffix: 'weight' | 'bias' = 'weight'): string {
  return `${names.root}${module}.${suffix}`;
}

/** The stored module that holds an engine module: renamed, or the fused tensor it is part of. */
export function storedModule(names: TensorNames, module: string): string {
  return names.fused.find((f) => f.parts.includes(module))?.stored ?? names.renames[module] ?? module;
}
