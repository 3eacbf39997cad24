import { blockTensorShapes, type LinearName, type ModelConfig } from '../model/config';
import { GraphBuilder } from './onnx-builder';
import { rmsNorm } from './ops';

/**
 * One decoder block as an ONNX graph whose weights are graph inputs, not initializers: the same
 * session runs every layer, and pruned weights are fed in without rebuilding anything.
 *
 * Inputs: `hidden` [B, T, D]; `cos`, `sin` [T, head_dim] (rotary tables, rotate-half layout);
 * `mask` [T, T] (additive causal mask); then every block tensor under its block-relative
 * Hugging Face name (`self_attn.q_proj.weight`, ...). Output: `hidden_out` [B, T, D], plus any taps.
 */

/**
 * The four places where linears read their input (q/k/v share one, gate/up share one), and the
 * residual stream between attention and MLP, which block-importance metrics compare halves by.
 */
export type TapPoint = 'attn_in' | 'o_in' | 'mlp_in' | 'down_in' | 'residual';

/**
 * What a tap returns about its input X (all B*T tokens as rows): the rows themselves, the per-column
 * sum of squares (Wanda's statistic) or the Gram matrix XᵀX (SparseGPT's Hessian), so statistics are
 * reduced inside ORT rather than copied out token by token.
 */
export type TapReduce = 'raw' | 'sum' | 'sumsq' | 'gram';

export interface TapRequest {
  point: TapPoint;
  reduce: TapReduce;
}

export const LINEAR_INPUT: Record<LinearName, TapPoint> = {
  'self_attn.q_proj': 'attn_in',
  'self_attn.k_proj': 'attn_in',
  'self_attn.v_proj': 'attn_in',
  'self_attn.o_proj': 'o_in',
  'mlp.gate_proj': 'mlp_in',
  'mlp.up_proj': 'mlp_in',
  'mlp.down_proj': 'down_in',
};

export function tapOutputName(tap: TapRequest): string {
  return `${tap.point}.${tap.reduce}`;
}

export function tapWidth(cfg: ModelConfig, point: TapPoint): number {
  switch (point) {
    case 'attn_in':
    case 'mlp_in':
    case 'residual':
      return cfg.hiddenSize;
    case 'o_in':
      return cfg.numHeads * cfg.headDim;
    case 'down_in':
      return cfg.intermediateSize;
  }
}

export function buildDecoderBlock(cfg: ModelConfig, taps: readonly TapRequest[] = []): Uint8Array {
  const g = new GraphBuilder('prunelens_decoder_block');
  const d = cfg.hiddenSize;
  const hd = cfg.headDim;
  const heads = cfg.numHeads;
  const kvHeads = cfg.numKvHeads;
  const group = heads / kvHeads;

  const hidden = g.input('hidden', 'float', ['batch', 'seq', d]);
  const cos = g.input('cos', 'float', ['seq', hd]);
  const sin = g.input('sin', 'float', ['seq', hd]);
  const mask = g.input('mask', 'float', ['seq', 'seq']);
  for (const [name, shape] of blockTensorShapes(cfg)) g.input(name, 'float', shape);

  const tapValues = new Map<TapPoint, string>();
  // Gemm with transB reads the [out, in] Hugging Face layout directly: no per-run transpose of the weight.
  const linear = (x: string, name: LinearName): string =>
    g.op('Gemm', cfg.biasedLinears.has(name) ? [x, `${name}.weight`, `${name}.bias`] : [x, `${name}.weight`], { transB: 1 });

  // Tokens as rows: [B*T, D]. [B, T] is kept to restore the batch shape for attention.
  const x = g.op('Reshape', [hidden, g.constInt64([-1, d])]);
  const batchSeq = g.op('Slice', [g.op('Shape', [hidden]), g.constInt64([0]), g.constInt64([2])]);
  const reshapeTo = (value: string, tail: number[]): string =>
    g.op('Reshape', [value, g.op('Concat', [batchSeq, g.constInt64(tail)], { axis: 0 })]);

  const attnIn = rmsNorm(g, x, 'input_layernorm.weight', cfg.rmsNormEps);
  tapValues.set('attn_in', attnIn);

  const half = hd / 2;
  const rotate = (t: string): string => {
    // Rotate-half rotary embedding (Hugging Face layout): t*cos + concat(-t2, t1)*sin.
    const t1 = g.op('Slice', [t, g.constInt64([0]), g.constInt64([half]), g.constInt64([-1])]);
    const t2 = g.op('Slice', [t, g.constInt64([half]), g.constInt64([hd]), g.constInt64([-1])]);
    const rotated = g.op('Concat', [g.op('Neg', [t2]), t1], { axis: -1 });
    return g.op('Add', [g.op('Mul', [t, cos]), g.op('Mul', [rotated, sin])]);
  };
  // [B*T, n*hd] -> [B, n, T, hd]
  const toHeads = (t: string, n: number): string => g.op('Transpose', [reshapeTo(t, [n, hd])], { perm: [0, 2, 1, 3] });

  const scale = g.constFloat(1 / Math.sqrt(hd));
  const q = rotate(toHeads(g.op('Mul', [linear(attnIn, 'self_attn.q_proj'), scale]), heads));
  const k = rotate(toHeads(linear(attnIn, 'self_attn.k_proj'), kvHeads));
  const v = toHeads(linear(attnIn, 'self_attn.v_proj'), kvHeads);

  // Grouped-query attention without copying K/V per query head: query heads are viewed as
  // [B, kv, group, T, hd] and K/V as [B, kv, 1, T, hd], so MatMul broadcasts over the group axis.
  // Query head h therefore reads key/value head floor(h / group), as Hugging Face's repeat_kv does.
  const q5 = g.op('Reshape', [q, g.constInt64([0, kvHeads, group, -1, hd])]);
  const k5t = g.op('Transpose', [g.op('Unsqueeze', [k, g.constInt64([2])])], { perm: [0, 1, 2, 4, 3] });
  const v5 = g.op('Unsqueeze', [v, g.constInt64([2])]);
  const scores = g.op('Add', [g.op('MatMul', [q5, k5t]), mask]);
  const context = g.op('MatMul', [g.op('Softmax', [scores], { axis: -1 }), v5]);
  // [B, kv, group, T, hd] -> [B, heads, T, hd] -> [B, T, heads, hd] -> [B*T, heads*hd]
  const merged = g.op('Transpose', [g.op('Reshape', [context, g.constInt64([0, heads, -1, hd])])], { perm: [0, 2, 1, 3] });
  const oIn = g.op('Reshape', [merged, g.constInt64([-1, heads * hd])]);
  tapValues.set('o_in', oIn);
  const afterAttn = g.op('Add', [x, linear(oIn, 'self_attn.o_proj')]);
  tapValues.set('residual', afterAttn);

  const mlpIn = rmsNorm(g, afterAttn, 'post_attention_layernorm.weight', cfg.rmsNormEps);
  tapValues.set('mlp_in', mlpIn);
  const gate = linear(mlpIn, 'mlp.gate_proj');
  const downIn = g.op('Mul', [g.op('Mul', [gate, g.op('Sigmoid', [gate])]), linear(mlpIn, 'mlp.up_proj')]);
  tapValues.set('down_in', downIn);
  const out = g.op('Add', [afterAttn, linear(downIn, 'mlp.down_proj')]);

  g.output(g.op('Reshape', [out, g.op('Shape', [hidden])]), 'hidden_out', 'float', ['batch', 'seq', d]);
  for (const tap of taps) {
    const value = tapValues.get(tap.point)!;
    const width = tapWidth(cfg, tap.point);
    const name = tapOutputName(tap);
    switch (tap.reduce) {
      case 'raw':
        g.output(value, name, 'float', ['tokens', width]);
        break;
      case 'sum':
        g.output(g.op('ReduceSum', [value, g.constInt64([0])], { keepdims: 0 }), name, 'float', [width]);
        break;
      case 'sumsq':
        g.output(g.op('ReduceSumSquare', [value], { axes: [0], keepdims: 0 }), name, 'float', [width]);
        break;
      case 'gram':
        g.output(g.op('Gemm', [value, value], { transA: 1 }), name, 'float', [width, width]);
        break;
    }
  }
  return g.build();
}
