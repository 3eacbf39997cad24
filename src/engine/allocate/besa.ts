import { PruneLensError } from '../errors';
import type { LinearName } from '../model/config';

/** Candidate ratios around a target: steps of 0.05 up to ±0.2, kept within [0, 0.95]. */
export function ladder(target: number): number[] {
  const ratios: number[] = [];
  for (let k = -4; k <= 4; k++) {
    const r = Math.round((target + 0.05 * k) * 1e6) / 1e6;
    if (r >= 0 && r <= 0.95) ratios.push(r);
  }
  return ratios;
}

/** Bounds the search's table; Llama-family widths share large common factors, so it stays tiny. */
const MAX_STATES = 2_000_000;

/**
 * The BESA objective without BESA's learned masks: given each linear's measured block error at every
 * ladder ratio, pick one ratio per linear so the block prunes exactly as many weights as it would at
 * the target ratio, with the smallest summed error. Pruned-weight counts are compared in units of the
 * greatest common divisor of the linears' sizes, so the budget holds exactly; the uniform choice is
 * always feasible, so the result is never worse (by this measure) than uniform.
 */
export function chooseRatios(
  linears: readonly LinearName[],
  errors: Partial<Record<LinearName, number[]>>,
  sizes: Record<LinearName, number>,
  ratios: number[],
  target: number,
): Partial<Record<LinearName, number>> {
  const centre = ratios.findIndex((r) => Math.abs(r - target) < 1e-9);
  if (centre < 0) throw new Error(`the ladder ${ratios.join(', ')} does not contain the target ${target}`);
  const unit = linears.reduce((g, l) => gcd(g, sizes[l]), 0);
  // A choice's cost: the change in pruned weights against the uniform choice, in units of 0.05 x unit.
  const step = (k: number): number => Math.round((ratios[k]! - target) / 0.05);
  const reach = linears.reduce((n, l) => n + (sizes[l] / unit) * Math.max(...ratios.map((_, k) => Math.abs(step(k)))), 0);
  if ((2 * reach + 1) * linears.length > MAX_STATES) {
    throw new PruneLensError('usage', `the BESA-style search cannot balance linears of sizes ${linears.map((l) => sizes[l]).join(', ')} exactly`);
  }
  // best[s] = the smallest error of the linears so far whose cost sums to s - reach.
  let best = new Float64Array(2 * reach + 1).fill(Infinity);
  best[reach] = 0;
  const choices: Int8Array[] = [];
  for (const linear of linears) {
    const next = new Float64Array(best.length).fill(Infinity);
    const choice = new Int8Array(best.length).fill(-1);
    const weight = sizes[linear] / unit;
    for (let s = 0; s < best.length; s++) {
      if (best[s] === Infinity) continue;
      for (let k = 0; k < ratios.length; k++) {
        const t = s + weight * step(k);
        if (t < 0 || t >= best.length) continue;
        const e = best[s]! + errors[linear]![k]!;
        // Ties keep the earlier candidate; ties against the centre go to the centre, so equal errors stay uniform.
        if (e < next[t]! || (e === next[t]! && k === centre)) {
          next[t] = e;
          choice[t] = k;
        }
      }
    }
    choices.push(choice);
    best = next;
  }
  const result: Partial<Record<LinearName, number>> = {};
  let s = reach;
  for (let i = linears.length - 1; i >= 0; i--) {
    const k = choices[i]![s]!;
    result[linears[i]!] = ratios[k]!;
    s -= (sizes[linears[i]!] / unit) * step(k);
  }
  return result;
}

function gcd(a: number, b: number): number {
  while (b) [a, b] = [b, a % b];
  return a;
}
