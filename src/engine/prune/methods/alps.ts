import { floatTensor } from '../../graph/session';
import { admmSteps, conjugateGradients, denormalise, normalise, penaltyInverse, type AdmmState } from '../admm';
import { buildProjection } from '../admm-graphs';
import { patternFeeds, patternKey, patternOf } from '../mask-graphs';
import { layerLoss } from './loss';
import type { PruneMethod } from './method';

/** The ALPS code's schedule (ALPS_admm: rho=0.1, update_iter=3, switch_iter=30, max_iter=300). */
const RHO_START = 0.1;
const RHO_MAX = 1e6;
/** ADMM iterations per graph run; ρ is revisited after each. */
const CHECK_EVERY = 3;
/** Past this many iterations, a support that changes by less than STABLE of its size ends ADMM. */
const MIN_ITERATIONS = 30;
const MAX_ITERATIONS = 300;
const STABLE = 3e-4;
/**
 * (Ĝ + ρI)⁻¹ costs about as much as three iterations at n = 1536 inputs. Once the support settles
 * (under SETTLING of it changes per check, where the schedule raises ρ by 10% a check), the inverse is
 * formed again only when ρ has run more than LAG past the ρ̃ it was formed at, and the least-squares
 * step meanwhile takes its penalty at ρ̃ (admm-graphs.ts' buildAdmmSteps). While the support still moves,
 * every new ρ gets its inverse: lagging there too changed the iterates enough to cost 2:4 on the
 * embedded model 3% in perplexity, where the settled phase alone left it as it was. On smollm-135m's
 * shapes this forms half as many inverses.
 */
const SETTLING = 0.005;
const LAG = 1.5;
/** The polish's cap: ALPS's code stops CG after 10 iterations. */
const CG_STEPS = 10;

/** ρ's next value from the share of the support that changed in the last CHECK_EVERY iterations. */
function nextRho(rho: number, change: number, kept: number, rising: boolean): { rho: number; rising: boolean; restart: boolean; stop: boolean } {
  const share = change / kept;
  if (share > 0.1) return { rho: rho * 1.3, rising: true, restart: false, stop: false };
  if (share > 0.005) return { rho: rho * 1.2, rising: true, restart: false, stop: false };
  // A support that barely moves while ρ has never risen means ρ started too high: lower it and start over.
  if (change > 0.5) return rising ? { rho: rho * 1.1, rising, restart: false, stop: false } : { rho: rho / 5, rising, restart: true, stop: false };
  return rising ? { rho, rising, restart: false, stop: true } : { rho: rho / 5, rising, restart: false, stop: false };
}

/**
 * ALPS (Meng, Behdin, Wang, Mazumder, "ALPS: Improved Optimization for Highly Sparse One-Shot
 * Pruning for Large Language Models", NeurIPS 2024): ADMM on the layer objective that chooses the
 * mask as it goes. The Z-step keeps the largest |B + V/ρ| (per matrix, or N:M per group), and the
 * penalty ρ rises on a schedule tied to how much that support still changes, which drives the
 * iterates onto one support; then conjugate gradients solve the least-squares problem on it.
 * Unstructured sparsity keeps the largest entries of the whole normalised matrix (one support per
 * matrix, as the ALPS code); N:M keeps the largest M − N of every M consecutive inputs in a row.
 * Shared steps (normalisation, (Ĝ + ρI)⁻¹, the unrolled iterations, CG) are in admm.ts.
 */
export const alps: PruneMethod<'alps'> = {
  name: 'alps',
  statistic: 'gram',
  description: 'calibration, slowest, best',
  detail: "Choose the mask and the weights together by ADMM on each layer's output, then solve on the mask",
  settings: ['percdamp'],
  acceptsUpdate: false,
  async prune({ ops, weight, rows, cols, stat: gram, sparsity, nm, settings, where }) {
    const pattern = patternOf(nm, 'matrix', rows * cols, sparsity);
    const maskFeeds = patternFeeds(pattern, rows);
    const p = await normalise(ops, weight, rows, cols, gram!, settings.percdamp);
    const project = async (z: Float32Array): Promise<{ d: Float32Array; pruned: Float32Array }> => {
      const [d, pruned] = await ops.run(`alps.projection.${rows}x${cols}.${patternKey(pattern)}`, () => buildProjection(rows, cols, pattern), { z: floatTensor(z, [rows, cols]), ...maskFeeds }, ['d', 'pruned']);
      return { d: d!, pruned: pruned! };
    };

    // Start from the largest normalised weights (Wanda's score |W_ij|·||X_j||, compared across the matrix).
    const initial = await project(p.b0);
    let pruned = initial.pruned;
    const kept = pruned.reduce((n, v) => n + (1 - v), 0);
    const fresh = (): AdmmState => ({ b: p.b0, d: initial.d, v: new Float32Array(rows * cols) });
    let state = fresh();
    let rho = RHO_START;
    let rising = false;
    let inverse = await penaltyInverse(ops, p, rho, where);
    for (let done = 0; done < MAX_ITERATIONS; ) {
      const out = await admmSteps(ops, p, state, inverse, rho, CHECK_EVERY, { kind: 'chosen', pattern }, { ...maskFeeds, previous: floatTensor(pruned, [rows, cols]) });
      done += CHECK_EVERY;
      state = out;
      pruned = out.pruned!;
      const next = nextRho(rho, out.change!, kept, rising);
      if (next.stop || (done > MIN_ITERATIONS && out.change! / kept < STABLE)) break;
      if (next.restart) state = fresh();
      rising = next.rising;
      rho = Math.min(next.rho, RHO_MAX);
      const settling = out.change! / kept <= SETTLING;
      if (next.restart || !settling || rho < inverse.rho || rho > LAG * inverse.rho) inverse = await penaltyInverse(ops, p, rho, where);
    }

    // The final support is that of the least-squares iterate B; CG then solves on it exactly.
    const final = await project(state.b);
    const fitted = await denormalise(ops, p, await conjugateGradients(ops, p, final.d, final.pruned, CG_STEPS), final.pruned, where);
    return { weight: fitted, loss: await layerLoss(ops, weight, fitted, rows, cols, 'gram', gram) };
  },
};
