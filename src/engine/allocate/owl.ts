import { GraphBuilder } from '../graph/onnx-builder';
import type { OpRegistry } from '../graph/op-registry';
import { floatTensor } from '../graph/session';

export interface OwlParameters {
  /** A score is an outlier when above M times its block's mean score. */
  M: number;
  /** Ratios lie within target ± lambda. */
  lambda: number;
}

export const OWL_DEFAULTS: OwlParameters = { M: 5, lambda: 0.08 };

/**
 * OWL's mapping (Yin et al., 2024) from outlier ratios to block sparsities: the ratios are scaled to
 * [0, 2λ], centred on their mean, and taken off the target, so blocks with more outliers are pruned
 * less. Two guarantees the reference formula lacks: the mean is weighted by each block's size, so the
 * model-wide sparsity is exactly the target even when blocks differ; and when a skewed distribution
 * would push a block past target ± λ (or outside [0, 1)), every offset is shrunk by the same factor,
 * which keeps the order and the mean.
 */
export function owlSparsities(outlierRatios: number[], target: number, lambda: number, sizes: number[]): number[] {
  const lo = Math.min(...outlierRatios);
  const hi = Math.max(...outlierRatios);
  if (hi === lo) return outlierRatios.map(() => target);
  const scaled = outlierRatios.map((d) => ((d - lo) / (hi - lo)) * 2 * lambda);
  const total = sizes.reduce((a, b) => a + b, 0);
  const mean = scaled.reduce((sum, v, i) => sum + v * sizes[i]!, 0) / total;
  const offsets = scaled.map((v) => v - mean);
  let shrink = 1;
  for (const o of offsets) {
    if (Math.abs(o) > lambda) shrink = Math.min(shrink, lambda / Math.abs(o));
    // Sparsity = target - offset must stay in [0, 0.99].
    if (o > 0 && target - o < 0) shrink = Math.min(shrink, target / o);
    if (o < 0 && target - o > 0.99) shrink = Math.min(shrink, (0.99 - target) / -o);
  }
  return offsets.map((o) => target - o * shrink);
}

/**
 * Sum of Wanda scores |W|·sqrt(stat) over a matrix, and how many exceed a threshold: the two halves
 * of OWL's outlier ratio (the threshold is M times the block's mean, which needs every sum first).
 */
export async function scoreSum(ops: OpRegistry, weight: Float32Array, rows: number, cols: number, stat: Float32Array): Promise<number> {
  const [sum] = await ops.run(`owl.sum.${rows}x${cols}`, () => scoreGraph(rows, cols, false), { weight: floatTensor(weight, [rows, cols]), stat: floatTensor(stat, [cols]) }, ['out']);
  return sum![0]!;
}

export async function scoresAbove(ops: OpRegistry, weight: Float32Array, rows: number, cols: number, stat: Float32Array, threshold: number): Promise<number> {
  const feeds = { weight: floatTensor(weight, [rows, cols]), stat: floatTensor(stat, [cols]), threshold: floatTensor(Float32Array.of(threshold), [1]) };
  const [count] = await ops.run(`owl.count.${rows}x${cols}`, () => scoreGraph(rows, cols, true), feeds, ['out']);
  return count![0]!;
}

function scoreGraph(rows: number, cols: number, count: boolean): Uint8Array {
  const g = new GraphBuilder(count ? 'prunelens_owl_count' : 'prunelens_owl_sum');
  const score = g.op('Mul', [g.op('Abs', [g.input('weight', 'float', [rows, cols])]), g.op('Sqrt', [g.input('stat', 'float', [cols])])]);
  const value = count ? g.op('Cast', [g.op('Greater', [score, g.input('threshold', 'float', [1])])], { to: 1 /* FLOAT */ }) : score;
  g.output(g.op('ReduceSum', [g.op('Reshape', [value, g.constInt64([-1])])], { keepdims: 1 }), 'out', 'float', [1]);
  return g.build();
}
