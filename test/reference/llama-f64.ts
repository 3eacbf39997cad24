/**
 * Independent plain-JS float64 forward pass of a Hugging Face Llama/Mistral/Qwen2 decoder
 * (semantics of transformers' modeling_llama.py, rope_scaling per modeling_rope_utils.py, sliding
 * windows per masking_utils.py). Ground truth for tests of the ONNX graphs.
 *
 * Deliberately imports nothing from src/ and favours obvious code over speed.
 * All matrices are row-major. Linear layers follow PyTorch: weight [out, in], y = x W^T (+ b).
 */

export interface RefConfig {
  hidden_size: number;
  intermediate_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  num_key_value_heads: number;
  head_dim?: number;
  rms_norm_eps: number;
  rope_theta: number;
  vocab_size: number;
  tie_word_embeddings: boolean;
  /** Biases (qwen2's q/k/v, llama's attention_bias / mlp_bias) are used whenever present in the weights. */
  attention_bias?: boolean;
  model_type?: string;
  rope_scaling?: Record<string, unknown> | null;
  max_position_embeddings?: number;
  sliding_window?: number | null;
  use_sliding_window?: boolean;
  max_window_layers?: number;
}

import { applyRotary, ropeCosSin } from './rope-f64';

export type RefWeights = (name: string) => { shape: number[]; data: Float64Array } | undefined;

function need(w: RefWeights, name: string): { shape: number[]; data: Float64Array } {
  const t = w(name);
  if (!t) throw new Error(`reference: missing weight ${name}`);
  return t;
}

function headDim(cfg: RefConfig): number {
  return cfg.head_dim ?? cfg.hidden_size / cfg.num_attention_heads;
}

/** y[T, out] = x[T, in] W^T + b, with W [out, in] row-major. */
export function linear(x: Float64Array, T: number, inDim: number, W: Float64Array, outDim: number, b?: Float64Array): Float64Array {
  if (W.length !== outDim * inDim) throw new Error(`reference: weight size ${W.length} != ${outDim}x${inDim}`);
  const y = new Float64Array(T * outDim);
  for (let t = 0; t < T; t++) {
    const xo = t * inDim;
    for (let o = 0; o < outDim; o++) {
      const wo = o * inDim;
      let s = 0;
      for (let i = 0; i < inDim; i++) s += x[xo + i] * W[wo + i];
      y[t * outDim + o] = b ? s + b[o] : s;
    }
  }
  return y;
}

/** RMSNorm per row: x / sqrt(mean(x^2) + eps) * weight. */
export function rmsNorm(x: Float64Array, T: number, D: number, weight: Float64Array, eps: number): Float64Array {
  const y = new Float64Array(T * D);
  for (let t = 0; t < T; t++) {
    let ss = 0;
    for (let i = 0; i < D; i++) ss += x[t * D + i] * x[t * D + i];
    const inv = 1 / Math.sqrt(ss / D + eps);
    for (let i = 0; i < D; i++) y[t * D + i] = x[t * D + i] * inv * weight[i];
  }
  return y;
}

/**
 * The sliding window of a layer, or undefined for full attention: Mistral slides everywhere, Qwen2
 * only with use_sliding_window and from layer max_window_layers on (Qwen2Config.layer_types).
 */
function slidingWindowOf(cfg: RefConfig, layer: number): number | undefined {
  if (cfg.sliding_window === undefined || cfg.sliding_window === null) return undefined;
  if (cfg.model_type === 'mistral') return cfg.sliding_window;
  if ((cfg.model_type === 'qwen2' || cfg.model_type === 'qwen3') && cfg.use_sliding_window) return layer >= (cfg.max_window_layers ?? 0) ? cfg.sliding_window : undefined;
  return undefined;
}

export interface AttentionOptions {
  /** Multiplies q·k. */
  scale: number;
  /** Gemma 2: scores = tanh(scores / softcap) * softcap, before the mask. */
  softcap?: number;
  /** Key j is visible from query i when i - j < window (masking_utils' sliding_window_overlay). */
  window?: number;
}

/**
 * Eager attention: q [T, nH*hd], k/v [T, nKV*hd] (rotary already applied), query head h reads
 * key/value head floor(h / (nH / nKV)) (repeat_kv). Returns [T, nH*hd], heads concatenated.
 */
export function causalAttention(q: Float64Array, k: Float64Array, v: Float64Array, T: number, nH: number, nKV: number, hd: number, options: AttentionOptions): Float64Array {
  const groups = nH / nKV;
  const attn = new Float64Array(T * nH * hd);
  const scores = new Float64Array(T);
  for (let h = 0; h < nH; h++) {
    const kvh = Math.floor(h / groups);
    for (let i = 0; i < T; i++) {
      const qo = i * nH * hd + h * hd;
      const first = options.window === undefined ? 0 : Math.max(0, i - options.window + 1);
      let max = -Infinity;
      for (let j = first; j <= i; j++) {
        const ko = j * nKV * hd + kvh * hd;
        let s = 0;
        for (let d = 0; d < hd; d++) s += q[qo + d] * k[ko + d];
        s *= options.scale;
        if (options.softcap !== undefined) s = Math.tanh(s / options.softcap) * options.softcap;
        scores[j] = s;
        if (s > max) max = s;
      }
      let sum = 0;
      for (let j = first; j <= i; j++) {
        scores[j] = Math.exp(scores[j] - max);
        sum += scores[j];
      }
      for (let j = first; j <= i; j++) {
        const pj = scores[j] / sum;
        const vo = j * nKV * hd + kvh * hd;
        for (let d = 0; d < hd; d++) attn[qo + d] += pj * v[vo + d];
      }
    }
  }
  return attn;
}

export function silu(v: number): number {
  return v / (1 + Math.exp(-v));
}

/** Hidden state after decoder block `layer` (0-based), given the block's input hidden states [T, hidden]. */
export function referenceBlock(cfg: RefConfig, w: RefWeights, layer: number, hidden: Float64Array, T: number): Float64Array {
  const D = cfg.hidden_size;
  const F = cfg.intermediate_size;
  const nH = cfg.num_attention_heads;
  const nKV = cfg.num_key_value_heads;
  const hd = headDim(cfg);
  if (hidden.length !== T * D) throw new Error(`reference: hidden length ${hidden.length} != ${T}x${D}`);
  const p = `model.layers.${layer}.`;

  // --- self-attention ---
  const xn = rmsNorm(hidden, T, D, need(w, p + 'input_layernorm.weight').data, cfg.rms_norm_eps);
  const q = linear(xn, T, D, need(w, p + 'self_attn.q_proj.weight').data, nH * hd, w(p + 'self_attn.q_proj.bias')?.data);
  const k = linear(xn, T, D, need(w, p + 'self_attn.k_proj.weight').data, nKV * hd, w(p + 'self_attn.k_proj.bias')?.data);
  const v = linear(xn, T, D, need(w, p + 'self_attn.v_proj.weight').data, nKV * hd, w(p + 'self_attn.v_proj.bias')?.data);
  const { cos, sin } = ropeCosSin(cfg, T);
  applyRotary(q, T, nH, hd, cos, sin);
  applyRotary(k, T, nKV, hd, cos, sin);

  const attn = causalAttention(q, k, v, T, nH, nKV, hd, { scale: 1 / Math.sqrt(hd), window: slidingWindowOf(cfg, layer) });
  const o = linear(attn, T, nH * hd, need(w, p + 'self_attn.o_proj.weight').data, D, w(p + 'self_attn.o_proj.bias')?.data);
  const h1 = new Float64Array(T * D);
  for (let i = 0; i < T * D; i++) h1[i] = hidden[i] + o[i];

  // --- MLP: down(silu(gate(x)) * up(x)) ---
  const xn2 = rmsNorm(h1, T, D, need(w, p + 'post_attention_layernorm.weight').data, cfg.rms_norm_eps);
  const gate = linear(xn2, T, D, need(w, p + 'mlp.gate_proj.weight').data, F, w(p + 'mlp.gate_proj.bias')?.data);
  const up = linear(xn2, T, D, need(w, p + 'mlp.up_proj.weight').data, F, w(p + 'mlp.up_proj.bias')?.data);
  const act = new Float64Array(T * F);
  for (let i = 0; i < T * F; i++) act[i] = silu(gate[i]) * up[i];
  const down = linear(act, T, F, need(w, p + 'mlp.down_proj.weight').data, D, w(p + 'mlp.down_proj.bias')?.data);
  const out = new Float64Array(T * D);
  for (let i = 0; i < T * D; i++) out[i] = h1[i] + down[i];
  return out;
}

/** Token embeddings [T, hidden] for ids. */
export function referenceEmbed(cfg: RefConfig, w: RefWeights, ids: number[]): Float64Array {
  const D = cfg.hidden_size;
  const E = need(w, 'model.embed_tokens.weight').data;
  const x = new Float64Array(ids.length * D);
  for (let t = 0; t < ids.length; t++) {
    const id = ids[t];
    if (!Number.isInteger(id) || id < 0 || id >= cfg.vocab_size) throw new Error(`reference: token id ${id} out of range`);
    for (let i = 0; i < D; i++) x[t * D + i] = E[id * D + i];
  }
  return x;
}

/** Final RMSNorm then lm_head (or tied embed_tokens): [T, hidden] -> logits [T, vocab]. */
export function referenceHead(cfg: RefConfig, w: RefWeights, hidden: Float64Array, T: number): Float64Array {
  const D = cfg.hidden_size;
  const xn = rmsNorm(hidden, T, D, need(w, 'model.norm.weight').data, cfg.rms_norm_eps);
  const head = cfg.tie_word_embeddings ? need(w, 'model.embed_tokens.weight') : need(w, 'lm_head.weight');
  return linear(xn, T, D, head.data, cfg.vocab_size);
}

/** Logits [T, vocab] row-major for one sequence of token ids (causal attention, positions 0..T-1). */
export function referenceLogits(cfg: RefConfig, w: RefWeights, ids: number[]): Float64Array {
  const T = ids.length;
  let h = referenceEmbed(cfg, w, ids);
  for (let l = 0; l < cfg.num_hidden_layers; l++) h = referenceBlock(cfg, w, l, h, T);
  return referenceHead(cfg, w, h, T);
}

/** Per-target NLL: entry t is -log softmax(logits[t])[ids[t+1]] for t in 0..T-2 (stable log-sum-exp). */
export function referenceTokenNll(cfg: RefConfig, w: RefWeights, ids: number[]): Float64Array {
  const T = ids.length;
  const V = cfg.vocab_size;
  const logits = referenceLogits(cfg, w, ids);
  const nll = new Float64Array(Math.max(0, T - 1));
  for (let t = 0; t < T - 1; t++) {
    const o = t * V;
    let max = -Infinity;
    for (let i = 0; i < V; i++) if (logits[o + i] > max) max = logits[o + i];
    let sum = 0;
    for (let i = 0; i < V; i++) sum += Math.exp(logits[o + i] - max);
    const lse = max + Math.log(sum);
    nll[t] = lse - logits[o + ids[t + 1]];
  }
  return nll;
}
