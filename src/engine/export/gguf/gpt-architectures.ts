/**
 * GPT-2 and GPT-NeoX (Pythia) in llama.cpp's `gpt2` and `gptneox` architectures, as
 * convert_hf_to_gguf.py writes them: LayerNorm weights and biases, every linear's bias, q/k/v as one
 * `attn_qkv` stacked [q; k; v] by rows. GPT-2's Conv1D weights are transposed to [out, in] and its
 * `wpe` is `position_embd`; GPT-NeoX's per-head query_key_value rows are regrouped into q, k, v, and
 * rope covers the rotary dimensions only (llama.cpp's NEOX rope is Hugging Face's rotate-half).
 */
import type { ModelConfig } from '../../model/config';
import type { GgufArchitecture } from './gguf-architecture';
import type { GgufValue } from './gguf-writer';

/** [rows, cols] row-major -> [cols, rows]. */
function transpose(values: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(values.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = values[r * cols + c]!;
  return out;
}

/** llama.cpp's name for a stored tensor: block tensors by their block-relative name, the rest by their name under the root. */
function namer(globals: Record<string, string>, block: Record<string, string>) {
  return (cfg: ModelConfig, hfName: string): string | undefined => {
    const { names } = cfg.arch;
    if (hfName === `${names.lmHead}.weight`) return 'output.weight';
    if (!hfName.startsWith(names.root)) return undefined;
    const rest = hfName.slice(names.root.length);
    const m = new RegExp(`^${names.layers}\\.(\\d+)\\.(.+)$`).exec(rest);
    if (!m) return globals[rest];
    const mapped = block[m[2]!];
    return mapped && `blk.${m[1]}.${mapped}`;
  };
}

/** The keys both architectures share, with LayerNorm's epsilon (not RMSNorm's). */
function metadata(name: string, cfg: ModelConfig): [string, GgufValue][] {
  return [
    [`${name}.context_length`, { type: 'u32', value: cfg.maxPositionEmbeddings }],
    [`${name}.embedding_length`, { type: 'u32', value: cfg.hiddenSize }],
    [`${name}.block_count`, { type: 'u32', value: cfg.numLayers }],
    [`${name}.feed_forward_length`, { type: 'u32', value: cfg.intermediateSize }],
    [`${name}.attention.head_count`, { type: 'u32', value: cfg.numHeads }],
    [`${name}.attention.layer_norm_epsilon`, { type: 'f32', value: cfg.rmsNormEps }],
  ];
}

const GPT2_BLOCK: Record<string, string> = {
  'ln_1.weight': 'attn_norm.weight',
  'ln_1.bias': 'attn_norm.bias',
  'attn.c_attn.weight': 'attn_qkv.weight',
  'attn.c_attn.bias': 'attn_qkv.bias',
  'attn.c_proj.weight': 'attn_output.weight',
  'attn.c_proj.bias': 'attn_output.bias',
  'ln_2.weight': 'ffn_norm.weight',
  'ln_2.bias': 'ffn_norm.bias',
  'mlp.c_fc.weight': 'ffn_up.weight',
  'mlp.c_fc.bias': 'ffn_up.bias',
  'mlp.c_proj.weight': 'ffn_down.weight',
  'mlp.c_proj.bias': 'ffn_down.bias',
};

export const GPT2_GGUF: GgufArchitecture = {
  name: 'gpt2',
  blockTensors: GPT2_BLOCK,
  interleavedRope: false,
  tensorName: namer({ 'wte.weight': 'token_embd.weight', 'wpe.weight': 'position_embd.weight', 'ln_f.weight': 'output_norm.weight', 'ln_f.bias': 'output_norm.bias' }, GPT2_BLOCK),
  metadata: (cfg) => metadata('gpt2', cfg),
  relayout: (cfg, hfName, shape) => {
    if (shape.length !== 2 || !hfName.startsWith(`${cfg.arch.names.root}${cfg.arch.names.layers}.`)) return undefined;
    const [rows, cols] = shape as [number, number];
    return { shape: [cols, rows], convert: (values) => transpose(values, rows, cols) };
  },
};

const NEOX_BLOCK: Record<string, string> = {
  'input_layernorm.weight': 'attn_norm.weight',
  'input_layernorm.bias': 'attn_norm.bias',
  'attention.query_key_value.weight': 'attn_qkv.weight',
  'attention.query_key_value.bias': 'attn_qkv.bias',
  'attention.dense.weight': 'attn_output.weight',
  'attention.dense.bias': 'attn_output.bias',
  'post_attention_layernorm.weight': 'ffn_norm.weight',
  'post_attention_layernorm.bias': 'ffn_norm.bias',
  'mlp.dense_h_to_4h.weight': 'ffn_up.weight',
  'mlp.dense_h_to_4h.bias': 'ffn_up.bias',
  'mlp.dense_4h_to_h.weight': 'ffn_down.weight',
  'mlp.dense_4h_to_h.bias': 'ffn_down.bias',
};

/** Rows [q_h, k_h, v_h] for each head h -> [q; k; v] (convert_hf_to_gguf.py's GPTNeoXModel.modify_tensors). */
function stackQkv(values: Float32Array, heads: number, headDim: number): Float32Array {
  const cols = values.length / (3 * heads * headDim);
  const out = new Float32Array(values.length);
  for (let h = 0; h < heads; h++) {
    for (let part = 0; part < 3; part++) {
      const from = (h * 3 + part) * headDim * cols;
      out.set(values.subarray(from, from + headDim * cols), (part * heads + h) * headDim * cols);
    }
  }
  return out;
}

export const GPT_NEOX_GGUF: GgufArchitecture = {
  name: 'gptneox',
  blockTensors: NEOX_BLOCK,
  interleavedRope: false,
  tensorName: namer({ 'embed_in.weight': 'token_embd.weight', 'final_layer_norm.weight': 'output_norm.weight', 'final_layer_norm.bias': 'output_norm.bias' }, NEOX_BLOCK),
  metadata: (cfg) => [
    ...metadata('gptneox', cfg),
    ['gptneox.rope.dimension_count', { type: 'u32', value: cfg.arch.rotaryDim }],
    ['gptneox.rope.freq_base', { type: 'f32', value: cfg.arch.layers[0]!.rope.theta }],
    ['gptneox.use_parallel_residual', { type: 'bool', value: cfg.arch.residual === 'parallel' }],
  ],
  relayout: (cfg, hfName, shape) =>
    hfName.endsWith('.attention.query_key_value.weight') || hfName.endsWith('.attention.query_key_value.bias')
      ? { shape, convert: (values) => stackQkv(values, cfg.numHeads, cfg.headDim) }
      : undefined,
};
