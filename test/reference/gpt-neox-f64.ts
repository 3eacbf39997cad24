/**
 * Independent float64 forward of a Hugging Face GPT-NeoX / Pythia (modeling_gpt_neox.py): embed_in;
 * per layer query_key_value viewed as [T, heads, 3·head_size] and chunked into q, k, v per head;
 * rotary (rotate_half, cos/sin of cat(freqs, freqs)) on the first head_size·rotary_pct dimensions of
 * q and k with base rotary_emb_base; q·k scaled by head_size^-½; dense; the MLP (dense_h_to_4h,
 * hidden_act, dense_4h_to_h) on post_attention_layernorm of the block input (use_parallel_residual)
 * or of the attention sum; final_layer_norm and the untied embed_out. Imports nothing from src/.
 */
import { linear, type RefWeights } from './llama-f64';
import { activation, add, attention, layerNorm, need } from './layernorm-f64';

type Config = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

/** Rotates the first `rd` dimensions of each head of x [T, nH, hd] in place, at positions 0..T-1. */
function rotary(x: Float64Array, T: number, nH: number, hd: number, rd: number, base: number): void {
  const half = rd / 2;
  for (let t = 0; t < T; t++) {
    for (let h = 0; h < nH; h++) {
      const o = (t * nH + h) * hd;
      const rotated = new Float64Array(rd);
      for (let i = 0; i < rd; i++) {
        const freq = t / base ** ((2 * (i % half)) / rd);
        const other = i < half ? -x[o + i + half]! : x[o + i - half]!;
        rotated[i] = x[o + i]! * Math.cos(freq) + other * Math.sin(freq);
      }
      for (let i = 0; i < rd; i++) x[o + i] = rotated[i]!;
    }
  }
}

export function gptNeoxLogits(cfg: Config, w: RefWeights, ids: number[]): Float64Array {
  const D: number = cfg.hidden_size;
  const nH: number = cfg.num_attention_heads;
  const hd = D / nH;
  const F: number = cfg.intermediate_size;
  const rd = Math.trunc(hd * (cfg.rotary_pct ?? 0.25));
  const base: number = cfg.rotary_emb_base ?? 10000;
  const eps: number = cfg.layer_norm_eps ?? 1e-5;
  const act = activation(cfg.hidden_act ?? 'gelu');
  const T = ids.length;
  const table = need(w, 'gpt_neox.embed_in.weight');
  let h: Float64Array = new Float64Array(T * D);
  for (let t = 0; t < T; t++) for (let i = 0; i < D; i++) h[t * D + i] = table[ids[t]! * D + i]!;
  const ln = (x: Float64Array, name: string) => layerNorm(x, T, D, need(w, name + '.weight'), need(w, name + '.bias'), eps);
  const lin = (x: Float64Array, inDim: number, name: string, outDim: number) => linear(x, T, inDim, need(w, name + '.weight'), outDim, w(name + '.bias')?.data);
  for (let l = 0; l < cfg.num_hidden_layers; l++) {
    const p = `gpt_neox.layers.${l}.`;
    const qkv = lin(ln(h, p + 'input_layernorm'), D, p + 'attention.query_key_value', 3 * D);
    const q = new Float64Array(T * D);
    const k = new Float64Array(T * D);
    const v = new Float64Array(T * D);
    for (let t = 0; t < T; t++) {
      for (let head = 0; head < nH; head++) {
        for (let i = 0; i < hd; i++) {
          const at = t * 3 * D + head * 3 * hd + i;
          q[(t * nH + head) * hd + i] = qkv[at]!;
          k[(t * nH + head) * hd + i] = qkv[at + hd]!;
          v[(t * nH + head) * hd + i] = qkv[at + 2 * hd]!;
        }
      }
    }
    rotary(q, T, nH, hd, rd, base);
    rotary(k, T, nH, hd, rd, base);
    const attnOut = lin(attention(q, k, v, T, nH, hd, hd ** -0.5), D, p + 'attention.dense', D);
    const mlp = (x: Float64Array) => lin(lin(ln(x, p + 'post_attention_layernorm'), D, p + 'mlp.dense_h_to_4h', F).map(act), F, p + 'mlp.dense_4h_to_h', D);
    if (cfg.use_parallel_residual !== false) {
      h = add(add(h, attnOut), mlp(h));
    } else {
      const afterAttn = add(h, attnOut);
      h = add(afterAttn, mlp(afterAttn));
    }
  }
  return linear(ln(h, 'gpt_neox.final_layer_norm'), T, D, need(w, 'embed_out.weight'), cfg.vocab_size);
}
