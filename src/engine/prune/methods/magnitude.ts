import { patternOf, pruneByScore } from '../mask-graphs';
import type { PruneMethod } from './method';

/**
 * Magnitude pruning, the baseline of the Wanda and SparseGPT papers: zero the smallest |W| of the
 * whole matrix (one threshold per matrix, as both repositories' baselines), or the N smallest of
 * every M consecutive weights in a row. It reads no data, so its loss is the weight change ||ΔW||².
 */
export const magnitude: PruneMethod<'magnitude'> = {
  name: 'magnitude',
  statistic: 'none',
  description: 'no data',
  detail: 'Zero the smallest |W| of each matrix',
  settings: [],
  acceptsUpdate: true,
  async prune({ ops, weight, rows, cols, sparsity, nm }) {
    const { pruned, loss } = await pruneByScore(ops, weight, rows, cols, undefined, patternOf(nm, 'matrix', rows * cols, sparsity));
    return { weight: pruned, loss };
  },
};
