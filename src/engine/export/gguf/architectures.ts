/**
 * How each model family the engine reads maps onto a llama.cpp architecture: its name (the prefix of
 * its metadata keys), its tensor names, and the layout changes llama.cpp expects. Adding a family is one
 * entry in GGUF_ARCHITECTURES; tensors without a name here are refused before anything is written.
 */
import { expectedTensorShapes, type ModelConfig } from '../../model/config';
import { EXPERT_LINEARS, type ExpertLinear } from '../../model/families/moe';
import { GEMMA, GEMMA2, GEMMA3 } from './arch-gemma';
import { MIXTRAL, OLMOE, QWEN2_MOE, QWEN3_MOE } from './arch-moe';
import { PHI3 } from './arch-phi3';
import { QWEN3 } from './arch-qwen3';
import { LLAMA_BLOCK, type GgufArchitecture } from './gguf-architecture';
import type { GgufValue } from './gguf-writer';
import { GPT2_GGUF, GPT_NEOX_GGUF } from './gpt-architectures';

export type { GgufArchitecture } from './gguf-architecture';

/** Keyed by config.json's model_type. Mistral is llama.cpp's llama (as convert_hf_to_gguf.py writes it). */
export const GGUF_ARCHITECTURES: Readonly<Record<string, GgufArchitecture>> = {
  llama: { name: 'llama', blockTensors: LLAMA_BLOCK, interleavedRope: true, ropeScaling: { llama3: (cfg) => ({ tensors: [{ name: 'rope_freqs.weight', values: llama3RopeFactors(cfg.raw, cfg.headDim, cfg.ropeTheta) }] }) } },
  mistral: { name: 'llama', blockTensors: LLAMA_BLOCK, interleavedRope: true },
  qwen2: { name: 'qwen2', blockTensors: LLAMA_BLOCK, interleavedRope: false },
  qwen3: QWEN3,
  gemma: GEMMA,
  gemma2: GEMMA2,
  gemma3_text: GEMMA3,
  phi3: PHI3,
  mixtral: MIXTRAL,
  qwen2_moe: QWEN2_MOE,
  qwen3_moe: QWEN3_MOE,
  olmoe: OLMOE,
  gpt2: GPT2_GGUF,
  gpt_neox: GPT_NEOX_GGUF,
};

export const GGUF_MODEL_TYPES = Object.keys(GGUF_ARCHITECTURES);

/** Tensors outside the blocks, shared by every family here. */
const GLOBAL_TENSORS: Readonly<Record<string, string>> = {
  'model.embed_tokens.weight': 'token_embd.weight',
  'model.norm.weight': 'output_norm.weight',
  'lm_head.weight': 'output.weight',
};

const LAYER = /^model\.layers\.(\d+)\.(.+)$/;

/** llama.cpp's name for a checkpoint tensor, or undefined when this family has none for it. */
export function ggufTensorName(arch: GgufArchitecture, hfName: string, cfg?: ModelConfig): string | undefined {
  if (arch.tensorName && cfg) return arch.tensorName(cfg, hfName);
  const global = GLOBAL_TENSORS[hfName];
  if (global) return global;
  const m = LAYER.exec(hfName);
  const block = m ? arch.blockTensors[m[2]!] : undefined;
  return block && `blk.${m![1]}.${block}`;
}

/** One tensor of the GGUF file and the checkpoint tensors it is made of, in PyTorch's shape order. */
export interface GgufTensorSource {
  name: string;
  shape: number[];
  /** One checkpoint tensor, or (stacked experts) one per expert, expert j's matrix the j-th slab. */
  sources: string[];
}

/**
 * Every tensor of the GGUF file, from the checkpoint's: renamed, each MoE layer's experts stacked per
 * linear into `blk.N.ffn_{gate,up,down}_exps` [experts, out, in] (convert_hf_to_gguf.py's torch.stack
 * over expert ids), and the tied output head written again where the architecture needs it. Undefined
 * names are listed in `unnamed` for the caller to refuse.
 */
export function ggufTensors(arch: GgufArchitecture, cfg: ModelConfig): { tensors: GgufTensorSource[]; unnamed: string[] } {
  const moe = cfg.arch.moe;
  const expert = moe && new RegExp(`^model\\.layers\\.(\\d+)\\.${moe.module}\\.experts\\.(\\d+)\\.([^.]+)\\.weight$`);
  const linearOf = moe && new Map<string, ExpertLinear>(EXPERT_LINEARS.map((l) => [moe.names[l], l]));
  const tensors: GgufTensorSource[] = [];
  const unnamed: string[] = [];
  const shapes = expectedTensorShapes(cfg);
  for (const [source, shape] of shapes) {
    const m = expert?.exec(source);
    const linear = m && linearOf!.get(m[3]!);
    if (m && linear) {
      // The stacked tensor is listed once, at expert 0; every expert of the layer is in expectedTensorShapes.
      if (m[2] !== '0') continue;
      const sources = Array.from({ length: moe!.experts }, (_, j) => source.replace(`.experts.0.`, `.experts.${j}.`));
      tensors.push({ name: `blk.${m[1]}.ffn_${linear}_exps.weight`, shape: [moe!.experts, ...shape], sources });
      continue;
    }
    const name = ggufTensorName(arch, source, cfg);
    if (name) tensors.push({ name, shape, sources: [source] });
    else unnamed.push(source);
  }
  if (arch.duplicateTiedOutput && cfg.tieWordEmbeddings) {
    const embed = 'model.embed_tokens.weight';
    tensors.push({ name: 'output.weight', shape: shapes.get(embed)!, sources: [embed] });
  }
  return { tensors, unnamed };
}

/** The architecture keys llama.cpp's loader reads for a llama-style decoder. */
export function architectureMetadata(arch: GgufArchitecture, cfg: ModelConfig): [string, GgufValue][] {
  const a = arch.name;
  const entries: [string, GgufValue][] = [
    ['general.architecture', { type: 'string', value: a }],
    [`${a}.context_length`, { type: 'u32', value: cfg.maxPositionEmbeddings }],
    [`${a}.embedding_length`, { type: 'u32', value: cfg.hiddenSize }],
    [`${a}.block_count`, { type: 'u32', value: cfg.numLayers }],
    [`${a}.feed_forward_length`, { type: 'u32', value: cfg.intermediateSize }],
    [`${a}.attention.head_count`, { type: 'u32', value: cfg.numHeads }],
    [`${a}.attention.head_count_kv`, { type: 'u32', value: cfg.numKvHeads }],
    [`${a}.rope.freq_base`, { type: 'f32', value: cfg.ropeTheta }],
    [`${a}.rope.dimension_count`, { type: 'u32', value: cfg.arch.rotaryDim }],
    [`${a}.attention.layer_norm_rms_epsilon`, { type: 'f32', value: cfg.rmsNormEps }],
    [`${a}.vocab_size`, { type: 'u32', value: cfg.vocabSize }],
  ];
  // Without these llama.cpp takes embedding_length / head_count, which a structured prune that
  // removed heads (head_dim written explicitly) no longer equals.
  if (cfg.raw.head_dim !== undefined || cfg.headDim * cfg.numHeads !== cfg.hiddenSize) {
    entries.push([`${a}.attention.key_length`, { type: 'u32', value: cfg.headDim }], [`${a}.attention.value_length`, { type: 'u32', value: cfg.headDim }]);
  }
  const moe = cfg.arch.moe;
  if (moe) entries.push([`${a}.expert_count`, { type: 'u32', value: moe.experts }], [`${a}.expert_used_count`, { type: 'u32', value: moe.topK }]);
  return [...entries, ...(arch.metadata?.(cfg) ?? [])];
}

/**
 * Reorders the rows of a q or k projection (weight [heads * headDim, cols] or bias [heads * headDim])
 * from Hugging Face's rotate-half layout to llama.cpp's interleaved one: within each head, row
 * `half * headDim/2 + j` moves to `2j + half` (convert_hf_to_gguf.py's LlamaModel.permute).
 */
export function interleaveRopeRows(values: Float32Array, heads: number, headDim: number): Float32Array {
  const cols = values.length / (heads * headDim);
  const out = new Float32Array(values.length);
  const half = headDim / 2;
  for (let h = 0; h < heads; h++) {
    for (let side = 0; side < 2; side++) {
      for (let j = 0; j < half; j++) {
        const from = (h * headDim + side * half + j) * cols;
        const to = (h * headDim + 2 * j + side) * cols;
        out.set(values.subarray(from, from + cols), to);
      }
    }
  }
  return out;
}

/**
 * Llama 3's rope_scaling as llama.cpp takes it: one divisor per rotary frequency in a `rope_freqs`
 * tensor (convert_hf_to_gguf.py's generate_extra_tensors). Frequencies whose wavelength is shorter than
 * original_max_position_embeddings / high_freq_factor are kept, longer than ... / low_freq_factor are
 * divided by `factor`, and those between are blended smoothly.
 */
export function llama3RopeFactors(raw: Record<string, unknown>, headDim: number, theta: number): Float32Array {
  const scaling = (raw.rope_scaling ?? {}) as Record<string, unknown>;
  const num = (key: string, fallback: number): number => (typeof scaling[key] === 'number' ? (scaling[key] as number) : fallback);
  const factor = num('factor', 8);
  const low = num('low_freq_factor', 1);
  const high = num('high_freq_factor', 4);
  const context = num('original_max_position_embeddings', 8192);
  const out = new Float32Array(headDim / 2);
  for (let i = 0; i < headDim / 2; i++) {
    const wavelength = (2 * Math.PI) / Math.fround(1 / theta ** ((2 * i) / headDim));
    if (wavelength < context / high) out[i] = 1;
    else if (wavelength > context / low) out[i] = factor;
    else {
      const smooth = (context / wavelength - low) / (high - low);
      out[i] = 1 / ((1 - smooth) / factor + smooth);
    }
  }
  return out;
}
