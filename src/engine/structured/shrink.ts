import type { ModelConfig } from '../model/config';
import { CONFIG_KEYS, layerTypesFor } from '../model/families/architecture';

/** What one decoder block keeps: whole key/value groups (each with its query heads) and MLP channels. */
export interface BlockKeep {
  /** Key/value heads kept, ascending; query head h belongs to key/value head floor(h / group). */
  kvHeads: number[];
  /** MLP channels kept, ascending. */
  channels: number[];
}

/**
 * Cuts a block's tensors down to what it keeps: q rows and o_proj columns of the kept query heads,
 * k/v rows of the kept key/value heads, gate/up rows and down_proj columns of the kept channels
 * (biases follow their rows). A key/value head is only ever removed with every query head that
 * reads it, so no kept query head loses its keys and values. Row and column copies only.
 */
export function shrinkBlock(cfg: ModelConfig, weights: Map<string, Float32Array>, keep: BlockKeep): Map<string, Float32Array> {
  const { hiddenSize: d, headDim: hd, intermediateSize: inter } = cfg;
  const group = cfg.numHeads / cfg.numKvHeads;
  const queryHeads = keep.kvHeads.flatMap((k) => Array.from({ length: group }, (_, i) => k * group + i));
  const headRows = (heads: number[]) => heads.flatMap((h) => Array.from({ length: hd }, (_, i) => h * hd + i));
  const qRows = headRows(queryHeads);
  const kvRows = headRows(keep.kvHeads);
  const out = new Map<string, Float32Array>();
  for (const [name, values] of weights) {
    const [linear, kind] = [name.slice(0, name.lastIndexOf('.')), name.slice(name.lastIndexOf('.') + 1)];
    switch (linear) {
      case 'self_attn.q_proj':
        out.set(name, kind === 'weight' ? rows(values, d, qRows) : pick(values, qRows));
        break;
      case 'self_attn.k_proj':
      case 'self_attn.v_proj':
        out.set(name, kind === 'weight' ? rows(values, d, kvRows) : pick(values, kvRows));
        break;
      case 'self_attn.o_proj':
        out.set(name, kind === 'weight' ? columns(values, cfg.numHeads * hd, qRows) : values);
        break;
      case 'mlp.gate_proj':
      case 'mlp.up_proj':
        out.set(name, kind === 'weight' ? rows(values, d, keep.channels) : pick(values, keep.channels));
        break;
      case 'mlp.down_proj':
        out.set(name, kind === 'weight' ? columns(values, inter, keep.channels) : values);
        break;
      default:
        out.set(name, values);
    }
  }
  return out;
}

/** The kept rows of a row-major matrix with `cols` columns. */
function rows(values: Float32Array, cols: number, keep: number[]): Float32Array {
  const out = new Float32Array(keep.length * cols);
  keep.forEach((r, i) => out.set(values.subarray(r * cols, (r + 1) * cols), i * cols));
  return out;
}

/** The kept columns of a row-major matrix with `cols` columns. */
function columns(values: Float32Array, cols: number, keep: number[]): Float32Array {
  const rowCount = values.length / cols;
  const out = new Float32Array(rowCount * keep.length);
  for (let r = 0; r < rowCount; r++) for (let i = 0; i < keep.length; i++) out[r * keep.length + i] = values[r * cols + keep[i]!]!;
  return out;
}

function pick(values: Float32Array, keep: number[]): Float32Array {
  return Float32Array.from(keep, (i) => values[i]!);
}

/**
 * config.json for the shrunk model: the same Hugging Face fields, with the new widths and depth.
 * head_dim is written explicitly because hidden_size / num_attention_heads no longer gives it;
 * families with sliding and global layers get `layer_types` for the kept layers, so removing a layer
 * does not shift the pattern. q/k norms are head_dim wide and shared by all heads: they stay as they are.
 */
export function shrunkConfig(cfg: ModelConfig, shape: { layers: readonly number[]; kvHeads: number; channels: number }): Record<string, unknown> {
  const group = cfg.numHeads / cfg.numKvHeads;
  if (cfg.arch.headDimFromWidth) {
    // GPT-2, OPT, GPT-NeoX: their own keys (n_layer, n_inner, ffn_dim); heads never change (see structured-prune.ts).
    const key = (name: string): string => CONFIG_KEYS[cfg.modelType]?.[name] ?? name;
    return { ...cfg.raw, [key('num_hidden_layers')]: shape.layers.length, [key('intermediate_size')]: shape.channels };
  }
  return {
    ...cfg.raw,
    ...layerTypesFor(cfg.arch, shape.layers),
    num_hidden_layers: shape.layers.length,
    num_attention_heads: shape.kvHeads * group,
    num_key_value_heads: shape.kvHeads,
    head_dim: cfg.headDim,
    intermediate_size: shape.channels,
  };
}
