import { expertWeightName, routerName, type MoeSpec } from '../model/families/moe';
import type { GraphBuilder } from './onnx-builder';

/**
 * A sparse MoE MLP inside the decoder-block graph, on tokens as rows x [N, D].
 *
 * Every expert runs on every token and each output is weighted by a routing matrix that is zero
 * outside the token's top-k: exact (an unrouted expert gets weight 0, as if not run) and made of
 * standard ops only, at the price of computing all experts (E/k times a routed forward's MLP work).
 * The top-k is taken as "at least the k-th largest probability" (TopK's values, then a comparison),
 * which equals torch.topk's choice except for exact ties at the k-th place.
 */
export interface MoeValues {
  out: string;
  /** [N, E]: each token's weight on each expert (0 where not routed), after the family's renormalisation. */
  weights: string;
  /** [E, N]: 1 where the token was routed to the expert. */
  routedT: string;
  /** [E, N, I]: every expert's SwiGLU activations (the down projections' input) on every token. */
  hidden: string;
  /** [E, N, D]: every expert's output on every token, unweighted. */
  expertOut: string;
}

export function moeMlp(g: GraphBuilder, moe: MoeSpec, x: string, act: (v: string) => string): MoeValues {
  const E = moe.experts;
  const I = moe.expertWidth;
  const linear = (v: string, w: string): string => g.op('Gemm', [v, w], { transB: 1 });

  // Router: softmax over all experts in float32 (as transformers), then the top-k.
  const probs = g.op('Softmax', [linear(x, routerName(moe))], { axis: -1 });
  const [top] = g.opN('TopK', [probs, g.constInt64([moe.topK])], 2, { axis: -1 }) as [string, string];
  const kth = g.op('ReduceMin', [top], { axes: [-1], keepdims: 1 });
  const routed = g.op('Cast', [g.op('GreaterOrEqual', [probs, kth])], { to: 1 });
  const kept = g.op('Mul', [probs, routed]);
  const weights = moe.normTopK ? g.op('Div', [kept, g.op('ReduceSum', [top, g.constInt64([-1])], { keepdims: 1 })]) : kept;

  // All experts' gate and up rows stacked: one product each for every expert ([N, E*I]).
  const stacked = (which: 'gate' | 'up'): string =>
    g.op('Concat', Array.from({ length: E }, (_, j) => expertWeightName(moe, j, which)), { axis: 0 });
  const activated = g.op('Mul', [act(linear(x, stacked('gate'))), linear(x, stacked('up'))]);
  const hidden = g.op('Transpose', [g.op('Reshape', [activated, g.constInt64([-1, E, I])])], { perm: [1, 0, 2] });
  // down [D, I] per expert -> [E, I, D], so a batched MatMul gives [E, N, D].
  const downs = g.op('Concat', Array.from({ length: E }, (_, j) => g.op('Unsqueeze', [expertWeightName(moe, j, 'down'), g.constInt64([0])])), { axis: 0 });
  const expertOut = g.op('MatMul', [hidden, g.op('Transpose', [downs], { perm: [0, 2, 1] })]);
  const weightsT = g.op('Transpose', [weights], { perm: [1, 0] });
  let out = g.op('ReduceSum', [g.op('Mul', [expertOut, g.op('Unsqueeze', [weightsT, g.constInt64([2])])]), g.constInt64([0])], { keepdims: 0 });

  if (moe.sharedWidth !== undefined) {
    // Qwen2-MoE: a shared expert every token passes through, scaled by sigmoid(shared_expert_gate(x)).
    const p = 'mlp.shared_expert.';
    const shared = linear(g.op('Mul', [act(linear(x, `${p}gate_proj.weight`)), linear(x, `${p}up_proj.weight`)]), `${p}down_proj.weight`);
    out = g.op('Add', [out, g.op('Mul', [shared, g.op('Sigmoid', [linear(x, 'mlp.shared_expert_gate.weight')])])]);
  }
  return { out, weights, routedT: g.op('Transpose', [routed], { perm: [1, 0] }), hidden, expertOut };
}

/** Expert taps (see decoder-block.ts): what each expert's linears read, from only the tokens routed to it. */
export type ExpertTapPoint = 'expert_in' | 'expert_down_in' | 'expert_stats';

/**
 * `expert_stats` [3, E]: per expert, the number of tokens routed to it, the sum of their routing
 * weights, and the sum of weight x ‖expert output‖₂ (REAP's numerator). `expert_in` / `expert_down_in`
 * with `sumsq` [E, width] or `gram` [E, width, width]: the statistics of Wanda and SparseGPT for each
 * expert's gate/up and down inputs, over its routed tokens only.
 */
export function expertTap(g: GraphBuilder, v: MoeValues, x: string, point: ExpertTapPoint, reduce: string): string {
  const mask3 = g.op('Unsqueeze', [v.routedT, g.constInt64([2])]); // [E, N, 1]
  if (point === 'expert_stats') {
    const sum = (t: string) => g.op('Unsqueeze', [g.op('ReduceSum', [t, g.constInt64([1])], { keepdims: 0 }), g.constInt64([0])]);
    const weightsT = g.op('Transpose', [v.weights], { perm: [1, 0] });
    const norms = g.op('ReduceL2', [v.expertOut], { axes: [2], keepdims: 0 });
    return g.op('Concat', [sum(v.routedT), sum(weightsT), sum(g.op('Mul', [norms, weightsT]))], { axis: 0 });
  }
  // Inputs of unrouted tokens are zeroed: [E, N, width].
  const input = point === 'expert_in' ? g.op('Mul', [g.op('Unsqueeze', [x, g.constInt64([0])]), mask3]) : g.op('Mul', [v.hidden, mask3]);
  if (reduce === 'sumsq') return g.op('ReduceSumSquare', [input], { axes: [1], keepdims: 0 });
  if (reduce === 'gram') return g.op('MatMul', [g.op('Transpose', [input], { perm: [0, 2, 1] }), input]);
  throw new Error(`expert tap ${point} has no reduction ${reduce}`);
}
