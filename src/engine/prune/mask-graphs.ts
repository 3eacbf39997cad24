import { GraphBuilder } from '../graph/onnx-builder';
import { rowChunks, type OpRegistry } from '../graph/op-registry';
import { floatTensor, int64Tensor, type Feeds } from '../graph/session';
import type { NM } from './spec';

/** How the pruned entries of a matrix are chosen from their scores. */
export type Pattern =
  | { kind: 'matrix'; count: number } // the `count` lowest scores of the whole matrix
  | { kind: 'row'; total: number } // `total` spread over the rows, each row its lowest (rows differ by at most one)
  | { kind: 'row-even'; count: number } // each row its `count` lowest (a row pattern whose total the rows divide)
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
    case 'row-even':
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
  return ((pattern.kind === 'matrix' || pattern.kind === 'row-even') && pattern.count === 0) || (pattern.kind === 'row' && pattern.total === 0);
}

/**
 * Adds to `g` a [rows, cols] float mask, 1 where `score` is among the lowest of its group, chosen with
 * TopK (ties go to the lower index, as ONNX specifies for sorted output). A count that varies per call
 * (matrix, row) is read from the int64 input `count`; N:M counts are fixed by the pattern. A last,
 * partial group of L < m columns prunes floor(n * L / m) of them, so every group keeps the ratio.
 */
export function lowestMask(g: GraphBuilder, score: string, rows: number | string, cols: number, pattern: Pattern): string {
  // Shapes are read from the values, so a graph may leave its row count open (pruneByScore's chunks).
  const zerosLike = (values: string): string => g.op('Expand', [g.constFloat(0), g.op('Shape', [values])]);
  const scatterLowest = (values: string, k: string | number, axis: number, take?: string): string => {
    const kTensor = typeof k === 'number' ? g.constInt64([k]) : k;
    // Sorted only where the order is used (`take`): ORT picks the same entries either way, ties
    // included, and unsorted skips sorting the k picks (1.5 s instead of 2.9 on 14336 x 4096).
    const [, indices] = g.opN('TopK', [values, kTensor], 2, { axis, largest: 0, sorted: take === undefined ? 0 : 1 });
    const updates = take ?? g.op('Expand', [g.constFloat(1), g.op('Shape', [indices!])]);
    return g.op('ScatterElements', [zerosLike(values), indices!, updates], { axis });
  };
  switch (pattern.kind) {
    case 'matrix': {
      const flat = g.op('Reshape', [score, g.constInt64([-1])]);
      return g.op('Reshape', [scatterLowest(flat, g.input('count', 'int64', [1]), 0), g.constInt64([-1, cols])]);
    }
    case 'row': {
      // TopK takes the largest row count; a row with one fewer drops its last (highest) pick.
      const count = g.input('count', 'int64', [1]);
      const rowCounts = g.input('row_counts', 'float', [rows, 1]);
      const rank = g.op('Cast', [g.op('Range', [g.constInt64Scalar(0), g.op('Squeeze', [count]), g.constInt64Scalar(1)])], { to: 1 /* FLOAT */ });
      const take = g.op('Cast', [g.op('Less', [g.op('Unsqueeze', [rank, g.constInt64([0])]), rowCounts])], { to: 1 /* FLOAT */ });
      return scatterLowest(score, count, 1, take);
    }
    case 'row-even':
      return scatterLowest(score, g.input('count', 'int64', [1]), 1);
    case 'nm': {
      const { n, m } = pattern;
      const full = cols - (cols % m);
      const parts: string[] = [];
      if (full > 0) {
        const grouped = g.op('Reshape', [columns(g, score, 0, full), g.constInt64([-1, full / m, m])]);
        parts.push(g.op('Reshape', [scatterLowest(grouped, n, 2), g.constInt64([-1, full])]));
      }
      const tail = cols - full;
      if (tail > 0) {
        const k = Math.floor((n * tail) / m);
        const rest = columns(g, score, full, cols);
        parts.push(k > 0 ? scatterLowest(rest, k, 1) : zerosLike(rest));
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
 * Wanda, `count` for matrix and row patterns; outputs `pruned` and `loss`, Σ score² over the pruned
 * entries: Σ ΔW² · norms_j for Wanda, Σ ΔW² for magnitude (layer-loss definitions, methods/loss.ts).
 * `rows` is left open ('rows') for a graph that runs on chunks of rows.
 */
function buildScorePrune(rows: number | string, cols: number, withStat: boolean, pattern: Pattern): Uint8Array {
  const g = new GraphBuilder('prunelens_score_prune');
  const weight = g.input('weight', 'float', [rows, cols]);
  const magnitude = g.op('Abs', [weight]);
  const score = withStat ? g.op('Mul', [magnitude, g.op('Sqrt', [g.input('stat', 'float', [cols])])]) : magnitude;
  const mask = lowestMask(g, score, rows, cols, pattern);
  g.output(applyMask(g, weight, mask), 'pruned', 'float', [rows, cols]);
  const loss = g.op('ReduceSum', [g.op('Mul', [g.op('Mul', [score, score]), mask])], { keepdims: 0 });
  g.output(g.op('Reshape', [loss, g.constInt64([1])]), 'loss', 'float', [1]);
  return g.build();
}

/**
 * `weight` with its lowest |W|, or |W|·sqrt(stat_j) when `stat` is given, zeroed by `pattern`, and
 * the layer loss of doing so (buildScorePrune). Row and N:M patterns run in chunks of rows (rowChunks).
 */
export async function pruneByScore(
  ops: OpRegistry,
  weight: Float32Array,
  rows: number,
  cols: number,
  stat: Float32Array | undefined,
  asked: Pattern,
): Promise<{ pruned: Float32Array; loss: number }> {
  if (prunesNothing(asked)) return { pruned: weight, loss: 0 };
  // Rows that all prune the same count need no per-row counts, nor TopK's picks in order.
  const pattern: Pattern = asked.kind === 'row' && asked.total % rows === 0 ? { kind: 'row-even', count: asked.total / rows } : asked;
  const scale = stat ? 'scaled' : 'plain';
  const statFeed: Feeds = stat ? { stat: floatTensor(stat, [cols]) } : {};
  if (pattern.kind === 'matrix') {
    const feeds = { weight: floatTensor(weight, [rows, cols]), ...statFeed, ...patternFeeds(pattern, rows) };
    const [pruned, loss] = await ops.run(`score-prune.${rows}x${cols}.${scale}.matrix`, () => buildScorePrune(rows, cols, stat !== undefined, pattern), feeds, ['pruned', 'loss']);
    return { pruned: pruned!, loss: loss![0]! };
  }
  const pruned = new Float32Array(rows * cols);
  const whole = patternFeeds(pattern, rows);
  const rowCounts = whole['row_counts']?.data as Float32Array | undefined;
  const lossOut = new Float32Array(1);
  let loss = 0;
  for (const [r0, r1] of rowChunks(rows, cols)) {
    const feeds: Feeds = { ...whole, weight: floatTensor(weight.subarray(r0 * cols, r1 * cols), [r1 - r0, cols]), ...statFeed };
    if (rowCounts) feeds['row_counts'] = floatTensor(rowCounts.subarray(r0, r1), [r1 - r0, 1]);
    const outputs = { pruned: floatTensor(pruned.subarray(r0 * cols, r1 * cols), [r1 - r0, cols]), loss: floatTensor(lossOut, [1]) };
    await ops.runInto(`score-prune.rows-x${cols}.${scale}.${patternKey(pattern)}`, () => buildScorePrune('rows', cols, stat !== undefined, pattern), feeds, outputs, { arena: true });
    loss += lossOut[0]!;
  }
  return { pruned, loss };
}
