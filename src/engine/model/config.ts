import { PruneLensError } from '../errors';
import { CONFIG_KEYS, FAMILIES, TIED_BY_DEFAULT, type FamilySpec } from './families/architecture';
import { storedShapes } from './families/fused';
import { moeTensorShapes } from './families/moe';
import { storedModule, topName } from './families/tensor-names';

/**
 * The decoder families the engine can build. They share one graph; they differ only in which linears
 * carry a bias, which is what a registry entry says (transformers.js keeps families as a registry too).
 */
interface Architecture {
  /** Linears (block-relative names, e.g. `self_attn.q_proj`) that carry a bias in this family. */
  biasedLinears(raw: Record<string, unknown>): readonly LinearName[];
}

export const LINEARS = [
  'self_attn.q_proj',
  'self_attn.k_proj',
  'self_attn.v_proj',
  'self_attn.o_proj',
  'mlp.gate_proj',
  'mlp.up_proj',
  'mlp.down_proj',
] as const;
export type LinearName = (typeof LINEARS)[number];

const ARCHITECTURES: Record<string, Architecture> = {
  llama: {
    biasedLinears: (raw) => [
      ...(raw.attention_bias === true ? (['self_attn.q_proj', 'self_attn.k_proj', 'self_attn.v_proj', 'self_attn.o_proj'] as const) : []),
      ...(raw.mlp_bias === true ? (['mlp.gate_proj', 'mlp.up_proj', 'mlp.down_proj'] as const) : []),
    ],
  },
  mistral: { biasedLinears: () => [] },
  qwen2: { biasedLinears: () => ['self_attn.q_proj', 'self_attn.k_proj', 'self_attn.v_proj'] },
  qwen3: { biasedLinears: (raw) => (raw.attention_bias === true ? ['self_attn.q_proj', 'self_attn.k_proj', 'self_attn.v_proj', 'self_attn.o_proj'] : []) },
  gemma: { biasedLinears: (raw) => (raw.attention_bias === true ? ['self_attn.q_proj', 'self_attn.k_proj', 'self_attn.v_proj', 'self_attn.o_proj'] : []) },
  gemma2: { biasedLinears: (raw) => (raw.attention_bias === true ? ['self_attn.q_proj', 'self_attn.k_proj', 'self_attn.v_proj', 'self_attn.o_proj'] : []) },
  gemma3_text: { biasedLinears: (raw) => (raw.attention_bias === true ? ['self_attn.q_proj', 'self_attn.k_proj', 'self_attn.v_proj', 'self_attn.o_proj'] : []) },
  phi3: { biasedLinears: () => [] },
  gpt2: { biasedLinears: () => UNGATED },
  opt: { biasedLinears: (raw) => (raw.enable_bias === false ? [] : UNGATED) },
  gpt_neox: { biasedLinears: (raw) => (raw.attention_bias === false ? ['mlp.up_proj', 'mlp.down_proj'] : UNGATED) },
  mixtral: { biasedLinears: () => [] },
  qwen2_moe: { biasedLinears: (raw) => (raw.qkv_bias === false ? [] : ['self_attn.q_proj', 'self_attn.k_proj', 'self_attn.v_proj']) },
  qwen3_moe: { biasedLinears: (raw) => (raw.attention_bias === true ? ['self_attn.q_proj', 'self_attn.k_proj', 'self_attn.v_proj', 'self_attn.o_proj'] : []) },
  olmoe: { biasedLinears: (raw) => (raw.attention_bias === true ? ['self_attn.q_proj', 'self_attn.k_proj', 'self_attn.v_proj', 'self_attn.o_proj'] : []) },
};

/** The linears of a block without a gate (GPT-2, OPT, GPT-NeoX), all of which carry a bias there. */
const UNGATED = ['self_attn.q_proj', 'self_attn.k_proj', 'self_attn.v_proj', 'self_attn.o_proj', 'mlp.up_proj', 'mlp.down_proj'] as const;

export const SUPPORTED_MODEL_TYPES = Object.keys(ARCHITECTURES);

export interface ModelConfig {
  modelType: string;
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  vocabSize: number;
  rmsNormEps: number;
  ropeTheta: number;
  tieWordEmbeddings: boolean;
  maxPositionEmbeddings: number;
  /** How the family's block differs from Llama's: norms, activation, rotary per layer, windows, fusion. */
  arch: FamilySpec;
  biasedLinears: ReadonlySet<LinearName>;
  /** config.json as read, so export can write it back with only the fields pruning changes. */
  raw: Record<string, unknown>;
}

/** Parses and checks config.json; `where` names the file in every message. */
export function parseModelConfig(raw: unknown, where: string): ModelConfig {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new PruneLensError('config', 'config.json must hold a JSON object', where);
  }
  const cfg = raw as Record<string, unknown>;
  const modelType = cfg.model_type;
  // Own properties only: "constructor", "toString" or "__proto__" are names every object inherits.
  if (typeof modelType !== 'string' || !Object.hasOwn(ARCHITECTURES, modelType)) {
    throw new PruneLensError(
      'architecture',
      `model_type ${JSON.stringify(modelType ?? null)} is not supported; supported: ${SUPPORTED_MODEL_TYPES.join(', ')}`,
      where,
    );
  }
  // The family's own key where it does not use Llama's (GPT-2's n_embd, OPT's ffn_dim), named so in every message.
  const keyOf = (key: string): string => CONFIG_KEYS[modelType]?.[key] ?? key;
  const int = (name: string, fallback?: number): number => {
    const key = keyOf(name);
    const v = cfg[key] ?? fallback;
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v <= 0) {
      throw new PruneLensError('config', `"${key}" must be a positive integer, got ${JSON.stringify(v ?? null)}`, where);
    }
    return v;
  };
  const num = (name: string, fallback: number): number => {
    const key = keyOf(name);
    const v = cfg[key] ?? fallback;
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) {
      throw new PruneLensError('config', `"${key}" must be a positive number, got ${JSON.stringify(v)}`, where);
    }
    return v;
  };

  const hiddenSize = int('hidden_size');
  const numHeads = int('num_attention_heads');
  const numKvHeads = int('num_key_value_heads', numHeads);
  if (numHeads % numKvHeads !== 0) {
    throw new PruneLensError(
      'config',
      `num_attention_heads (${numHeads}) must be a multiple of num_key_value_heads (${numKvHeads})`,
      where,
    );
  }
  if (cfg.head_dim === undefined && hiddenSize % numHeads !== 0) {
    throw new PruneLensError('config', `${keyOf('hidden_size')} (${hiddenSize}) is not divisible by ${keyOf('num_attention_heads')} (${numHeads})`, where);
  }
  const headDim = int('head_dim', hiddenSize / numHeads);
  if (headDim % 2 !== 0) throw new PruneLensError('config', `head_dim (${headDim}) must be even for rotary embeddings`, where);
  const numLayers = int('num_hidden_layers');
  // GPT-2's n_inner is null in its released configs: 4 × n_embd, as GPT2MLP sizes it.
  const intermediateSize = int('intermediate_size', modelType === 'gpt2' ? 4 * hiddenSize : undefined);
  const vocabSize = int('vocab_size');
  // Bounds first: a family builds per-layer tables, which an absurd layer count must never reach.
  checkSizeBounds({ hiddenSize, intermediateSize, numLayers, numHeads, headDim, vocabSize }, where);
  const ropeTheta = num('rope_theta', 10000);
  const arch = FAMILIES[modelType]!({ raw: cfg, where, modelType, headDim, numLayers, ropeTheta });

  return {
    modelType,
    hiddenSize,
    intermediateSize,
    numLayers,
    numHeads,
    numKvHeads,
    headDim,
    vocabSize,
    // LayerNorm families default to torch's 1e-5 (OPT has no field for it).
    rmsNormEps: num('rms_norm_eps', arch.norm === 'layer' ? 1e-5 : 1e-6),
    ropeTheta,
    // Absent, it takes the family's default, as transformers' config classes do (Gemma ties, Llama does not).
    tieWordEmbeddings: typeof cfg.tie_word_embeddings === 'boolean' ? cfg.tie_word_embeddings : TIED_BY_DEFAULT.has(modelType),
    maxPositionEmbeddings: int('max_position_embeddings', 2048),
    arch,
    biasedLinears: new Set(ARCHITECTURES[modelType]!.biasedLinears(cfg)),
    raw: cfg,
  };
}

/**
 * Sizes no real checkpoint has: far beyond the largest models, and large enough to exhaust memory
 * or a Map long before any tensor is read (num_hidden_layers 1e9 once took minutes to fail).
 */
const SIZE_BOUNDS = {
  numLayers: 10_000,
  hiddenSize: 1 << 20,
  intermediateSize: 1 << 22,
  numHeads: 1 << 14,
  headDim: 1 << 14,
  vocabSize: 1 << 24,
} as const;

function checkSizeBounds(sizes: Record<keyof typeof SIZE_BOUNDS, number>, where: string): void {
  const keys: Record<keyof typeof SIZE_BOUNDS, string> = {
    numLayers: 'num_hidden_layers',
    hiddenSize: 'hidden_size',
    intermediateSize: 'intermediate_size',
    numHeads: 'num_attention_heads',
    headDim: 'head_dim',
    vocabSize: 'vocab_size',
  };
  for (const key of Object.keys(SIZE_BOUNDS) as (keyof typeof SIZE_BOUNDS)[]) {
    if (sizes[key] > SIZE_BOUNDS[key]) {
      throw new PruneLensError('config', `"${keys[key]}" is ${sizes[key]}, beyond any real model (at most ${SIZE_BOUNDS[key]}); the config is damaged`, where);
    }
  }
}

/** Token ids the model's embedding cannot look up: a tokenizer that does not belong to this model. */
export function checkTokenIds(ids: Int32Array, cfg: ModelConfig, where: string): void {
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i]!;
    if (id < 0 || id >= cfg.vocabSize) {
      throw new PruneLensError('checkpoint', `the tokenizer produced token id ${id} (token ${i} of the text), but the model's vocab_size is ${cfg.vocabSize}; tokenizer.json does not belong to this model`, where);
    }
  }
}

/** The stored name prefix of layer `layer`'s tensors (`model.layers.3.`, `h.3.`, `gpt_neox.layers.3.`). */
export function layerPrefix(cfg: Pick<ModelConfig, 'arch'>, layer: number): string {
  const { names } = cfg.arch;
  return `${names.root}${names.layers}.${layer}.`;
}

/** The linears a block of this family holds (no gate in GPT-2, OPT and GPT-NeoX), in LINEARS order. */
export function blockLinears(cfg: Pick<ModelConfig, 'arch'>): LinearName[] {
  return LINEARS.filter((l) => cfg.arch.gated || l !== 'mlp.gate_proj');
}

/** [out, in] of every linear in a decoder block, from the widths alone (the model tree reads a summary, not a config). */
export function linearShapes(dims: Pick<ModelConfig, 'hiddenSize' | 'intermediateSize' | 'numHeads' | 'numKvHeads' | 'headDim'>): Record<LinearName, [number, number]> {
  const d = dims.hiddenSize;
  const q = dims.numHeads * dims.headDim;
  const kv = dims.numKvHeads * dims.headDim;
  const i = dims.intermediateSize;
  return {
    'self_attn.q_proj': [q, d],
    'self_attn.k_proj': [kv, d],
    'self_attn.v_proj': [kv, d],
    'self_attn.o_proj': [d, q],
    'mlp.gate_proj': [i, d],
    'mlp.up_proj': [i, d],
    'mlp.down_proj': [d, i],
  };
}

/**
 * The block-relative name and shape of every tensor a decoder block holds, as the engine works on it:
 * the seven linears separately, whatever the checkpoint fuses (see families/fused.ts).
 */
export function blockTensorShapes(cfg: ModelConfig, layer = 0): Map<string, number[]> {
  const d = cfg.hiddenSize;
  const moe = cfg.arch.moe?.sparse[layer] ? cfg.arch.moe : undefined;
  const shapesOfLinears = linearShapes(cfg);
  const shapes = new Map<string, number[]>([
    ['input_layernorm.weight', [d]],
    ['post_attention_layernorm.weight', [d]],
  ]);
  if (cfg.arch.norm === 'layer') {
    shapes.set('input_layernorm.bias', [d]);
    shapes.set('post_attention_layernorm.bias', [d]);
  }
  if (cfg.arch.sandwichNorms) {
    shapes.set('pre_feedforward_layernorm.weight', [d]);
    shapes.set('post_feedforward_layernorm.weight', [d]);
  }
  if (cfg.arch.qkNorm) {
    const projection = cfg.arch.qkNormOver === 'projection';
    shapes.set('self_attn.q_norm.weight', [projection ? cfg.numHeads * cfg.headDim : cfg.headDim]);
    shapes.set('self_attn.k_norm.weight', [projection ? cfg.numKvHeads * cfg.headDim : cfg.headDim]);
  }
  for (const name of blockLinears(cfg)) {
    // A sparse layer's MLP is its router and experts (families/moe.ts), not the three dense linears.
    if (moe && name.startsWith('mlp.')) continue;
    shapes.set(`${name}.weight`, shapesOfLinears[name]);
    if (cfg.biasedLinears.has(name)) shapes.set(`${name}.bias`, [shapesOfLinears[name][0]]);
  }
  if (moe) for (const [name, shape] of moeTensorShapes(moe, d)) shapes.set(name, shape);
  return shapes;
}

/** The block's tensors as the checkpoint stores them: fused projections as one tensor each, renamed, transposed. */
export function storedBlockShapes(cfg: ModelConfig, layer = 0): Map<string, number[]> {
  return storedShapes(cfg, blockTensorShapes(cfg, layer));
}

/** Every tensor the checkpoint must hold for this config, with its shape. */
export function expectedTensorShapes(cfg: ModelConfig): Map<string, number[]> {
  const { names, projection, positionOffset, finalNorm, norm } = cfg.arch;
  const d = cfg.hiddenSize;
  const embedWidth = projection ?? d;
  const shapes = new Map<string, number[]>([[topName(names, names.embed), [cfg.vocabSize, embedWidth]]]);
  if (positionOffset !== undefined) shapes.set(topName(names, names.positions!), [cfg.maxPositionEmbeddings + positionOffset, d]);
  if (projection !== undefined) shapes.set(topName(names, names.projectIn!), [d, projection]);
  for (let l = 0; l < cfg.numLayers; l++) {
    for (const [name, shape] of storedBlockShapes(cfg, l)) shapes.set(layerPrefix(cfg, l) + name, shape);
  }
  if (finalNorm) {
    shapes.set(topName(names, names.finalNorm), [d]);
    if (norm === 'layer') shapes.set(topName(names, names.finalNorm, 'bias'), [d]);
  }
  if (projection !== undefined) shapes.set(topName(names, names.projectOut!), [projection, d]);
  if (!cfg.tieWordEmbeddings) shapes.set(`${names.lmHead}.weight`, [cfg.vocabSize, embedWidth]);
  return shapes;
}

/** Full names of every tensor the decoder blocks hold, layer by layer. */
export function blockTensorNames(cfg: ModelConfig): string[] {
  return Array.from({ length: cfg.numLayers }, (_, l) => [...storedBlockShapes(cfg, l).keys()].map((name) => layerPrefix(cfg, l) + name)).flat();
}

/** The block-relative name of the stored tensor that holds `linear`'s weight (`self_attn.qkv_proj` for q in Phi-3, `attn.c_attn` in GPT-2). */
export function storedLinear(cfg: Pick<ModelConfig, 'arch'>, linear: LinearName): string {
  return storedModule(cfg.arch.names, linear);
}

/** Full names of every linear weight tensor in the decoder blocks, as stored: the candidates for pruning. */
export function linearWeightNames(cfg: ModelConfig): string[] {
  const stored = [...new Set(blockLinears(cfg).map((linear) => storedLinear(cfg, linear)))];
  return Array.from({ length: cfg.numLayers }, (_, l) => {
    const present = storedBlockShapes(cfg, l);
    // A sparse layer's experts are linears too; its router is not (a row per expert, pruned only whole, with the expert).
    const experts = [...present.keys()].filter((name) => name.includes('.experts.'));
    return [...stored.filter((linear) => present.has(`${linear}.weight`)).map((linear) => `${linear}.weight`), ...experts].map((name) => `${layerPrefix(cfg, l)}${name}`);
  }).flat();
}

/**
 * Tensors some exporters save that carry nothing the graph needs: old rotary caches, a duplicate tied
 * head, and per-block causal-mask buffers (GPT-2's `attn.bias`, GPT-NeoX's `attention.masked_bias`).
 */
export function isIgnorableTensor(cfg: ModelConfig, name: string): boolean {
  const { names } = cfg.arch;
  if (name.endsWith('.rotary_emb.inv_freq') || (cfg.tieWordEmbeddings && name === `${names.lmHead}.weight`)) return true;
  const prefix = `${names.root}${names.layers}.`;
  if (!name.startsWith(prefix)) return false;
  const inBlock = name.slice(prefix.length).replace(/^\d+\./, '');
  return names.buffers.includes(inBlock);
}

export function parameterCount(cfg: ModelConfig): number {
  let n = 0;
  for (const shape of expectedTensorShapes(cfg).values()) n += shape.reduce((a, b) => a * b, 1);
  return n;
}

/**
 * The config with the tensor-name root the checkpoint actually uses: GPT-2 is published without
 * `transformer.` but saved with it by transformers; OPT's releases use `decoder.`, not `model.decoder.`.
 */
export function withStoredRoot(cfg: ModelConfig, has: (name: string) => boolean): ModelConfig {
  const { names } = cfg.arch;
  if (has(topName(names, names.embed))) return cfg;
  const root = names.otherRoots.find((r) => has(`${r}${names.embed}.weight`));
  return root === undefined ? cfg : { ...cfg, arch: { ...cfg.arch, names: { ...names, root } } };
}
