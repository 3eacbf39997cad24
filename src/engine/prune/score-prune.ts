import type { OpRegistry } from '../graph/op-registry';
import { floatTensor, int64Tensor } from '../graph/session';
import { buildScorePrune, patternKey, type Pattern } from './mask-graphs';
import type { NM } from './spec';

/**
 * Magnitude: zero the floor(rows·cols·s) smallest |W| of the whole matrix (one threshold per matrix),
 * or the N smallest of every M consecutive weights in a row.
 */
export function magnitudePrune(ops: OpRegistry, weight: Float32Array, rows: number, cols: number, sparsity: number, nm?: NM): Promise<Float32Array> {
  return scorePrune(ops, weight, rows, cols, undefined, nm ? { kind: 'nm', ...nm } : { kind: 'matrix', count: Math.floor(rows * cols * sparsity) });
}

/**
 * Wanda (Sun et al., 2024): score |W_ij|·sqrt(stat_j), stat_j the mean squared norm of input column j
 * over the calibration sequences; zero the floor(cols·s) lowest scores of every output row, or the N
 * lowest of every M consecutive scores in a row.
 */
export function wandaPrune(ops: OpRegistry, weight: Float32Array, rows: number, cols: number, stat: Float32Array, sparsity: number, nm?: NM): Promise<Float32Array> {
  return scorePrune(ops, weight, rows, cols, stat, nm ? { kind: 'nm', ...nm } : { kind: 'row', count: Math.floor(cols * sparsity) });
}

async function scorePrune(ops: OpRegistry, weight: Float32Array, rows: number, cols: number, stat: Float32Array | undefined, pattern: Pattern): Promise<Float32Array> {
  if (pattern.kind !== 'nm' && pattern.count === 0) return weight;
  const feeds = {
    weight: floatTensor(weight, [rows, cols]),
    ...(stat ? { stat: floatTensor(stat, [cols]) } : {}),
    ...(pattern.kind !== 'nm' ? { count: int64Tensor(BigInt64Array.of(BigInt(pattern.count)), [1]) } : {}),
  };
  const key = `score-prune.${rows}x${cols}.${stat ? 'wanda' : 'magnitude'}.${patternKey(pattern)}`;
  const [pruned] = await ops.run(key, () => buildScorePrune(rows, cols, stat !== undefined, pattern), feeds, ['pruned']);
  return pruned!;
}
