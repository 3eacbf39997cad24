import type { GraphBuilder } from './onnx-builder';

/** RMSNorm over the last axis, in float32 as Hugging Face computes it: x / sqrt(mean(x²) + eps) * weight. */
export function rmsNorm(g: GraphBuilder, x: string, weight: string, eps: number): string {
  const meanSq = g.op('ReduceMean', [g.op('Mul', [x, x])], { axes: [-1], keepdims: 1 });
  const inv = g.op('Reciprocal', [g.op('Sqrt', [g.op('Add', [meanSq, g.constFloat(eps)])])]);
  return g.op('Mul', [g.op('Mul', [x, inv]), weight]);
}
