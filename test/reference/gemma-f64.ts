/**
 * Independent float64 forward of Hugging Face Gemma, Gemma 2 and Gemma 3 (text) decoders
 * (modeling_gemma.py, modeling_gemma2.py, modeling_gemma3.py):
 * - GemmaRMSNorm: x / sqrt(mean(x²) + eps) * (1 + w);
 * - embeddings times hidden_size**0.5 cast to the weights' dtype (float32 here);
 * - GeGLU MLP with gelu_pytorch_tanh;
 * - Gemma 2/3: post_attention_layernorm on the attention output and pre/post_feedforward_layernorm
 *   around the MLP, attention scaled by query_pre_attn_scalar**-0.5, attention logits soft-capped
 *   (attn_logit_softcapping) and final logits soft-capped (final_logit_softcapping), sliding-window
 *   layers (layer_types, else every other layer in Gemma 2 and five of six in Gemma 3);
 * - Gemma 3: q_norm / k_norm per head before rotary; local layers use rope_local_base_freq with
 *   plain rotary, global layers rope_theta with rope_scaling.
 * Imports nothing from src/.
 */
import { causalAttention, linear, type RefWeights } from './llama-f64';
import { applyRotary, ropeCosSin, type RawConfig } from './rope-f64';

function need(w: RefWeights, name: string): Float64Array {
  const t = w(name);
  if (!t) throw new Error(`reference: missing weight ${name}`);
  return t.data;
}

/** GemmaRMSNorm on rows of width D. */
function gemmaNorm(x: Float64Array, rows: number, D: number, weight: Float64Array, eps: number): Float64Array {
  const y = new Float64Array(rows * D);
  for (let r = 0; r < rows; r++) {
    let ss = 0;
    for (let i = 0; i < D; i++) ss += x[r * D + i]! ** 2;
    const inv = 1 / Math.sqrt(ss / D + eps);
    for (let i = 0; i < D; i++) y[r * D + i] = x[r * D + i]! * inv * (1 + weight[i]!);
  }
  return y;
}

/** gelu_pytorch_tanh: 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))). */
function geluTanh(x: number): number {
  return 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3)));
}

function version(cfg: RawConfig): 1 | 2 | 3 {
  return cfg.model_type === 'gemma' ? 1 : cfg.model_type === 'gemma2' ? 2 : 3;
}

function isSliding(cfg: RawConfig, layer: number): boolean {
  const v = version(cfg);
  if (v === 1 || cfg.sliding_window == null) return false;
  if (Array.isArray(cfg.layer_types)) return cfg.layer_types[layer] === 'sliding_attention';
  return v === 2 ? (layer + 1) % 2 !== 0 : (layer + 1) % (cfg.sliding_window_pattern ?? 6) !== 0;
}

function gemmaBlock(cfg: RawConfig, w: RefWeights, layer: number, hidden: Float64Array, T: number): Float64Array {
  const v = version(cfg);
  const D: number = cfg.hidden_size;
  const F: number = cfg.intermediate_size;
  const nH: number = cfg.num_attention_heads;
  const nKV: number = cfg.num_key_value_heads;
  const hd: number = cfg.head_dim;
  const eps: number = cfg.rms_norm_eps;
  const p = `model.layers.${layer}.`;
  const sliding = isSliding(cfg, layer);

  const xn = gemmaNorm(hidden, T, D, need(w, p + 'input_layernorm.weight'), eps);
  let q = linear(xn, T, D, need(w, p + 'self_attn.q_proj.weight'), nH * hd, w(p + 'self_attn.q_proj.bias')?.data);
  let k = linear(xn, T, D, need(w, p + 'self_attn.k_proj.weight'), nKV * hd, w(p + 'self_attn.k_proj.bias')?.data);
  const val = linear(xn, T, D, need(w, p + 'self_attn.v_proj.weight'), nKV * hd, w(p + 'self_attn.v_proj.bias')?.data);
  if (v === 3) {
    q = gemmaNorm(q, T * nH, hd, need(w, p + 'self_attn.q_norm.weight'), eps);
    k = gemmaNorm(k, T * nKV, hd, need(w, p + 'self_attn.k_norm.weight'), eps);
  }
  const ropeConfig = v === 3 && sliding ? { ...cfg, rope_theta: cfg.rope_local_base_freq ?? 10000, rope_scaling: null } : cfg;
  const { cos, sin } = ropeCosSin(ropeConfig, T);
  applyRotary(q, T, nH, hd, cos, sin);
  applyRotary(k, T, nKV, hd, cos, sin);
  const scale = v === 1 ? hd ** -0.5 : (cfg.query_pre_attn_scalar as number) ** -0.5;
  const attn = causalAttention(q, k, val, T, nH, nKV, hd, {
    scale,
    softcap: v === 1 ? undefined : (cfg.attn_logit_softcapping ?? undefined),
    window: sliding ? cfg.sliding_window : undefined,
  });
  let o = linear(attn, T, nH * hd, need(w, p + 'self_attn.o_proj.weight'), D, w(p + 'self_attn.o_proj.bias')?.data);
  if (v !== 1) o = gemmaNorm(o, T, D, need(w, p + 'post_attention_layernorm.weight'), eps);
  const h1 = hidden.map((x, i) => x + o[i]!);

  const xn2 = gemmaNorm(h1, T, D, need(w, p + (v === 1 ? 'post_attention_layernorm.weight' : 'pre_feedforward_layernorm.weight')), eps);
  const gate = linear(xn2, T, D, need(w, p + 'mlp.gate_proj.weight'), F);
  const up = linear(xn2, T, D, need(w, p + 'mlp.up_proj.weight'), F);
  let down = linear(gate.map((g, i) => geluTanh(g) * up[i]!), T, F, need(w, p + 'mlp.down_proj.weight'), D);
  if (v !== 1) down = gemmaNorm(down, T, D, need(w, p + 'post_feedforward_layernorm.weight'), eps);
  return h1.map((x, i) => x + down[i]!);
}

/** Logits [T, vocab] for one sequence. */
export function gemmaLogits(cfg: RawConfig, w: RefWeights, ids: number[]): Float64Array {
  const T = ids.length;
  const D: number = cfg.hidden_size;
  const E = need(w, 'model.embed_tokens.weight');
  const normalizer = Math.fround(Math.sqrt(D)); // hidden_size**0.5 as a float32 tensor
  let h: Float64Array = new Float64Array(T * D);
  for (let t = 0; t < T; t++) for (let i = 0; i < D; i++) h[t * D + i] = E[ids[t]! * D + i]! * normalizer;
  for (let l = 0; l < cfg.num_hidden_layers; l++) h = gemmaBlock(cfg, w, l, h, T);
  const xn = gemmaNorm(h, T, D, need(w, 'model.norm.weight'), cfg.rms_norm_eps);
  const logits = linear(xn, T, D, cfg.tie_word_embeddings === false ? need(w, 'lm_head.weight') : E, cfg.vocab_size);
  const cap = version(cfg) === 1 ? undefined : cfg.final_logit_softcapping;
  return cap == null ? logits : logits.map((z) => Math.tanh(z / cap) * cap);
}
