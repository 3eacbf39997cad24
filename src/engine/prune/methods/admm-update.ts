import { floatTensor } from '../../graph/session';
import { admmSteps, conjugateGradients, denormalise, normalise, penaltyInverse, prunedMaskOf, type AdmmState } from '../admm';
import { layerLoss } from './loss';
import type { WeightUpdate } from './method';

/**
 * ρ for the fixed-mask update, in normalised units (Ĝ has a unit diagonal): lib/admm.py's value. On a
 * fixed mask ADMM converges for any ρ; ρ = 1 weighs the fit and the constraint evenly.
 */
const RHO = 1;
/** lib/admm.py's iteration count for the update with a fixed mask. */
const ITERATIONS = 20;
/** The CG polish's cap; it stops earlier at admm.ts's tolerance. */
const CG_STEPS = 100;

/**
 * The ADMM weight update (Boža, "Fast and Effective Weight Update for Pruned Large Language Models",
 * 2024; fmfi-compbio/admm-pruning, lib/admm.py): for the mask of `pruned` (its zeros), the weights
 * on the support that best reconstruct the layer's dense output, min ||X Wᵀ − X W₀ᵀ||² (admm.ts):
 *   1. normalise G and W₀ (dead inputs, dampening, unit diagonal);
 *   2. (Ĝ + ρI)⁻¹ once, ρ = 1;
 *   3. 20 ADMM iterations from D = B₀ on the support, V = 0;
 *   4. CG on the support from D to the tolerance;
 *   5. back to W.
 */
export const admm: WeightUpdate<'admm'> = {
  name: 'admm',
  statistic: 'gram',
  help: "after the method's mask, refit the kept weights to each layer's dense output (ADMM)",
  settings: ['percdamp'],
  async update({ ops, weight, rows, cols, stat: gram, settings, where }, pruned) {
    const mask = prunedMaskOf(pruned);
    const p = await normalise(ops, weight, rows, cols, gram!, settings.percdamp);
    const inverse = await penaltyInverse(ops, p, RHO, where);
    const masked = new Float32Array(rows * cols);
    for (let i = 0; i < masked.length; i++) if (!mask[i]) masked[i] = p.b0[i]!;
    const start: AdmmState = { b: p.b0, d: masked, v: new Float32Array(rows * cols) };
    const { d } = await admmSteps(ops, p, start, inverse, RHO, ITERATIONS, { kind: 'fixed' }, { pruned: floatTensor(mask, [rows, cols]) });
    const b = await conjugateGradients(ops, p, d, mask, CG_STEPS);
    const updated = await denormalise(ops, p, b, mask, where);
    return { weight: updated, loss: await layerLoss(ops, weight, updated, rows, cols, 'gram', gram) };
  },
};
