import { GraphBuilder } from '../graph/onnx-builder';
import type { OpRegistry } from '../graph/op-registry';
import { floatTensor } from '../graph/session';

/**
 * Per-batch reductions the structured metrics need, each one ORT run whose output is summed over
 * batches in JS.
 */

/**
 * Σ over tokens of cos(c_h, c_k) for every pair of heads, where c_h = o_in[:, h] · W_o[:, h]ᵀ is head
 * h's contribution to the attention output (Greedy Output Approximation compares heads by what they
 * add to the residual stream). Inputs `o_in` [tokens, heads·hd] and `o_proj` [D, heads·hd]; output [heads, heads].
 */
export async function headCosineSums(ops: OpRegistry, oIn: Float32Array, oProj: Float32Array, tokens: number, heads: number, headDim: number, hidden: number): Promise<Float32Array> {
  const feeds = { o_in: floatTensor(oIn, [tokens, heads * headDim]), o_proj: floatTensor(oProj, [hidden, heads * headDim]) };
  const [out] = await ops.run(`structured.head-cosines.${heads}x${headDim}x${hidden}`, () => headCosineGraph(heads, headDim, hidden), feeds, ['out']);
  return out!;
}

function headCosineGraph(heads: number, hd: number, d: number): Uint8Array {
  const g = new GraphBuilder('prunelens_head_cosines');
  const oIn = g.input('o_in', 'float', ['tokens', heads * hd]);
  const oProj = g.input('o_proj', 'float', [d, heads * hd]);
  // [tokens, heads, hd] -> [heads, tokens, hd]; [D, heads, hd] -> [heads, hd, D]
  const x = g.op('Transpose', [g.op('Reshape', [oIn, g.constInt64([-1, heads, hd])])], { perm: [1, 0, 2] });
  const w = g.op('Transpose', [g.op('Reshape', [oProj, g.constInt64([d, heads, hd])])], { perm: [1, 2, 0] });
  const contributions = g.op('MatMul', [x, w]); // [heads, tokens, D]
  const norms = g.op('Sqrt', [g.op('ReduceSumSquare', [contributions], { axes: [-1], keepdims: 1 })]);
  const unit = g.op('Div', [contributions, g.op('Add', [norms, g.constFloat(1e-12)])]);
  // Per token, [heads, D] x [D, heads]: the cosine matrix; then summed over tokens.
  const perToken = g.op('MatMul', [g.op('Transpose', [unit], { perm: [1, 0, 2] }), g.op('Transpose', [unit], { perm: [1, 2, 0] })]);
  g.output(g.op('ReduceSum', [perToken, g.constInt64([0])], { keepdims: 0 }), 'out', 'float', [heads, heads]);
  return g.build();
}

/**
 * Σ over tokens of cos(block input, block output), cos(block input, residual after attention) and
 * cos(residual after attention, block output): ShortGPT's Block Influence is 1 - the mean of the first,
 * and the other two score the attention and MLP halves. Inputs [tokens, D] each; output [3].
 */
export async function residualCosineSums(ops: OpRegistry, input: Float32Array, middle: Float32Array, output: Float32Array, tokens: number, hidden: number): Promise<Float32Array> {
  const feeds = { input: floatTensor(input, [tokens, hidden]), middle: floatTensor(middle, [tokens, hidden]), output: floatTensor(output, [tokens, hidden]) };
  const [out] = await ops.run(`structured.residual-cosines.${hidden}`, () => residualCosineGraph(hidden), feeds, ['out']);
  return out!;
}

function residualCosineGraph(d: number): Uint8Array {
  const g = new GraphBuilder('prunelens_residual_cosines');
  const [a, m, b] = ['input', 'middle', 'output'].map((n) => g.input(n, 'float', ['tokens', d]));
  const cosineSum = (x: string, y: string): string => {
    const dot = g.op('ReduceSum', [g.op('Mul', [x, y]), g.constInt64([-1])], { keepdims: 0 });
    const nx = g.op('Sqrt', [g.op('ReduceSumSquare', [x], { axes: [-1], keepdims: 0 })]);
    const ny = g.op('Sqrt', [g.op('ReduceSumSquare', [y], { axes: [-1], keepdims: 0 })]);
    const cos = g.op('Div', [dot, g.op('Add', [g.op('Mul', [nx, ny]), g.constFloat(1e-12)])]);
    return g.op('ReduceSum', [cos, g.constInt64([0])], { keepdims: 1 });
  };
  g.output(g.op('Concat', [cosineSum(a!, b!), cosineSum(a!, m!), cosineSum(m!, b!)], { axis: 0 }), 'out', 'float', [3]);
  return g.build();
}
