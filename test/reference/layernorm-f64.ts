/**
 * Float64 pieces shared by the GPT-2, OPT and GPT-NeoX references: torch's LayerNorm, the activations
 * transformers' ACT2FN names (exact "gelu", "gelu_new", "relu") and a reader for [in, out] Conv1D
 * products. Imports nothing from src/.
 */
import type { RefWeights } from './llama-f64';

export function need(w: RefWeights, name: string): Float64Array {
  const t = w(name);
  if (!t) throw new Error(`reference: missing weight ${name}`);
  return t.data;
}

/** torch.nn.LayerNorm per row: (x - mean) / sqrt(biased variance + eps) * weight + bias. */
export function layerNorm(x: Float64Array, T: number, D: number, weight: Float64Array, bias: Float64Array, eps: number): Float64Array {
  const y = new Float64Array(T * D);
  for (let t = 0; t < T; t++) {
    let mean = 0;
    for (let i = 0; i < D; i++) mean += x[t * D + i]!;
    mean /= D;
    let variance = 0;
    for (let i = 0; i < D; i++) variance += (x[t * D + i]! - mean) ** 2;
    variance /= D;
    const inv = 1 / Math.sqrt(variance + eps);
    for (let i = 0; i < D; i++) y[t * D + i] = (x[t * D + i]! - mean) * inv * weight[i]! + bias[i]!;
  }
  return y;
}

/** erf to float64 precision: the Maclaurin series below 3, the continued fraction of erfc above. */
export function erf(x: number): number {
  const a = Math.abs(x);
  if (a < 3) {
    let term = a;
    let sum = a;
    for (let n = 1; n < 200; n++) {
      term *= (-a * a) / n;
      const add = term / (2 * n + 1);
      sum += add;
      if (Math.abs(add) < 1e-17 * Math.abs(sum)) break;
    }
    return Math.sign(x) * (2 / Math.sqrt(Math.PI)) * sum;
  }
  // erfc(a) = exp(-a²)/√π · 1/(a + (1/2)/(a + 1/(a + (3/2)/(a + 2/(a + ...))))), evaluated from the tail.
  let f = a;
  for (let k = 60; k >= 1; k--) f = a + k / 2 / f;
  const erfc = Math.exp(-a * a) / Math.sqrt(Math.PI) / f;
  return Math.sign(x) * (1 - erfc);
}

/** ACT2FN[name] in float64. */
export function activation(name: string): (v: number) => number {
  switch (name) {
    case 'gelu':
      return (v) => 0.5 * v * (1 + erf(v / Math.SQRT2));
    case 'gelu_new':
    case 'gelu_pytorch_tanh':
      return (v) => 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v ** 3)));
    case 'relu':
      return (v) => Math.max(0, v);
    default:
      throw new Error(`reference: activation ${name}`);
  }
}

/** Softmax attention of one sequence, heads laid out [T, nH, hd], causal, q·k multiplied by `scale`. */
export function attention(q: Float64Array, k: Float64Array, v: Float64Array, T: number, nH: number, hd: number, scale: number): Float64Array {
  const out = new Float64Array(T * nH * hd);
  for (let h = 0; h < nH; h++) {
    for (let i = 0; i < T; i++) {
      const scores: number[] = [];
      for (let j = 0; j <= i; j++) {
        let s = 0;
        for (let d = 0; d < hd; d++) s += q[(i * nH + h) * hd + d]! * k[(j * nH + h) * hd + d]!;
        scores.push(s * scale);
      }
      const max = Math.max(...scores);
      const e = scores.map((s) => Math.exp(s - max));
      const sum = e.reduce((a, b) => a + b, 0);
      for (let j = 0; j <= i; j++) for (let d = 0; d < hd; d++) out[(i * nH + h) * hd + d]! += (e[j]! / sum) * v[(j * nH + h) * hd + d]!;
    }
  }
  return out;
}

export function add(a: Float64Array, b: Float64Array): Float64Array {
  return a.map((x, i) => x + b[i]!);
}
