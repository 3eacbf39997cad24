/**
 * Independent float64 forward of a Hugging Face GPT-2 (modeling_gpt2.py): token plus learned position
 * embeddings (wte, wpe), pre-LN blocks (ln_1, attention, ln_2, MLP), Conv1D weights stored [in, out]
 * (y = x·W + b), q/k/v split from c_attn's output columns in that order, q·k divided by √head_dim when
 * scale_attn_weights, activation_function (gelu_new by default), ln_f and the tied head wte. Tensor
 * names with or without the `transformer.` prefix. Imports nothing from src/.
 */
import type { RefWeights } from './llama-f64';
import { activation, add, attention, layerNorm, need } from './layernorm-f64';

type Config = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

/** Conv1D: y[T, out] = x[T, in] · W[in, out] + b. */
function conv1d(x: Float64Array, T: number, inDim: number, W: Float64Array, b: Float64Array): Float64Array {
  const outDim = b.length;
  if (W.length !== inDim * outDim) throw new Error(`reference: Conv1D weight size ${W.length} != ${inDim}x${outDim}`);
  const y = new Float64Array(T * outDim);
  for (let t = 0; t < T; t++) {
    for (let o = 0; o < outDim; o++) {
      let s = b[o]!;
      for (let i = 0; i < inDim; i++) s += x[t * inDim + i]! * W[i * outDim + o]!;
      y[t * outDim + o] = s;
    }
  }
  return y;
}

export function gpt2Logits(cfg: Config, w: RefWeights, ids: number[]): Float64Array {
  const root = w('wte.weight') ? '' : 'transformer.';
  const D: number = cfg.n_embd;
  const nH: number = cfg.n_head;
  const hd = D / nH;
  const inner: number = cfg.n_inner ?? 4 * D;
  const eps: number = cfg.layer_norm_epsilon ?? 1e-5;
  const act = activation(cfg.activation_function ?? 'gelu_new');
  const scale = cfg.scale_attn_weights === false ? 1 : 1 / Math.sqrt(hd);
  const T = ids.length;
  const wte = need(w, `${root}wte.weight`);
  const wpe = need(w, `${root}wpe.weight`);
  let h: Float64Array = new Float64Array(T * D);
  for (let t = 0; t < T; t++) for (let i = 0; i < D; i++) h[t * D + i] = wte[ids[t]! * D + i]! + wpe[t * D + i]!;
  for (let l = 0; l < cfg.n_layer; l++) {
    const p = `${root}h.${l}.`;
    const x1 = layerNorm(h, T, D, need(w, p + 'ln_1.weight'), need(w, p + 'ln_1.bias'), eps);
    const qkv = conv1d(x1, T, D, need(w, p + 'attn.c_attn.weight'), need(w, p + 'attn.c_attn.bias'));
    const part = (k: number) => {
      const out = new Float64Array(T * D);
      for (let t = 0; t < T; t++) for (let i = 0; i < D; i++) out[t * D + i] = qkv[t * 3 * D + k * D + i]!;
      return out;
    };
    const a = attention(part(0), part(1), part(2), T, nH, hd, scale);
    h = add(h, conv1d(a, T, D, need(w, p + 'attn.c_proj.weight'), need(w, p + 'attn.c_proj.bias')));
    const x2 = layerNorm(h, T, D, need(w, p + 'ln_2.weight'), need(w, p + 'ln_2.bias'), eps);
    const fc = conv1d(x2, T, D, need(w, p + 'mlp.c_fc.weight'), need(w, p + 'mlp.c_fc.bias')).map(act);
    h = add(h, conv1d(fc, T, inner, need(w, p + 'mlp.c_proj.weight'), need(w, p + 'mlp.c_proj.bias')));
  }
  const xf = layerNorm(h, T, D, need(w, `${root}ln_f.weight`), need(w, `${root}ln_f.bias`), eps);
  const V: number = cfg.vocab_size;
  const logits = new Float64Array(T * V);
  for (let t = 0; t < T; t++) {
    for (let v = 0; v < V; v++) {
      let s = 0;
      for (let i = 0; i < D; i++) s += xf[t * D + i]! * wte[v * D + i]!;
      logits[t * V + v] = s;
    }
  }
  return logits;
}
