import { PruneLensError } from '../errors';

/**
 * Candidate ratios around a target: steps of 0.05 up to ±0.2, kept within [0, 0.95]. The target itself
 * is always a candidate (even past 0.95), so pruning every linear at the target stays a choice.
 */
export function ladder(target: number): number[] {
  const ratios: number[] = [];
  for (let k = -4; k <= 4; k++) {
    const r = k === 0 ? target : Math.round((target + 0.05 * k) * 1e6) / 1e6;
    if (r >= 0 && (r <= 0.95 || k === 0)) ratios.push(r);
  }
  return ratios;
}

/** One linear's measured cost of pruning: `errors[k]` at `ratios[k]`; pruning nothing costs nothing. */
export interface ErrorCurve {
  /** Weights in the linear: the budget counts pruned weights, not ratios. */
  size: number;
  ratios: readonly number[];
  errors: readonly number[];
}

/**
 * BESA's objective (Xu et al., 2024: the least block output error under a sparsity budget) searched
 * over measured error curves instead of learned with BESA's masks, and across blocks as well as
 * within them: one ratio per linear so that the linears prune exactly `target` of their weights
 * together, with the least summed error.
 *
 * Each curve is replaced by its lower convex hull through (0, 0) and the measured points; every linear
 * starts unpruned, and hull segments are taken in order of error per pruned weight, cheapest first,
 * until the budget is spent. That is the exact optimum of the convexified problem (a fractional
 * knapsack); only the last segment taken is cut short, so one linear may land between two measured
 * ratios, and the budget holds exactly for any sizes. O(n log n) in the number of segments.
 */
export function allocateByError(curves: readonly ErrorCurve[], target: number): number[] {
  const chosen = curves.map(() => 0);
  const segments: { slope: number; curve: number; from: number; to: number }[] = [];
  curves.forEach((c, curve) => {
    const hull = lowerHull([{ x: 0, y: 0 }, ...c.ratios.map((x, k) => ({ x, y: c.errors[k]! }))]);
    for (let i = 1; i < hull.length; i++) {
      const from = hull[i - 1]!;
      const to = hull[i]!;
      segments.push({ slope: (to.y - from.y) / ((to.x - from.x) * c.size), curve, from: from.x, to: to.x });
    }
  });
  // A hull's slopes increase along it, so sorting by slope takes each linear's segments in order; ties keep that order.
  segments.sort((a, b) => a.slope - b.slope || a.curve - b.curve || a.from - b.from);
  const weights = curves.reduce((n, c) => n + c.size, 0);
  let left = target * weights;
  // The budget is spent when what is left is rounding dust: a crumb would move one more linear off its ratio.
  const dust = 1e-9 * weights;
  for (const s of segments) {
    if (left <= dust) break;
    const size = curves[s.curve]!.size;
    const step = Math.min(s.to - s.from, left / size);
    // A whole segment ends exactly on its measured ratio, not a rounding hair from it.
    chosen[s.curve] = step === s.to - s.from ? s.to : s.from + step;
    left -= step * size;
  }
  if (left > dust) {
    throw new PruneLensError('usage', `the measured ratios cannot prune ${target} of the weights: the highest candidate of every linear falls short`);
  }
  return chosen;
}

interface Point {
  x: number;
  y: number;
}

/** The lower convex hull of points (sorted by x, as a ladder is); points on a hull edge are dropped. */
function lowerHull(points: Point[]): Point[] {
  const hull: Point[] = [];
  for (const p of points) {
    while (hull.length >= 2) {
      const a = hull[hull.length - 2]!;
      const b = hull[hull.length - 1]!;
      // b is not below the line from a to p: drop it.
      if ((b.y - a.y) * (p.x - a.x) >= (p.y - a.y) * (b.x - a.x)) hull.pop();
      else break;
    }
    hull.push(p);
  }
  return hull;
}
