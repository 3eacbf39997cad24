/**
 * Independent float64 forward of a Hugging Face Phi-3 / Phi-4-mini decoder (modeling_phi3.py):
 * fused qkv_proj (q rows, then k, then v) and gate_up_proj (gate rows, then up, split by chunk(2)),
 * rotary on the first head_dim·partial_rotary_factor dimensions of each head with the rest passed
 * through, longrope scaling (short/long factors by sequence length, attention factor on cos/sin),
 * and sliding-window attention in every layer when sliding_window is set. Imports nothing from src/.
 */
import { causalAttention, linear, referenceEmbed, rmsNorm, silu, type RefWeights } from './llama-f64';
import { applyRotary, ropeCosSin, type RawConfig } from './rope-f64';

function need(w: RefWeights, name: string): Float64Array {
  const t = w(name);
  if (!t) throw new Error(`reference: missing weight ${name}`);
  return t.data;
}

/** Columns [from, to) of a [T, width] matrix. */
function columns(x: Float64Array, T: number, width: number, from: number, to: number): Float64Array {
  const out = new Float64Array(T * (to - from));
  for (let t = 0; t < T; t++) for (let i = from; i < to; i++) out[t * (to - from) + i - from] = x[t * width + i]!;
  return out;
}

function phi3Block(cfg: RawConfig, w: RefWeights, layer: number, hidden: Float64Array, T: number): Float64Array {
  const D: number = cfg.hidden_size;
  const F: number = cfg.intermediate_size;
  const nH: number = cfg.num_attention_heads;
  const nKV: number = cfg.num_key_value_heads ?? nH;
  const hd: number = cfg.head_dim ?? D / nH;
  const eps: number = cfg.rms_norm_eps;
  const p = `model.layers.${layer}.`;

  const xn = rmsNorm(hidden, T, D, need(w, p + 'input_layernorm.weight'), eps);
  const width = (nH + 2 * nKV) * hd;
  const qkv = linear(xn, T, D, need(w, p + 'self_attn.qkv_proj.weight'), width);
  const queryPos = nH * hd;
  const q = columns(qkv, T, width, 0, queryPos);
  const k = columns(qkv, T, width, queryPos, queryPos + nKV * hd);
  const v = columns(qkv, T, width, queryPos + nKV * hd, width);
  const { cos, sin } = ropeCosSin(cfg, T); // [T, head_dim * partial_rotary_factor]
  applyRotary(q, T, nH, hd, cos, sin);
  applyRotary(k, T, nKV, hd, cos, sin);
  const attn = causalAttention(q, k, v, T, nH, nKV, hd, { scale: hd ** -0.5, window: cfg.sliding_window ?? undefined });
  const o = linear(attn, T, nH * hd, need(w, p + 'self_attn.o_proj.weight'), D);
  const h1 = hidden.map((x, i) => x + o[i]!);

  const xn2 = rmsNorm(h1, T, D, need(w, p + 'post_attention_layernorm.weight'), eps);
  const gateUp = linear(xn2, T, D, need(w, p + 'mlp.gate_up_proj.weight'), 2 * F);
  const gate = columns(gateUp, T, 2 * F, 0, F);
  const up = columns(gateUp, T, 2 * F, F, 2 * F);
  const down = linear(up.map((u, i) => u * silu(gate[i]!)), T, F, need(w, p + 'mlp.down_proj.weight'), D);
  return h1.map((x, i) => x + down[i]!);
}

/** Logits [T, vocab] for one sequence. */
export function phi3Logits(cfg: RawConfig, w: RefWeights, ids: number[]): Float64Array {
  const T = ids.length;
  let h: Float64Array = referenceEmbed(cfg as never, w, ids);
  for (let l = 0; l < cfg.num_hidden_layers; l++) h = phi3Block(cfg, w, l, h, T);
  const xn = rmsNorm(h, T, cfg.hidden_size, need(w, 'model.norm.weight'), cfg.rms_norm_eps);
  return linear(xn, T, cfg.hidden_size, need(w, cfg.tie_word_embeddings ? 'model.embed_tokens.weight' : 'lm_head.weight'), cfg.vocab_size);
}
