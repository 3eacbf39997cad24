import type { OpRegistry } from '../graph/op-registry';
import { floatTensor } from '../graph/session';
import { buildScorePrune, patternFeeds, patternKey, prunedCount, prunesNothing, type Pattern } from './mask-graphs';
import type { NM } from './spec';

/**
 * Magnitude: zero the round(rows·cols·s) smallest |W| of the whole matrix (one threshold per matrix),
 * or the N smallest of every M consecutive weights in a row.
 */
export function magnitudePrune(ops: OpRegistry, weight: Float32Array, rows: number, cols: number, sparsity: number, nm?: NM): Promise<Float32Array> {
  return scorePrune(ops, weight, rows, cols, undefined, nm ? { kind: 'nm', ...nm } : { kind: 'matrix', count: prunedCount(rows * cols, sparsity) });
}

/**
 * Wanda (Sun et al., 2024): score |W_ij|·sqrt(stat_j), stat_j the mean squared norm of input column j
 * over the calibration sequences; zero the lowest scores of every output row (cols·s of them; when
 * that is not a whole number, rows differ by one so the matrix holds exactly round(rows·cols·s)), or
 * the N lowest of every M consecutive scores in a row.
 */
export function wandaPrune(ops: OpRegistry, weight: Float32Array, rows: number, cols: number, stat: Float32Array, sparsity: number, nm?: NM): Promise<Float32Array> {
  return scorePrune(ops, weight, rows, cols, stat, nm ? { kind: 'nm', ...nm } : { kind: 'row', total: prunedCount(rows * cols, sparsity) });
}

async function scorePrune(ops: OpRegistry, weight: Float32Array, rows: number, cols: number, stat: Float32Array | undefined, pattern: Pattern): Promise<Float32Array> {
  if (prunesNothing(pattern)) return weight;
  const feeds = {
    weight: floatTensor(weight, [rows, cols]),
    ...(stat ? { stat: floatTensor(stat, [cols]) } : {}),
    ...patternFeeds(pattern, rows),
  };
  const key = `score-prune.${rows}x${cols}.${stat ? 'wanda' : 'magnitude'}.${patternKey(pattern)}`;
  const [pruned] = await ops.run(key, () => buildScorePrune(rows, cols, stat !== undefined, pattern), feeds, ['pruned']);
  return pruned!;
}
