import type { OpRegistry } from '../../src/engine/graph/op-registry';
import { admm } from '../../src/engine/prune/methods/admm-update';
import { magnitude } from '../../src/engine/prune/methods/magnitude';
import type { LinearTask, PruneMethod, Pruned } from '../../src/engine/prune/methods/method';
import { sparsegpt } from '../../src/engine/prune/methods/sparsegpt';
import { wanda } from '../../src/engine/prune/methods/wanda';
import type { NM, PruneSettings } from '../../src/engine/prune/spec';
import { outputError, sparseGptHessian } from '../reference/pruning-f64';
import { correlatedInputs, normals } from './random-data';

/**
 * The small layer the ADMM and ALPS tests prune: 16 x 96 weights, inputs with correlated columns, its
 * Gram matrix in float64 and float32, and the float64 output error of any pruned weights.
 */
export function smallLayer(): { rows: number; cols: number; inputs: Float64Array[]; h64: Float64Array; w64: Float64Array; h: Float32Array; w: Float32Array; err: (p: ArrayLike<number>) => number } {
  const rows = 16;
  const cols = 96;
  const inputs = correlatedInputs(6, 48, cols, 3);
  const h64 = sparseGptHessian(inputs, cols);
  const w64 = normals(rows * cols, 4);
  const err = (p: ArrayLike<number>): number => outputError(w64, Float64Array.from(p), rows, cols, inputs);
  return { rows, cols, inputs, h64, w64, h: Float32Array.from(h64), w: Float32Array.from(w64), err };
}

/** One linear pruned by `method` as the sequential loop calls it (validation included). */
export function pruneLinear(
  method: PruneMethod,
  ops: OpRegistry,
  weight: Float32Array,
  rows: number,
  cols: number,
  stat: Float32Array | undefined,
  options: { sparsity: number; nm?: NM } & Partial<PruneSettings>,
): Promise<Pruned> {
  const settings = { blocksize: options.blocksize ?? 128, percdamp: options.percdamp ?? 0.01 };
  method.validate?.({ nm: options.nm, ...settings });
  return method.prune(task(ops, weight, rows, cols, stat, options.sparsity, options.nm, settings));
}

function task(ops: OpRegistry, weight: Float32Array, rows: number, cols: number, stat: Float32Array | undefined, sparsity: number, nm: NM | undefined, settings: PruneSettings): LinearTask {
  return { ops, weight, rows, cols, stat, sparsity, nm, settings, where: 'test' };
}

export const magnitudePrune = async (ops: OpRegistry, w: Float32Array, rows: number, cols: number, sparsity: number, nm?: NM): Promise<Float32Array> =>
  (await pruneLinear(magnitude, ops, w, rows, cols, undefined, { sparsity, nm })).weight;

export const wandaPrune = async (ops: OpRegistry, w: Float32Array, rows: number, cols: number, norms: Float32Array, sparsity: number, nm?: NM): Promise<Float32Array> =>
  (await pruneLinear(wanda, ops, w, rows, cols, norms, { sparsity, nm })).weight;

export const sparseGpt = async (ops: OpRegistry, w: Float32Array, rows: number, cols: number, gram: Float32Array, options: { sparsity: number; nm?: NM } & PruneSettings): Promise<Float32Array> =>
  (await pruneLinear(sparsegpt, ops, w, rows, cols, gram, options)).weight;

/** The ADMM update of `pruned`'s mask, cut from the dense `w`. */
export const admmUpdate = (ops: OpRegistry, w: Float32Array, pruned: Float32Array, rows: number, cols: number, gram: Float32Array, percdamp: number): Promise<Pruned> =>
  admm.update(task(ops, w, rows, cols, gram, 0, undefined, { blocksize: 128, percdamp }), pruned);
