import type { GraphBuilder } from './onnx-builder';

/**
 * RMSNorm over the last axis, in float32 as Hugging Face computes it: x / sqrt(mean(x²) + eps) * weight,
 * or * (1 + weight) for Gemma's `rms1p`.
 */
export function rmsNorm(g: GraphBuilder, x: string, weight: string, eps: number, kind: 'rms' | 'rms1p' = 'rms'): string {
  const meanSq = g.op('ReduceMean', [g.op('Mul', [x, x])], { axes: [-1], keepdims: 1 });
  const inv = g.op('Reciprocal', [g.op('Sqrt', [g.op('Add', [meanSq, g.constFloat(eps)])])]);
  const scale = kind === 'rms1p' ? g.op('Add', [weight, g.constFloat(1)]) : weight;
  return g.op('Mul', [g.op('Mul', [x, inv]), scale]);
}

/** LayerNorm over the last axis as torch computes it: (x - mean) / sqrt(biased variance + eps) · weight + bias. */
export function layerNorm(g: GraphBuilder, x: string, weight: string, bias: string, eps: number): string {
  const centred = g.op('Sub', [x, g.op('ReduceMean', [x], { axes: [-1], keepdims: 1 })]);
  const variance = g.op('ReduceMean', [g.op('Mul', [centred, centred])], { axes: [-1], keepdims: 1 });
  const normed = g.op('Div', [centred, g.op('Sqrt', [g.op('Add', [variance, g.constFloat(eps)])])]);
  return g.op('Add', [g.op('Mul', [normed, weight]), bias]);
}

/** The family's norm: RMSNorm (`rms`, `rms1p`) on `<module>.weight`, or LayerNorm on `<module>.weight` and `<module>.bias`. */
export function familyNorm(g: GraphBuilder, x: string, module: string, eps: number, kind: 'rms' | 'rms1p' | 'layer'): string {
  return kind === 'layer' ? layerNorm(g, x, `${module}.weight`, `${module}.bias`, eps) : rmsNorm(g, x, `${module}.weight`, eps, kind);
}

/** Exact GELU (torch's default, transformers' "gelu"): 0.5·x·(1 + erf(x/√2)). */
export function geluErf(g: GraphBuilder, x: string): string {
  return g.op('Mul', [g.op('Mul', [x, g.constFloat(0.5)]), g.op('Add', [g.op('Erf', [g.op('Mul', [x, g.constFloat(Math.SQRT1_2)])]), g.constFloat(1)])]);
}

/** c · tanh(x / c): Gemma 2's soft-capping of attention and final logits. */
export function softcap(g: GraphBuilder, x: string, cap: number): string {
  return g.op('Mul', [g.op('Tanh', [g.op('Div', [x, g.constFloat(cap)])]), g.constFloat(cap)]);
}

/** GELU with the tanh approximation (PyTorch's approximate="tanh"): 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))). */
export function geluTanh(g: GraphBuilder, x: string): string {
  const cube = g.op('Mul', [g.op('Mul', [x, x]), x]);
  const inner = g.op('Mul', [g.op('Add', [x, g.op('Mul', [cube, g.constFloat(0.044715)])]), g.constFloat(Math.sqrt(2 / Math.PI))]);
  return g.op('Mul', [g.op('Mul', [x, g.constFloat(0.5)]), g.op('Add', [g.op('Tanh', [inner]), g.constFloat(1)])]);
}
