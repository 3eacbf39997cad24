import { GraphBuilder } from '../graph/onnx-builder';
import type { OpRegistry } from '../graph/op-registry';
import { floatTensor, int64Tensor, type Feeds } from '../graph/session';
import type { NM } from './spec';

/** How the pruned entries of a matrix are chosen from their scores. */
export type Pattern =
  | { kind: 'matrix'; count: number } // the `count` lowest scores of the whole matrix
  | { kind: 'row'; total: number } // `total` spread over the rows, each row its lowest (rows differ by at most one)
  | { kind: 'nm'; n: number; m: number }; // the n lowest of every m consecutive columns in a row

/** The N:M pattern, or else `count(rows·cols)` lowest by `kind`: how methods state their target. */
export function patternOf(nm: NM | undefined, kind: 'matrix' | 'row', numel: number, sparsity: number): Pattern {
  if (nm) return { kind: 'nm', ...nm };
  const count = prunedCount(numel, sparsity);
  return kind === 'matrix' ? { kind, count } : { kind, total: count };
}

export function patternKey(p: Pattern): string {
  return p.kind === 'nm' ? `nm${p.n}:${p.m}` : p.kind;
}

/** Pruned entries for a fraction of `numel`: rounded, so per-layer ratios add up to the model-wide target. */
export function prunedCount(numel: number, sparsity: number): number {
  return Math.round(numel * sparsity);
}

/**
 * The inputs a pattern's graph reads: `count` (the TopK size) and, for rows, `row_counts` [rows, 1]
 * (the first total % rows rows prune one more, so a matrix prunes exactly `total`).
 */
export function patternFeeds(pattern: Pattern, rows: number): Feeds {
  switch (pattern.kind) {
    case 'matrix':
      return { count: int64Tensor(BigInt64Array.of(BigInt(pattern.count)), [1]) };
    case 'row': {
      const base = Math.floor(pattern.total / rows);
      const extra = pattern.total % rows;
      const counts = new Float32Array(rows).fill(base);
      counts.fill(base + 1, 0, extra);
      return { count: int64Tensor(BigInt64Array.of(BigInt(base + (extra > 0 ? 1 : 0))), [1]), row_counts: floatTensor(counts, [rows, 1]) };
    }
    case 'nm':
      return {};
  }
}

/** Whether the pattern prunes nothing (TopK of size zero is best not asked for). */
export function prunesNothing(pattern: Pattern): boolean {
  return (pattern.kind === 'matrix' && pattern.count === 0) || (pattern.kind === 'row' && pattern.total === 0);
}

/**
 * Adds to `g` a [rows, cols] float mask, 1 where `score` is among the lowest of its group, chosen with
 * TopK (ties go to the lower index, as ONNX specifies for sorted output). A count that varies per call
 * (matrix, row) is read from the int64 input `count`; N:M counts are fixed by the pattern. A last,
 * partial group of L < m columns prunes floor(n * L / m) of them, so every group keeps the ratio.
 */
export function lowestMask(g: GraphBuilder, score: string, rows: number, cols: number, pattern: Pattern): string {
  const zeros = (shape: number[]): string => g.op('Expand', [g.constFloat(0), g.constInt64(shape)]);
  const scatterLowest = (values: string, k: string | number, axis: number, shape: number[], take?: string): string => {
    const kTensor = typeof k === 'number' ? g.constInt64([k]) : k;
    const [, indices] = g.opN('TopK', [values, kTensor], 2, { axis, largest: 0, sorted: 1 });
    const updates = take ?? g.op('Expand', [g.constFloat(1), g.op('Shape', [indices!])]);
    return g.op('ScatterElements', [zeros(shape), indices!, updates], { axis });
  };
  switch (pattern.kind) {
    case 'matrix': {
      const flat = g.op('Reshape', [score, g.constInt64([-1])]);
      return g.op('Reshape', [scatterLowest(flat, g.input('count', 'int64', [1]), 0, [rows * cols]), g.constInt64([rows, cols])]);
    }
    case 'row': {
      // TopK takes the largest row count; a row with one fewer drops its last (highest) pick.
      const count = g.input('count', 'int64', [1]);
      const rowCounts = g.input('row_counts', 'float', [rows, 1]);
      const rank = g.op('Cast', [g.op('Range', [g.constInt64Scalar(0), g.op('Squeeze', [count]), g.constInt64Scalar(1)])], { to: 1 /* FLOAT */ });
      const take = g.op('Cast', [g.op('Less', [g.op('Unsqueeze', [rank, g.constInt64([0])]), rowCounts])], { to: 1 /* FLOAT */ });
      return scatterLowest(score, count, 1, [rows, cols], take);
    }
    case 'nm': {
      const { n, m } = pattern;
      const full = cols - (cols % m);
      const parts: string[] = [];
      if (full > 0) {
        const grouped = g.op('Reshape', [columns(g, score, 0, full), g.constInt64([rows, full / m, m])]);
        parts.push(g.op('Reshape', [scatterLowest(grouped, n, 2, [rows, full / m, m]), g.constInt64([rows, full])]));
      }
      const tail = cols - full;
      if (tail > 0) {
        const k = Math.floor((n * tail) / m);
        parts.push(k > 0 ? scatterLowest(columns(g, score, full, cols), k, 1, [rows, tail]) : zeros([rows, tail]));
      }
      return parts.length === 1 ? parts[0]! : g.op('Concat', parts, { axis: 1 });
    }
  }
}

/** Columns [from, to) of a 2-D value. */
export function columns(g: GraphBuilder, value: string, from: number, to: number): string {
  return g.op('Slice', [value, g.constInt64([from]), g.constInt64([to]), g.constInt64([1])]);
}

/** Rows [from, to) of a 2-D value, or elements [from, to) of a vector. */
export function rowsOf(g: GraphBuilder, value: string, from: number, to: number): string {
  return g.op('Slice', [value, g.constInt64([from]), g.constInt64([to]), g.constInt64([0])]);
}

/** `weight` with the masked entries set to +0.0 (multiplying by zero would leave -0.0 behind). */
export function applyMask(g: GraphBuilder, weight: string, mask: string): string {
  return g.op('Where', [g.op('Cast', [mask], { to: 9 /* BOOL */ }), g.constFloat(0), weight]);
}

/**
 * Magnitude or Wanda in one graph: score = |W| (times sqrt(stat_j) per input column for Wanda),
 * then the lowest scores by `pattern` are zeroed. Inputs `weight` [rows, cols], `stat` [cols] for
 * Wanda, `count` for matrix and row patterns; output `pruned`.
 */
function buildScorePrune(rows: number, cols: number, withStat: boolean, pattern: Pattern): Uint8Array {
  const g = new GraphBuilder('prunelens_score_prune');
  const weight = g.input('weight', 'float', [rows, cols]);
  const magnitude = g.op('Abs', [weight]);
  const score = withStat ? g.op('Mul', [magnitude, g.op('Sqrt', [g.input('stat', 'float', [cols])])]) : magnitude;
  g.output(applyMask(g, weight, lowestMask(g, score, rows, cols, pattern)), 'pruned', 'float', [rows, cols]);
  return g.build();
}

/** `weight` with its lowest |W|, or |W|·sqrt(stat_j) when `stat` is given, zeroed by `pattern`. */
export async function pruneByScore(ops: OpRegistry, weight: Float32Array, rows: number, cols: number, stat: Float32Array | undefined, pattern: Pattern): Promise<Float32Array> {
  if (prunesNothing(pattern)) return weight;
  const feeds = {
    weight: floatTensor(weight, [rows, cols]),
    ...(stat ? { stat: floatTensor(stat, [cols]) } : {}),
    ...patternFeeds(pattern, rows),
  };
  const key = `score-prune.${rows}x${cols}.${stat ? 'scaled' : 'plain'}.${patternKey(pattern)}`;
  const [pruned] = await ops.run(key, () => buildScorePrune(rows, cols, stat !== undefined, pattern), feeds, ['pruned']);
  return pruned!;
}
