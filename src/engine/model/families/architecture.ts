import { PruneLensError } from '../../errors';
import { moeSpec, type MoeSpec } from './moe';
import { parseRope, type Rope } from './rope';

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
  /** `rms`: x̂·w (Llama). `rms1p`: x̂·(1 + w) (Gemma). */
  norm: 'rms' | 'rms1p';
  /** MLP activation on the gate: SiLU (SwiGLU) or tanh-approximated GELU (GeGLU). */
  activation: 'silu' | 'gelu_tanh';
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
  /** Leading dimensions of each head that rotate (head_dim × partial_rotary_factor); the rest pass through. */
  rotaryDim: number;
  /** Per layer, in order. */
  layers: LayerAttention[];
  /** Phi-3 stores q/k/v as one `qkv_proj` and gate/up as one `gate_up_proj`. */
  fused: boolean;
  /** Mixture-of-experts MLPs (families/moe.ts); absent for dense families. */
  moe?: MoeSpec;
}

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

function activation(raw: Raw, key: string, fallback: string, where: string): 'silu' | 'gelu_tanh' {
  const v = own(raw, key) ?? fallback;
  if (v === 'silu') return 'silu';
  if (v === 'gelu_pytorch_tanh') return 'gelu_tanh';
  throw new PruneLensError('config', `${key} ${JSON.stringify(v)} is not supported; only "silu" and "gelu_pytorch_tanh"`, where);
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

const LLAMA_LIKE = { norm: 'rms', qkNorm: false, sandwichNorms: false, embedScale: false, fused: false } as const;

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
    fused: false,
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
    fused: true,
    activation: activation(raw, 'hidden_act', 'silu', where),
    queryScale: 1 / Math.sqrt(headDim),
    rotaryDim,
    layers: layerWindows(inputs, () => true, slidingWindow(raw, where)).map((w) => ({ rope, window: w })),
  };
}

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
  mixtral: (i) => llamaLike(i, slidingWindow(i.raw, i.where), undefined, { moe: moeSpec(i, 'mixtral') }),
  qwen2_moe: (i) => qwen(i, { moe: moeSpec(i, 'qwen2_moe') }),
  qwen3_moe: (i) => qwen(i, { qkNorm: true, moe: moeSpec(i, 'qwen3_moe') }),
  olmoe: (i) => llamaLike(i, undefined, undefined, { qkNorm: true, qkNormOver: 'projection', moe: moeSpec(i, 'olmoe') }),
};

/** Families whose config class ties the embeddings when config.json does not say. */
export const TIED_BY_DEFAULT: ReadonlySet<string> = new Set(['gemma', 'gemma2', 'gemma3_text']);

/**
 * config.json for fewer layers: a family whose layers differ (sliding or global) lists each kept
 * layer's kind in `layer_types`, so the pattern does not shift when layers are removed.
 */
export function layerTypesFor(arch: FamilySpec, keptLayers: readonly number[]): Raw {
  if (!arch.layers.some((l) => l.window !== undefined)) return {};
  return { layer_types: keptLayers.map((l) => (arch.layers[l]!.window !== undefined ? 'sliding_attention' : 'full_attention')) };
}
