import { PruneLensError } from '../errors';
import type { OpRegistry } from '../graph/op-registry';
import { floatTensor, type Feeds } from '../graph/session';
import { inverseSpd, NotPositiveDefinite } from '../linalg/cholesky';
import { mat } from '../linalg/matrix-ops';
import { buildAdmmSteps, buildCgSteps, buildDenormalise, buildNormalise, buildResidual, projectionKey, type Projection } from './admm-graphs';

/**
 * The steps the ADMM family shares: the fixed-mask update (methods/admm-update.ts) and the methods
 * that choose their mask by ADMM as they go. The ADMM weight update (Boža, "Fast and Effective Weight Update for Pruned Large
 * Language Models", 2024; code fmfi-compbio/admm-pruning, lib/admm.py): given the dense W₀ and a mask
 * chosen by any method, the weights on the mask's support that best reconstruct the layer's output,
 *   min ||X Wᵀ − X W₀ᵀ||²  with W zero off the support,
 * which needs only G = XᵀX (SparseGPT's Hessian statistic). Rows are independent least-squares
 * problems, each on its own support, so there is no one factorization that solves them all; ADMM
 * splits the problem into a least-squares step that shares one matrix (G + ρI)⁻¹ across rows and a
 * projection onto the support. A conjugate-gradient polish on the support then finishes the solve
 * (ALPS's last step), which ADMM alone approaches only linearly.
 *
 * Every O(n³) step runs in ORT: (Ĝ + ρI)⁻¹ comes from the blocked Cholesky (linalg/cholesky.ts)
 * as L⁻ᵀ L⁻¹, and each ADMM or CG iteration is a [rows, cols] x [cols, cols] product in an
 * unrolled graph (admm-graphs.ts). ORT has no eigendecomposition, which ALPS uses to change ρ
 * without refactoring; one Cholesky and L⁻ᵀ L⁻¹ per value of ρ (2n³ flops) costs about what ALPS's
 * Q (Λ + ρ)⁻¹ Qᵀ does and needs no iterative eigensolver.
 */

/**
 * CG runs until every row's masked residual is this small relative to its target (ALPS's rtol),
 * in chunks of CG_CHUNK iterations per graph run, up to the caller's cap.
 */
export const CG_TOLERANCE = 1e-4;
const CG_CHUNK = 10;

/** The layer's least-squares problem in normalised coordinates (see admm-graphs.ts). */
export interface LayerProblem {
  rows: number;
  cols: number;
  /** Ĝ = S⁻¹ G S⁻¹ [cols, cols], dampened, unit diagonal. */
  gn: Float32Array;
  /** b₀ = W₀ S [rows, cols], dead input columns zeroed. */
  b0: Float32Array;
  /** b₀ Ĝ [rows, cols]: what every row's B Ĝ should equal on its support. */
  target: Float32Array;
  /** s = sqrt(diag G) [cols]. */
  s: Float32Array;
}

/** Weights zeroed by a method, as a mask (1 = pruned): the support ADMM keeps. */
export function prunedMaskOf(weight: Float32Array): Float32Array {
  // Plain loops over whole matrices: Float32Array.from with a map function is ~35x slower in V8.
  const mask = new Float32Array(weight.length);
  for (let i = 0; i < weight.length; i++) if (weight[i] === 0) mask[i] = 1;
  return mask;
}

/** Ĝ, b₀, the target and s from the Gram statistic and the dense weights (dead inputs and dampening as SparseGPT). */
export async function normalise(ops: OpRegistry, weight: Float32Array, rows: number, cols: number, gram: Float32Array, percdamp: number): Promise<LayerProblem> {
  const feeds = { gram: floatTensor(gram, [cols, cols]), weight: floatTensor(weight, [rows, cols]), percdamp: floatTensor(Float32Array.of(percdamp), [1]) };
  const [gn, b0, target, s] = await ops.run(`admm.normalise.${rows}x${cols}`, () => buildNormalise(rows, cols), feeds, ['gn', 'b0', 'target', 's']);
  return { rows, cols, gn: gn!, b0: b0!, target: target!, s: s! };
}

/** (Ĝ + ρ̃I)⁻¹, the matrix of every least-squares step at penalty ρ̃, with that ρ̃. */
export interface PenaltyInverse {
  rho: number;
  matrix: Float32Array;
}

export async function penaltyInverse(ops: OpRegistry, p: LayerProblem, rho: number, where: string): Promise<PenaltyInverse> {
  const n = p.cols;
  const shifted = Float32Array.from(p.gn);
  for (let j = 0; j < n; j++) shifted[j * n + j]! += rho;
  try {
    return { rho, matrix: (await inverseSpd(ops, mat(shifted, n, n))).data };
  } catch (err) {
    if (!(err instanceof NotPositiveDefinite)) throw err;
    throw new PruneLensError('weights', `the normalised input Gram matrix plus ${rho.toExponential(2)} is not positive definite; the calibration activations may overflow`, where);
  }
}

/** ADMM state: the least-squares iterate B, the sparse copy D and the unscaled dual V, all [rows, cols]. */
export interface AdmmState {
  b: Float32Array;
  d: Float32Array;
  v: Float32Array;
}

/**
 * `steps` ADMM iterations: the least-squares step at the penalty ρ̃ of `inverse`, the projection and the
 * dual step at ρ (ρ̃ = ρ but where ALPS lets ρ run ahead of its last inverse; see buildAdmmSteps). With a
 * chosen projection the graph also returns the new mask and how many entries changed state against `previous`.
 */
export async function admmSteps(
  ops: OpRegistry,
  p: LayerProblem,
  state: AdmmState,
  inverse: PenaltyInverse,
  rho: number,
  steps: number,
  projection: Projection,
  maskFeeds: Feeds,
): Promise<AdmmState & { pruned?: Float32Array; change?: number }> {
  const { rows, cols } = p;
  const shape = [rows, cols];
  const feeds = {
    target: floatTensor(p.target, shape),
    inverse: floatTensor(inverse.matrix, [cols, cols]),
    penalty: floatTensor(Float32Array.of(inverse.rho), [1]),
    d: floatTensor(state.d, shape),
    v: floatTensor(state.v, shape),
    rho: floatTensor(Float32Array.of(rho), [1]),
    ...maskFeeds,
  };
  const outputs = projection.kind === 'fixed' ? ['b', 'd_out', 'v_out'] : ['b', 'd_out', 'v_out', 'pruned', 'change'];
  const key = `admm.steps.${rows}x${cols}.${steps}.${projectionKey(projection)}`;
  const [b, d, v, pruned, change] = await ops.run(key, () => buildAdmmSteps(rows, cols, steps, projection), feeds, outputs);
  return { b: b!, d: d!, v: v!, pruned, change: change?.[0] };
}

/**
 * Conjugate gradients on the support from `x` (which must be zero off it), until every row's
 * masked residual is within `CG_TOLERANCE` of its target or after `maxSteps` iterations.
 */
export async function conjugateGradients(ops: OpRegistry, p: LayerProblem, x: Float32Array, pruned: Float32Array, maxSteps: number): Promise<Float32Array> {
  const { rows, cols } = p;
  const shape = [rows, cols];
  const common = { gn: floatTensor(p.gn, [cols, cols]), pruned: floatTensor(pruned, shape) };
  const start = await ops.run(`admm.residual.${rows}x${cols}`, () => buildResidual(rows, cols), { ...common, x: floatTensor(x, shape), target: floatTensor(p.target, shape) }, ['r', 'rr', 'tt']);
  let [r, rr] = start;
  const tt = start[2]!;
  let p0 = r!;
  const converged = (): boolean => rr!.every((v, i) => v <= CG_TOLERANCE * CG_TOLERANCE * tt[i]!);
  for (let done = 0; done < maxSteps && !converged(); done += CG_CHUNK) {
    const feeds = { ...common, x: floatTensor(x, shape), r: floatTensor(r!, shape), p: floatTensor(p0, shape), rr: floatTensor(rr!, [rows, 1]) };
    const out = await ops.run(`admm.cg.${rows}x${cols}.${CG_CHUNK}`, () => buildCgSteps(rows, cols, CG_CHUNK), feeds, ['x_out', 'r_out', 'p_out', 'rr_out']);
    [x, r, p0, rr] = out as [Float32Array, Float32Array, Float32Array, Float32Array];
  }
  return x;
}

/** W = B S⁻¹ with exact zeros off the support; refuses non-finite weights. */
export async function denormalise(ops: OpRegistry, p: LayerProblem, b: Float32Array, pruned: Float32Array, where: string): Promise<Float32Array> {
  const { rows, cols } = p;
  const feeds = { b: floatTensor(b, [rows, cols]), s: floatTensor(p.s, [cols]), pruned: floatTensor(pruned, [rows, cols]) };
  const [weight] = await ops.run(`admm.denormalise.${rows}x${cols}`, () => buildDenormalise(rows, cols), feeds, ['weight']);
  for (let i = 0; i < weight!.length; i++) {
    if (!Number.isFinite(weight![i]!)) throw new PruneLensError('weights', `the ADMM update produced a non-finite weight at flat index ${i}`, where);
  }
  return weight!;
}
