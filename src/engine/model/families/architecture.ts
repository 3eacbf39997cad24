import { PruneLensError } from '../../errors';
import { moeSpec, type MoeSpec } from './moe';
import { parseRope, type Rope } from './rope';
import { GPT2_NAMES, GPT_NEOX_NAMES, LLAMA_NAMES, optNames, PHI3_NAMES, type TensorNames } from './tensor-names';

/** How one layer attends: its rotary embedding and, for local layers, how far back it looks. */
export interface LayerAttention {
  rope: Rope;
  /** A query at position i sees keys j with i - j < window (transformers' sliding-window mask). */
  window?: number;
}

/**
 * Everything in which a family's decoder differs from Llama's, read once from config.json. The
 * graph, the runner and export consult this, never the model_type, so a family is one registry entry.
 */
export interface FamilySpec {
  /** `rms`: x̂·w (Llama). `rms1p`: x̂·(1 + w) (Gemma). `layer`: LayerNorm with weight and bias (GPT-2, OPT, GPT-NeoX). */
  norm: 'rms' | 'rms1p' | 'layer';
  /** MLP activation: SiLU, tanh-approximated GELU (`gelu_pytorch_tanh`, GPT-2's `gelu_new`), exact (erf) GELU or ReLU. */
  activation: Activation;
  /** Llama's MLP is act(gate(x))·up(x); GPT-2, OPT and GPT-NeoX have no gate: act(up(x)) (up is their fc1). */
  gated: boolean;
  /**
   * `pre`: x + f(norm(x)) for attention, then the MLP (Llama). `parallel`: x + attn(ln1(x)) + mlp(ln2(x))
   * (GPT-NeoX's use_parallel_residual). `post`: norm(x + f(x)) for each (OPT with do_layer_norm_before false).
   */
  residual: 'pre' | 'parallel' | 'post';
  /** Learned absolute positions added to the embeddings; position p reads row p + offset (OPT: 2). */
  positionOffset?: number;
  /** OPT's word_embed_proj_dim when it differs from hidden_size: embeddings are projected in and out. */
  projection?: number;
  /** Whether a norm precedes the LM head (OPT-350m's post-norm layout has none). */
  finalNorm: boolean;
  /** The family's tensor names, fusion and layout in the checkpoint. */
  names: TensorNames;
  /** RMSNorm of each query and key head (head_dim wide) before rotary (Qwen3, Gemma 3). */
  qkNorm: boolean;
  /** OLMoE norms the whole q and k projections (heads x head_dim wide) instead of each head. */
  qkNormOver?: 'projection';
  /** Norms after attention and after the MLP, before the residual add (Gemma 2 and 3). */
  sandwichNorms: boolean;
  /** Embeddings multiplied by √hidden_size, the factor rounded to the model's dtype (Gemma). */
  embedScale: boolean;
  /** What multiplies q·k: head_dim^-½, or query_pre_attn_scalar^-½ (Gemma). */
  queryScale: number;
  /** tanh(s / c)·c on attention logits (Gemma 2). */
  attnSoftcap?: number;
  /** tanh(z / c)·c on the final logits (Gemma 2). */
  finalSoftcap?: number;
  /** Leading dimensions of each head that rotate (head_dim × partial_rotary_factor); the rest pass through. 0: no rotary (learned positions). */
  rotaryDim: number;
  /** Per layer, in order. */
  layers: LayerAttention[];
  /**
   * The family's config has no head_dim: its loader derives the head size from hidden_size / heads
   * (GPT-2, OPT, GPT-NeoX), so no config describes fewer heads of the same width.
   */
  headDimFromWidth: boolean;
  /** Some linears are stored as one tensor (Phi-3's `qkv_proj`, GPT-2's `c_attn`, GPT-NeoX's `query_key_value`). */
  fused: boolean;
  /** Mixture-of-experts MLPs (families/moe.ts); absent for dense families. */
  moe?: MoeSpec;
}

export type Activation = 'silu' | 'gelu_tanh' | 'gelu' | 'relu';

export type Raw = Record<string, unknown>;

export interface FamilyInputs {
  raw: Raw;
  where: string;
  modelType: string;
  headDim: number;
  numLayers: number;
  ropeTheta: number;
}

function own(raw: Raw, key: string): unknown {
  return Object.hasOwn(raw, key) ? raw[key] : undefined;
}

function positive(raw: Raw, key: string, where: string, fallback?: number): number {
  const v = own(raw, key) ?? fallback;
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) {
    throw new PruneLensError('config', `"${key}" must be a positive number, got ${JSON.stringify(v ?? null)}`, where);
  }
  return v;
}

/** A soft cap: null switches it off; absent, it is the config class's default. */
function optionalCap(raw: Raw, key: string, where: string, fallback?: number): number | undefined {
  const v = own(raw, key);
  if (v === null || (v === undefined && fallback === undefined)) return undefined;
  return positive(raw, key, where, fallback);
}

/** transformers' ACT2FN names the engine computes exactly; `gelu_new` is the same tanh form as `gelu_pytorch_tanh`. */
const ACTIVATIONS: Record<string, Activation> = { silu: 'silu', gelu_pytorch_tanh: 'gelu_tanh', gelu_new: 'gelu_tanh', gelu: 'gelu', relu: 'relu' };

function activation(raw: Raw, key: string, fallback: string, where: string, allowed: readonly string[] = ['silu', 'gelu_pytorch_tanh']): Activation {
  const v = own(raw, key) ?? fallback;
  if (typeof v === 'string' && allowed.includes(v)) return ACTIVATIONS[v]!;
  throw new PruneLensError('config', `${key} ${JSON.stringify(v)} is not supported; only ${allowed.map((a) => `"${a}"`).join(', ')}`, where);
}

/**
 * Which layers are local: config.json's `layer_types` when present (transformers >= 4.53 writes it),
 * else the family's fixed pattern. `undefined` entries are global layers.
 */
function layerWindows(inputs: FamilyInputs, pattern: (layer: number) => boolean, window: number | undefined): (number | undefined)[] {
  const { raw, where, numLayers } = inputs;
  const types = own(raw, 'layer_types');
  if (types !== undefined && types !== null) {
    if (!Array.isArray(types) || types.length !== numLayers || !types.every((t) => t === 'sliding_attention' || t === 'full_attention')) {
      throw new PruneLensError('config', `"layer_types" must list "sliding_attention" or "full_attention" for each of the ${numLayers} layers`, where);
    }
    if (types.includes('sliding_attention') && window === undefined) throw new PruneLensError('config', '"layer_types" names sliding layers but "sliding_window" is not set', where);
    return types.map((t) => (t === 'sliding_attention' ? window : undefined));
  }
  return Array.from({ length: numLayers }, (_, l) => (window !== undefined && pattern(l) ? window : undefined));
}

function slidingWindow(raw: Raw, where: string, fallback?: number): number | undefined {
  const given = own(raw, 'sliding_window');
  const v = given === undefined ? fallback : given;
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v <= 0) throw new PruneLensError('config', `"sliding_window" must be a positive integer or null, got ${JSON.stringify(v)}`, where);
  return v;
}

const LLAMA_LIKE = {
  norm: 'rms',
  gated: true,
  residual: 'pre',
  finalNorm: true,
  names: LLAMA_NAMES,
  headDimFromWidth: false,
  qkNorm: false,
  sandwichNorms: false,
  embedScale: false,
  fused: false,
} as const;

function llamaLike(inputs: FamilyInputs, window: number | undefined, slides: (layer: number) => boolean = () => true, extra: Partial<FamilySpec> = {}): FamilySpec {
  const { raw, where, headDim, ropeTheta } = inputs;
  const rope = parseRope(raw, own(raw, 'rope_scaling'), ropeTheta, headDim, where);
  return {
    ...LLAMA_LIKE,
    activation: activation(raw, 'hidden_act', 'silu', where),
    queryScale: 1 / Math.sqrt(headDim),
    rotaryDim: headDim,
    layers: layerWindows(inputs, slides, window).map((w) => ({ rope, window: w })),
    ...extra,
  };
}

/** Qwen2/3 slide only where use_sliding_window is set, and then only from layer max_window_layers on. */
function qwen(inputs: FamilyInputs, extra: Partial<FamilySpec> = {}): FamilySpec {
  const { raw, where } = inputs;
  const window = own(raw, 'use_sliding_window') === true ? slidingWindow(raw, where) : undefined;
  const from = typeof own(raw, 'max_window_layers') === 'number' ? (own(raw, 'max_window_layers') as number) : 0;
  return llamaLike(inputs, window, (l) => l >= from, extra);
}

function gemma(inputs: FamilyInputs, version: 1 | 2 | 3): FamilySpec {
  const { raw, where, headDim, ropeTheta } = inputs;
  const rope = parseRope(raw, own(raw, 'rope_scaling'), ropeTheta, headDim, where);
  // Absent fields take Gemma2Config's / Gemma3TextConfig's defaults, as transformers does.
  const window = version === 1 ? undefined : slidingWindow(raw, where, 4096);
  // Gemma 2: even layers local. Gemma 3: five local layers, then a global one.
  const period = version === 3 ? (typeof own(raw, 'sliding_window_pattern') === 'number' ? (own(raw, 'sliding_window_pattern') as number) : 6) : 2;
  const windows = layerWindows(inputs, (l) => (l + 1) % period !== 0, window);
  // Gemma 3's local layers use their own base and never the scaling, which is for global layers.
  const localRope: Rope = version === 3 ? { type: 'default', theta: positive(raw, 'rope_local_base_freq', where, 10000) } : rope;
  return {
    ...LLAMA_LIKE,
    norm: 'rms1p',
    // Gemma 1 ignores hidden_act (its released configs say "gelu" but the model was trained with the tanh form).
    activation: activation(raw, 'hidden_activation', 'gelu_pytorch_tanh', where),
    qkNorm: version === 3,
    sandwichNorms: version !== 1,
    embedScale: true,
    queryScale: version === 1 ? 1 / Math.sqrt(headDim) : Math.pow(positive(raw, 'query_pre_attn_scalar', where, 256), -0.5),
    attnSoftcap: version === 1 ? undefined : optionalCap(raw, 'attn_logit_softcapping', where, version === 2 ? 50 : undefined),
    finalSoftcap: version === 1 ? undefined : optionalCap(raw, 'final_logit_softcapping', where, version === 2 ? 30 : undefined),
    rotaryDim: headDim,
    layers: windows.map((w) => ({ rope: w !== undefined ? localRope : rope, window: w })),
  };
}

function phi3(inputs: FamilyInputs): FamilySpec {
  const { raw, where, headDim, ropeTheta } = inputs;
  const partial = positive(raw, 'partial_rotary_factor', where, 1);
  const rotaryDim = Math.floor(headDim * partial);
  if (partial > 1 || rotaryDim % 2 !== 0 || rotaryDim === 0) {
    throw new PruneLensError('config', `partial_rotary_factor ${partial} gives ${rotaryDim} rotary dimensions of head_dim ${headDim}; it must be an even number from 2 to head_dim`, where);
  }
  const rope = parseRope(raw, own(raw, 'rope_scaling'), ropeTheta, rotaryDim, where);
  return {
    ...LLAMA_LIKE,
    names: PHI3_NAMES,
    fused: true,
    activation: activation(raw, 'hidden_act', 'silu', where),
    queryScale: 1 / Math.sqrt(headDim),
    rotaryDim,
    layers: layerWindows(inputs, () => true, slidingWindow(raw, where)).map((w) => ({ rope, window: w })),
  };
}

/** What the GPT-2, OPT and GPT-NeoX families share: LayerNorm, biases, an ungated MLP, one attention kind for all layers. */
function gptLike(inputs: FamilyInputs, extra: Pick<FamilySpec, 'activation' | 'names' | 'residual' | 'rotaryDim' | 'queryScale' | 'fused'> & Partial<FamilySpec>, rope: Rope = { type: 'default', theta: 10000 }): FamilySpec {
  return {
    norm: 'layer',
    gated: false,
    headDimFromWidth: true,
    finalNorm: true,
    qkNorm: false,
    sandwichNorms: false,
    embedScale: false,
    layers: Array.from({ length: inputs.numLayers }, () => ({ rope })),
    ...extra,
  };
}

/** Switches no family here implements; refused by name rather than computed wrongly. */
function refuse(raw: Raw, where: string, switches: Record<string, { bad: unknown; why: string }>): void {
  for (const [key, { bad, why }] of Object.entries(switches)) {
    if (own(raw, key) === bad) throw new PruneLensError('config', `"${key}": ${JSON.stringify(bad)} is not supported: ${why}`, where);
  }
}

/** GPT-2 (modeling_gpt2.py): learned positions, gelu_new, q·k scaled by head_dim^-½ when scale_attn_weights (the default). */
function gpt2(inputs: FamilyInputs): FamilySpec {
  const { raw, where, headDim } = inputs;
  refuse(raw, where, {
    scale_attn_by_inverse_layer_idx: { bad: true, why: 'it scales each layer\'s attention differently, which the shared block graph does not do' },
    add_cross_attention: { bad: true, why: 'cross-attention blocks belong to an encoder-decoder model' },
  });
  return gptLike(inputs, {
    activation: activation(raw, 'activation_function', 'gelu_new', where, ['gelu_new', 'gelu', 'relu', 'gelu_pytorch_tanh']),
    names: GPT2_NAMES,
    residual: 'pre',
    positionOffset: 0,
    rotaryDim: 0,
    queryScale: own(raw, 'scale_attn_weights') === false ? 1 : 1 / Math.sqrt(headDim),
    fused: true,
  });
}

/** OPT (modeling_opt.py): positions offset by 2, ReLU, optional project_in/out, pre- or post-norm. */
function opt(inputs: FamilyInputs): FamilySpec {
  const { raw, where, headDim } = inputs;
  refuse(raw, where, { layer_norm_elementwise_affine: { bad: false, why: 'LayerNorms without weight and bias are not built' } });
  const hidden = own(raw, 'hidden_size');
  const proj = own(raw, 'word_embed_proj_dim') ?? hidden;
  if (typeof proj !== 'number' || !Number.isSafeInteger(proj) || proj <= 0) throw new PruneLensError('config', `"word_embed_proj_dim" must be a positive integer, got ${JSON.stringify(proj)}`, where);
  const preNorm = own(raw, 'do_layer_norm_before') !== false;
  return gptLike(inputs, {
    activation: activation(raw, 'activation_function', 'relu', where, ['relu', 'gelu', 'gelu_new']),
    names: optNames(proj !== hidden),
    residual: preNorm ? 'pre' : 'post',
    positionOffset: 2,
    ...(proj !== hidden ? { projection: proj } : {}),
    finalNorm: preNorm && own(raw, '_remove_final_layer_norm') !== true,
    rotaryDim: 0,
    queryScale: 1 / Math.sqrt(headDim),
    fused: false,
  });
}

/**
 * GPT-NeoX / Pythia (modeling_gpt_neox.py): rotary on the first head_size·rotary_pct dimensions
 * (rotate-half, NeoX style), parallel or sequential residual, exact GELU. Older configs name the rope
 * fields rotary_pct and rotary_emb_base; newer ones rope_theta / partial_rotary_factor or rope_parameters.
 */
function gptNeox(inputs: FamilyInputs): FamilySpec {
  const { raw, where, headDim } = inputs;
  const params = own(raw, 'rope_parameters');
  const fromParams = (key: string): unknown => (typeof params === 'object' && params !== null ? (params as Raw)[key] : undefined);
  const pct = own(raw, 'rotary_pct') ?? own(raw, 'partial_rotary_factor') ?? fromParams('partial_rotary_factor') ?? 0.25;
  const theta = own(raw, 'rotary_emb_base') ?? own(raw, 'rope_theta') ?? fromParams('rope_theta') ?? 10000;
  if (typeof pct !== 'number' || !(pct > 0 && pct <= 1)) throw new PruneLensError('config', `"rotary_pct" must be in (0, 1], got ${JSON.stringify(pct)}`, where);
  if (typeof theta !== 'number' || !(theta > 0)) throw new PruneLensError('config', `"rotary_emb_base" must be a positive number, got ${JSON.stringify(theta)}`, where);
  const rotaryDim = Math.floor(headDim * pct);
  if (rotaryDim % 2 !== 0 || rotaryDim === 0) {
    throw new PruneLensError('config', `rotary_pct ${pct} gives ${rotaryDim} rotary dimensions of head size ${headDim}; it must be an even number from 2 to the head size`, where);
  }
  const scaling = own(raw, 'rope_scaling') ?? (fromParams('rope_type') !== undefined && fromParams('rope_type') !== 'default' ? params : undefined);
  const rope = parseRope(raw, scaling, theta, rotaryDim, where);
  return gptLike(
    inputs,
    {
      activation: activation(raw, 'hidden_act', 'gelu', where, ['gelu', 'gelu_new', 'relu', 'gelu_pytorch_tanh']),
      names: GPT_NEOX_NAMES,
      residual: own(raw, 'use_parallel_residual') === false ? 'pre' : 'parallel',
      rotaryDim,
      queryScale: 1 / Math.sqrt(headDim),
      fused: true,
    },
    rope,
  );
}

/**
 * config.json keys of families that do not use Llama's names, by the name the engine reads
 * (transformers' attribute_map for GPT-2; OPT's ffn_dim; the LayerNorm epsilons).
 */
export const CONFIG_KEYS: Record<string, Readonly<Record<string, string>>> = {
  gpt2: { hidden_size: 'n_embd', num_attention_heads: 'n_head', num_hidden_layers: 'n_layer', intermediate_size: 'n_inner', max_position_embeddings: 'n_positions', rms_norm_eps: 'layer_norm_epsilon' },
  opt: { intermediate_size: 'ffn_dim', rms_norm_eps: 'layer_norm_eps' },
  gpt_neox: { rms_norm_eps: 'layer_norm_eps' },
};

/** The families the engine builds, by config.json's model_type. */
export const FAMILIES: Record<string, (inputs: FamilyInputs) => FamilySpec> = {
  llama: (i) => llamaLike(i, undefined),
  mistral: (i) => llamaLike(i, slidingWindow(i.raw, i.where)),
  qwen2: (i) => qwen(i),
  qwen3: (i) => qwen(i, { qkNorm: true }),
  gemma: (i) => gemma(i, 1),
  gemma2: (i) => gemma(i, 2),
  gemma3_text: (i) => gemma(i, 3),
  phi3: phi3,
  gpt2: gpt2,
  opt: opt,
  gpt_neox: gptNeox,
  mixtral: (i) => llamaLike(i, slidingWindow(i.raw, i.where), undefined, { moe: moeSpec(i, 'mixtral') }),
  qwen2_moe: (i) => qwen(i, { moe: moeSpec(i, 'qwen2_moe') }),
  qwen3_moe: (i) => qwen(i, { qkNorm: true, moe: moeSpec(i, 'qwen3_moe') }),
  olmoe: (i) => llamaLike(i, undefined, undefined, { qkNorm: true, qkNormOver: 'projection', moe: moeSpec(i, 'olmoe') }),
};

/** Families whose config class ties the embeddings when config.json does not say. */
export const TIED_BY_DEFAULT: ReadonlySet<string> = new Set(['gemma', 'gemma2', 'gemma3_text', 'gpt2', 'opt']);

/**
 * config.json for fewer layers: a family whose layers differ (sliding or global) lists each kept
 * layer's kind in `layer_types`, so the pattern does not shift when layers are removed.
 */
export function layerTypesFor(arch: FamilySpec, keptLayers: readonly number[]): Raw {
  if (!arch.layers.some((l) => l.window !== undefined)) return {};
  return { layer_types: keptLayers.map((l) => (arch.layers[l]!.window !== undefined ? 'sliding_attention' : 'full_attention')) };
}
