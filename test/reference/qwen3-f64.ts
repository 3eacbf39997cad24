/**
 * Independent float64 forward of a Hugging Face Qwen3 decoder (modeling_qwen3.py): Llama's block with
 * an RMSNorm over each query and key head (q_norm, k_norm, head_dim wide) before rotary, an explicit
 * head_dim, optional attention biases, and sliding-window layers from max_window_layers on when
 * use_sliding_window is set. Imports nothing from src/.
 */
import { causalAttention, linear, referenceEmbed, rmsNorm, silu, type RefWeights } from './llama-f64';
import { applyRotary, ropeCosSin, type RawConfig } from './rope-f64';

function need(w: RefWeights, name: string): Float64Array {
  const t = w(name);
  if (!t) throw new Error(`reference: missing weight ${name}`);
  return t.data;
}

function qwen3Block(cfg: RawConfig, w: RefWeights, layer: number, hidden: Float64Array, T: number): Float64Array {
  const D: number = cfg.hidden_size;
  const F: number = cfg.intermediate_size;
  const nH: number = cfg.num_attention_heads;
  const nKV: number = cfg.num_key_value_heads;
  const hd: number = cfg.head_dim ?? D / nH;
  const eps: number = cfg.rms_norm_eps;
  const p = `model.layers.${layer}.`;
  const bias = (n: string) => w(p + n)?.data;

  const xn = rmsNorm(hidden, T, D, need(w, p + 'input_layernorm.weight'), eps);
  // q_norm / k_norm: per head, over head_dim, i.e. rows of T*heads vectors of width hd.
  const q = rmsNorm(linear(xn, T, D, need(w, p + 'self_attn.q_proj.weight'), nH * hd, bias('self_attn.q_proj.bias')), T * nH, hd, need(w, p + 'self_attn.q_norm.weight'), eps);
  const k = rmsNorm(linear(xn, T, D, need(w, p + 'self_attn.k_proj.weight'), nKV * hd, bias('self_attn.k_proj.bias')), T * nKV, hd, need(w, p + 'self_attn.k_norm.weight'), eps);
  const v = linear(xn, T, D, need(w, p + 'self_attn.v_proj.weight'), nKV * hd, bias('self_attn.v_proj.bias'));
  const { cos, sin } = ropeCosSin(cfg, T);
  applyRotary(q, T, nH, hd, cos, sin);
  applyRotary(k, T, nKV, hd, cos, sin);
  const sliding = cfg.use_sliding_window === true && cfg.sliding_window != null && layer >= (cfg.max_window_layers ?? 0);
  const attn = causalAttention(q, k, v, T, nH, nKV, hd, { scale: hd ** -0.5, window: sliding ? cfg.sliding_window : undefined });
  const o = linear(attn, T, nH * hd, need(w, p + 'self_attn.o_proj.weight'), D, bias('self_attn.o_proj.bias'));
  const h1 = hidden.map((x, i) => x + o[i]!);

  const xn2 = rmsNorm(h1, T, D, need(w, p + 'post_attention_layernorm.weight'), eps);
  const gate = linear(xn2, T, D, need(w, p + 'mlp.gate_proj.weight'), F);
  const up = linear(xn2, T, D, need(w, p + 'mlp.up_proj.weight'), F);
  const down = linear(gate.map((g, i) => silu(g) * up[i]!), T, F, need(w, p + 'mlp.down_proj.weight'), D);
  return h1.map((x, i) => x + down[i]!);
}

/** Logits [T, vocab] for one sequence. */
export function qwen3Logits(cfg: RawConfig, w: RefWeights, ids: number[]): Float64Array {
  const T = ids.length;
  let h = referenceEmbed(cfg as never, w, ids);
  for (let l = 0; l < cfg.num_hidden_layers; l++) h = qwen3Block(cfg, w, l, h, T);
  const xn = rmsNorm(h, T, cfg.hidden_size, need(w, 'model.norm.weight'), cfg.rms_norm_eps);
  return linear(xn, T, cfg.hidden_size, need(w, cfg.tie_word_embeddings ? 'model.embed_tokens.weight' : 'lm_head.weight'), cfg.vocab_size);
}
