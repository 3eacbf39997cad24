import type { TapPoint } from '../graph/decoder-block';
import type { LinearName } from '../model/config';
import { EXPERT_LINEARS, expertShape, expertWeightName, type ExpertLinear, type MoeSpec } from '../model/families/moe';

/**
 * Unstructured pruning inside experts: each expert's gate, up and down linears are pruned like any
 * linear, with Wanda's or SparseGPT's statistic taken over only the tokens routed to that expert
 * (graph/moe-block.ts zeroes the other tokens' rows before reducing).
 */
export interface ExpertLinearTask {
  expert: number;
  linear: ExpertLinear;
  /** Block-relative weight name (`block_sparse_moe.experts.3.w1.weight`). */
  name: string;
  rows: number;
  cols: number;
  /** The tap whose [E, ...] output holds this expert's statistic. */
  point: Extract<TapPoint, 'expert_in' | 'expert_down_in'>;
  /** The dense MLP linear whose ratio (uniform, or a plan's) the expert linear takes. */
  ratioOf: LinearName;
}

/** Taps a sparse layer adds to the dense ones: both expert inputs, and the routing counts. */
export const EXPERT_TAP_POINTS: TapPoint[] = ['expert_in', 'expert_down_in', 'expert_stats'];

const RATIO_OF: Record<ExpertLinear, LinearName> = { gate: 'mlp.gate_proj', up: 'mlp.up_proj', down: 'mlp.down_proj' };

export function expertLinearTasks(moe: MoeSpec, hidden: number): ExpertLinearTask[] {
  return Array.from({ length: moe.experts }, (_, expert) =>
    EXPERT_LINEARS.map((linear) => {
      const [rows, cols] = expertShape(moe, hidden, linear);
      return { expert, linear, name: expertWeightName(moe, expert, linear), rows, cols, point: linear === 'down' ? ('expert_down_in' as const) : ('expert_in' as const), ratioOf: RATIO_OF[linear] };
    }),
  ).flat();
}

/**
 * An expert that saw fewer routed tokens than its linear has inputs has too little data for its
 * statistic: SparseGPT's Hessian would be rank-deficient (mostly dampening) and Wanda's norms noise.
 * Such linears are pruned by magnitude instead, and the run says so.
 */
export function tooFewTokens(routed: number, task: ExpertLinearTask): boolean {
  return routed < task.cols;
}

/** Expert j's slice of an [E, ...] statistic. */
export function expertSlice(stat: Float32Array, experts: number, expert: number): Float32Array {
  const width = stat.length / experts;
  return stat.subarray(expert * width, (expert + 1) * width);
}
