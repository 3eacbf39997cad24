import { patternOf, pruneByScore } from '../mask-graphs';
import type { PruneMethod } from './method';

/**
 * Wanda (Sun, Liu, Bair, Kolter, "A Simple and Effective Pruning Approach for Large Language Models",
 * ICLR 2024; prune_wanda in lib/prune.py):
 *   score_ij = |W_ij| · sqrt(norms_j),  norms_j = (1/n) Σ ||X_j||² over the calibration windows;
 *   zero the lowest scores of every output row (cols·s of them; when that is not a whole number, rows
 *   differ by one so the matrix holds exactly round(rows·cols·s)), or the N lowest of every M
 *   consecutive scores in a row. The kept weights are not changed.
 */
export const wanda: PruneMethod<'wanda'> = {
  name: 'wanda',
  statistic: 'norms',
  description: 'calibration',
  detail: 'Score |W| × input norm and zero the lowest of every row',
  settings: [],
  acceptsUpdate: true,
  async prune({ ops, weight, rows, cols, stat, sparsity, nm }) {
    const { pruned, loss } = await pruneByScore(ops, weight, rows, cols, stat!, patternOf(nm, 'row', rows * cols, sparsity));
    return { weight: pruned, loss };
  },
};
