import { PruneLensError } from '../errors';
import { LINEARS } from '../model/config';
import { linearRatio, type Plan } from './plan';

export interface PlanEstimate {
  /** Sum over blocks of the block's relative output error, predicted from the error table. */
  score: number;
  perBlock: number[];
}

/**
 * Prices a plan without pruning anything: each linear's error at its ratio is read off the plan's
 * error table (linear between measured ratios, zero error at ratio 0, extended along the last segment
 * past the ladder), errors of a block's linears are added as if independent, and each block's sum is
 * divided by the squared norm of its dense output. Microseconds per call: fast enough for a slider.
 */
export function estimatePlan(plan: Plan): PlanEstimate {
  const table = plan.statistics.errors;
  if (!table) throw new PruneLensError('usage', 'the plan has no error table to estimate from; make it with "prunelens plan"');
  const xs = [0, ...table.ratios.filter((r) => r > 0)];
  const perBlock = plan.blocks.map((block) => {
    const errors = table.errors[block.layer]!;
    let sum = 0;
    for (const linear of LINEARS) {
      const measured = errors[linear];
      if (!measured) continue;
      const ys = [0, ...measured.filter((_, k) => table.ratios[k]! > 0)];
      sum += interpolate(xs, ys, linearRatio(plan, block.layer, linear));
    }
    return sum / table.outputNorms[block.layer]!;
  });
  return { score: perBlock.reduce((a, b) => a + b, 0), perBlock };
}

function interpolate(xs: number[], ys: number[], x: number): number {
  let i = 1;
  while (i < xs.length - 1 && x > xs[i]!) i++;
  const t = (x - xs[i - 1]!) / (xs[i]! - xs[i - 1]!);
  return Math.max(0, ys[i - 1]! + t * (ys[i]! - ys[i - 1]!));
}
