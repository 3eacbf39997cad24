import { blockTensorShapes, type LinearName, type ModelConfig } from '../model/config';
import { GraphBuilder } from './onnx-builder';
import { expertTap, moeMlp, type ExpertTapPoint } from './moe-block';
import { familyNorm, geluErf, geluTanh, softcap } from './ops';

/**
 * One decoder block as an ONNX graph whose weights are graph inputs, not initializers: the same
 * session runs every layer, and pruned weights are fed in without rebuilding anything.
 *
 * Inputs: `hidden` [B, T, D]; `cos`, `sin` [T, rotary_dim] (rotary tables, rotate-half layout, for
 * the layer being run; absent for families with learned positions); `mask` [T, T] (additive causal mask, banded for sliding-window layers); then
 * every block tensor under its block-relative Hugging Face name (`self_attn.q_proj.weight`, ...),
 * fused projections split. What the family changes (norms, activation, q/k norms, soft-capping,
 * partial rotary, LayerNorm, parallel or post-norm residuals, an ungated MLP) comes from `cfg.arch`. Output: `hidden_out` [B, T, D], plus any taps.
 */

/**
 * The four places where linears read their input (q/k/v share one, gate/up share one), and the
 * residual stream between attention and MLP, which block-importance metrics compare halves by.
 */
export type TapPoint = 'attn_in' | 'o_in' | 'mlp_in' | 'down_in' | 'residual' | ExpertTapPoint;

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
    case 'expert_in':
      return cfg.hiddenSize;
    case 'expert_down_in':
      return cfg.arch.moe?.expertWidth ?? 0;
    case 'expert_stats':
      return cfg.arch.moe?.experts ?? 0;
  }
}

/** `layer` matters only where layers differ in their tensors (a dense MLP among MoE layers). */
export function buildDecoderBlock(cfg: ModelConfig, taps: readonly TapRequest[] = [], layer = 0): Uint8Array {
  const g = new GraphBuilder('prunelens_decoder_block');
  const d = cfg.hiddenSize;
  const hd = cfg.headDim;
  const heads = cfg.numHeads;
  const kvHeads = cfg.numKvHeads;
  const group = heads / kvHeads;
  const arch = cfg.arch;
  const rd = arch.rotaryDim;
  const norm = (value: string, module: string): string => familyNorm(g, value, module, cfg.rmsNormEps, arch.norm);

  const hidden = g.input('hidden', 'float', ['batch', 'seq', d]);
  const cos = rd > 0 ? g.input('cos', 'float', ['seq', rd]) : '';
  const sin = rd > 0 ? g.input('sin', 'float', ['seq', rd]) : '';
  const mask = g.input('mask', 'float', ['seq', 'seq']);
  for (const [name, shape] of blockTensorShapes(cfg, layer)) g.input(name, 'float', shape);

  const tapValues = new Map<TapPoint, string>();
  // Gemm with transB reads the [out, in] Hugging Face layout directly: no per-run transpose of the weight.
  const linear = (x: string, name: LinearName): string =>
    g.op('Gemm', cfg.biasedLinears.has(name) ? [x, `${name}.weight`, `${name}.bias`] : [x, `${name}.weight`], { transB: 1 });

  // Tokens as rows: [B*T, D]. [B, T] is kept to restore the batch shape for attention.
  const x = g.op('Reshape', [hidden, g.constInt64([-1, d])]);
  const batchSeq = g.op('Slice', [g.op('Shape', [hidden]), g.constInt64([0]), g.constInt64([2])]);
  const reshapeTo = (value: string, tail: number[]): string =>
    g.op('Reshape', [value, g.op('Concat', [batchSeq, g.constInt64(tail)], { axis: 0 })]);

  // OPT's post-norm layout (do_layer_norm_before false) feeds attention the residual stream itself.
  const attnIn = arch.residual === 'post' ? x : norm(x, 'input_layernorm');
  tapValues.set('attn_in', attnIn);

  const half = rd / 2;
  const slice = (t: string, from: number, to: number): string => g.op('Slice', [t, g.constInt64([from]), g.constInt64([to]), g.constInt64([-1])]);
  const rotate = (t: string): string => {
    if (rd === 0) return t;
    // Rotate-half rotary embedding (Hugging Face layout) on the first rotary_dim dimensions:
    // r*cos + concat(-r2, r1)*sin; the rest of the head (partial rotary) passes through.
    const r = rd === hd ? t : slice(t, 0, rd);
    const rotated = g.op('Concat', [g.op('Neg', [slice(r, half, rd)]), slice(r, 0, half)], { axis: -1 });
    const embedded = g.op('Add', [g.op('Mul', [r, cos]), g.op('Mul', [rotated, sin])]);
    return rd === hd ? embedded : g.op('Concat', [embedded, slice(t, rd, hd)], { axis: -1 });
  };
  // [B*T, n*hd] -> [B, n, T, hd], each head RMS-normed first where the family has q/k norms.
  // OLMoE norms the whole projection before the head split (qkNormOver 'projection').
  const toHeads = (t: string, n: number, headNorm?: string): string => {
    const whole = headNorm !== undefined && arch.qkNormOver === 'projection';
    const split = reshapeTo(whole ? norm(t, headNorm) : t, [n, hd]);
    return g.op('Transpose', [headNorm && !whole ? norm(split, headNorm) : split], { perm: [0, 2, 1, 3] });
  };

  const qkNorm = (which: 'q' | 'k') => (arch.qkNorm ? `self_attn.${which}_norm` : undefined);
  // The query scale (head_dim^-½ or Gemma's query_pre_attn_scalar^-½) is applied to q after its norm and rotary.
  const q = g.op('Mul', [rotate(toHeads(linear(attnIn, 'self_attn.q_proj'), heads, qkNorm('q'))), g.constFloat(arch.queryScale)]);
  const k = rotate(toHeads(linear(attnIn, 'self_attn.k_proj'), kvHeads, qkNorm('k')));
  const v = toHeads(linear(attnIn, 'self_attn.v_proj'), kvHeads);

  // Grouped-query attention without copying K/V per query head: query heads are viewed as
  // [B, kv, group, T, hd] and K/V as [B, kv, 1, T, hd], so MatMul broadcasts over the group axis.
  // Query head h therefore reads key/value head floor(h / group), as Hugging Face's repeat_kv does.
  const q5 = g.op('Reshape', [q, g.constInt64([0, kvHeads, group, -1, hd])]);
  const k5t = g.op('Transpose', [g.op('Unsqueeze', [k, g.constInt64([2])])], { perm: [0, 1, 2, 4, 3] });
  const v5 = g.op('Unsqueeze', [v, g.constInt64([2])]);
  const logits = g.op('MatMul', [q5, k5t]);
  const scores = g.op('Add', [arch.attnSoftcap !== undefined ? softcap(g, logits, arch.attnSoftcap) : logits, mask]);
  const context = g.op('MatMul', [g.op('Softmax', [scores], { axis: -1 }), v5]);
  // [B, kv, group, T, hd] -> [B, heads, T, hd] -> [B, T, heads, hd] -> [B*T, heads*hd]
  const merged = g.op('Transpose', [g.op('Reshape', [context, g.constInt64([0, heads, -1, hd])])], { perm: [0, 2, 1, 3] });
  const oIn = g.op('Reshape', [merged, g.constInt64([-1, heads * hd])]);
  tapValues.set('o_in', oIn);
  // Gemma 2/3 norm each half's output before the residual add ("sandwich"); there the pre-MLP norm
  // is pre_feedforward_layernorm and post_attention_layernorm is the attention output's norm.
  // GPT-NeoX's parallel residual feeds the MLP the block input; OPT's post-norm norms each sum.
  const attnOut = linear(oIn, 'self_attn.o_proj');
  const attnSum = g.op('Add', [x, arch.sandwichNorms ? norm(attnOut, 'post_attention_layernorm') : attnOut]);
  const afterAttn = arch.residual === 'post' ? norm(attnSum, 'input_layernorm') : attnSum;
  tapValues.set('residual', afterAttn);

  const mlpIn =
    arch.residual === 'post' ? afterAttn : norm(arch.residual === 'parallel' ? x : afterAttn, arch.sandwichNorms ? 'pre_feedforward_layernorm' : 'post_attention_layernorm');
  tapValues.set('mlp_in', mlpIn);
  const activate = (t: string): string => {
    switch (arch.activation) {
      case 'silu':
        return g.op('Mul', [t, g.op('Sigmoid', [t])]);
      case 'gelu_tanh':
        return geluTanh(g, t);
      case 'gelu':
        return geluErf(g, t);
      case 'relu':
        return g.op('Relu', [t]);
    }
  };
  const sparse = arch.moe?.sparse[layer] ? moeMlp(g, arch.moe, mlpIn, activate) : undefined;
  let mlpOut: string;
  if (sparse) {
    mlpOut = sparse.out;
  } else {
    const up = linear(mlpIn, 'mlp.up_proj');
    const downIn = arch.gated ? g.op('Mul', [activate(linear(mlpIn, 'mlp.gate_proj')), up]) : activate(up);
    tapValues.set('down_in', downIn);
    mlpOut = linear(downIn, 'mlp.down_proj');
  }
  const mlpSum = g.op('Add', [afterAttn, arch.sandwichNorms ? norm(mlpOut, 'post_feedforward_layernorm') : mlpOut]);
  const out = arch.residual === 'post' ? norm(mlpSum, 'post_attention_layernorm') : mlpSum;

  g.output(g.op('Reshape', [out, g.op('Shape', [hidden])]), 'hidden_out', 'float', ['batch', 'seq', d]);
  for (const tap of taps) {
    const name = tapOutputName(tap);
    if (tap.point === 'expert_in' || tap.point === 'expert_down_in' || tap.point === 'expert_stats') {
      if (!sparse) throw new Error(`layer ${layer} has no experts to tap (${name})`);
      g.output(expertTap(g, sparse, mlpIn, tap.point, tap.reduce), name, 'float', tap.reduce === 'gram' ? ['experts', 'width', 'width'] : ['rows', 'width']);
      continue;
    }
    const value = tapValues.get(tap.point);
    if (value === undefined) throw new Error(`layer ${layer} has no ${tap.point} to tap`);
    const width = tapWidth(cfg, tap.point);
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
