import { GraphBuilder } from '../graph/onnx-builder';
import { applyMask, columns, lowestMask, type Pattern } from './mask-graphs';

/**
 * The ORT graphs of the ADMM family (admm.ts and the methods built on it), named for the symbols of the papers. All
 * work in normalised coordinates: with s = sqrt(diag(G)) (G dampened), Ĝ = S⁻¹ G S⁻¹ has a unit
 * diagonal and B = W S, so one penalty ρ means the same on every layer and plain conjugate
 * gradients on Ĝ are Jacobi-preconditioned CG on G. Matrices are row-major [rows, cols], one
 * output row per least-squares problem: the layer objective ||X Wᵀ - X W₀ᵀ||² is, per row,
 * (b - b₀) Ĝ (b - b₀)ᵀ. A `pruned` mask is 1 where a weight is zero, as in mask-graphs.ts.
 */

/** How the ADMM Z-step projects onto the sparse set: a fixed mask, or the best support re-chosen each step. */
export type Projection = { kind: 'fixed' } | { kind: 'chosen'; pattern: Pattern };

export function projectionKey(p: Projection): string {
  return p.kind === 'fixed' ? 'fixed' : `chosen.${p.pattern.kind === 'nm' ? `nm${p.pattern.n}:${p.pattern.m}` : p.pattern.kind}`;
}

/** An n x n identity from Range and Equal (EyeLike is not on every provider). */
function identity(g: GraphBuilder, n: number): string {
  const range = g.op('Range', [g.constInt64Scalar(0), g.constInt64Scalar(n), g.constInt64Scalar(1)]);
  const eq = g.op('Equal', [g.op('Unsqueeze', [range, g.constInt64([1])]), g.op('Unsqueeze', [range, g.constInt64([0])])]);
  return g.op('Cast', [eq], { to: 1 /* FLOAT */ });
}

/** Σ over each row of a ⊙ b, as [rows, 1]. */
function rowDot(g: GraphBuilder, a: string, b: string): string {
  return g.op('ReduceSum', [g.op('Mul', [a, b]), g.constInt64([1])], { keepdims: 1 });
}

/** A [n] vector as a row [1, n] or a column [n, 1], for broadcasting against a matrix. */
const asRow = (g: GraphBuilder, v: string): string => g.op('Unsqueeze', [v, g.constInt64([0])]);
const asColumn = (g: GraphBuilder, v: string): string => g.op('Unsqueeze', [v, g.constInt64([1])]);

/**
 * From the Gram statistic G = (2/n) Σ XᵀX [cols, cols] and the dense W₀ [rows, cols], as SparseGPT
 * prepares H: inputs that never fire (diag 0) get a unit diagonal and their weights zeroed, then
 * `percdamp` x mean(diag) is added to the diagonal. Then the normalisation: outputs Ĝ = S⁻¹ G S⁻¹,
 * b₀ = W₀ S, the target b₀ Ĝ of the least-squares step, and s.
 */
export function buildNormalise(rows: number, cols: number): Uint8Array {
  const g = new GraphBuilder('prunelens_admm_normalise');
  const gram = g.input('gram', 'float', [cols, cols]);
  const weight = g.input('weight', 'float', [rows, cols]);
  const percdamp = g.input('percdamp', 'float', [1]);
  const eye = identity(g, cols);
  const diag = g.op('ReduceSum', [g.op('Mul', [gram, eye]), g.constInt64([1])], { keepdims: 0 });
  const isDead = g.op('Equal', [diag, g.constFloat(0)]);
  const lifted = g.op('Add', [diag, g.op('Cast', [isDead], { to: 1 /* FLOAT */ })]);
  const damp = g.op('Mul', [percdamp, g.op('ReduceMean', [lifted], { keepdims: 1 })]);
  const newDiag = g.op('Add', [lifted, damp]);
  const dampened = g.op('Add', [gram, g.op('Mul', [eye, g.op('Sub', [newDiag, diag])])]);
  const s = g.op('Sqrt', [newDiag]);
  const gn = g.op('Div', [g.op('Div', [dampened, asColumn(g, s)]), asRow(g, s)]);
  const live = g.op('Where', [asRow(g, isDead), g.constFloat(0), weight]);
  const b0 = g.op('Mul', [live, asRow(g, s)]);
  g.output(gn, 'gn', 'float', [cols, cols]);
  g.output(b0, 'b0', 'float', [rows, cols]);
  g.output(g.op('MatMul', [b0, gn]), 'target', 'float', [rows, cols]);
  g.output(s, 's', 'float', [cols]);
  return g.build();
}

/**
 * A [rows, cols] float mask, 1 where `score` is at most the count-th lowest of its group (the whole
 * matrix, or every m consecutive inputs of a row for N:M): lowestMask's choice by a threshold. TopK
 * without sorting is a selection, linear in the group's size, and the comparison needs no scatter:
 * on a 1536 x 576 matrix this is about four times faster than the sorted TopK and ScatterElements of
 * lowestMask, which dominated an ADMM iteration. Entries tied with the threshold are all pruned, so
 * the count may be exceeded on ties; the ADMM iterations tolerate that, the final support does not
 * (it is chosen by lowestMask). Row patterns are not used by the ADMM family.
 */
export function thresholdMask(g: GraphBuilder, score: string, rows: number, cols: number, pattern: Pattern): string {
  const atMost = (values: string, k: string | number, axis: number): string => {
    const kTensor = typeof k === 'number' ? g.constInt64([k]) : k;
    const [lowest] = g.opN('TopK', [values, kTensor], 2, { axis, largest: 0, sorted: 0 });
    const threshold = g.op('ReduceMax', [lowest!], { axes: [axis], keepdims: 1 });
    return g.op('Cast', [g.op('LessOrEqual', [values, threshold])], { to: 1 /* FLOAT */ });
  };
  switch (pattern.kind) {
    case 'matrix': {
      const flat = g.op('Reshape', [score, g.constInt64([-1])]);
      return g.op('Reshape', [atMost(flat, g.input('count', 'int64', [1]), 0), g.constInt64([rows, cols])]);
    }
    case 'nm': {
      const { n, m } = pattern;
      const full = cols - (cols % m);
      const parts: string[] = [];
      if (full > 0) {
        const grouped = g.op('Reshape', [columns(g, score, 0, full), g.constInt64([rows, full / m, m])]);
        parts.push(g.op('Reshape', [atMost(grouped, n, 2), g.constInt64([rows, full])]));
      }
      const tail = cols - full;
      if (tail > 0) {
        const k = Math.floor((n * tail) / m);
        parts.push(k > 0 ? atMost(columns(g, score, full, cols), k, 1) : g.op('Expand', [g.constFloat(0), g.constInt64([rows, tail])]));
      }
      return parts.length === 1 ? parts[0]! : g.op('Concat', parts, { axis: 1 });
    }
    case 'row':
    case 'row-even':
      throw new Error('thresholdMask: row patterns are not used by the ADMM family');
  }
}

/**
 * The projection onto the sparse set: `z` with its pruned entries zeroed, and the mask. A fixed
 * projection reads the mask as input `pruned`; a chosen one keeps the largest |z| by the pattern
 * (per matrix or N:M, thresholdMask), reading the matrix count as mask-graphs' `count` input.
 */
function project(g: GraphBuilder, z: string, rows: number, cols: number, projection: Projection, fixed?: string): { d: string; pruned: string } {
  const pruned = projection.kind === 'fixed' ? fixed! : thresholdMask(g, g.op('Abs', [z]), rows, cols, projection.pattern);
  return { d: applyMask(g, z, pruned), pruned };
}

/**
 * `steps` ADMM iterations, unrolled (the scaled form of Boyd et al. §3.1.1 with V = ρU unscaled,
 * as ALPS writes it, so ρ may change between calls without rescaling V):
 *   B ← (target − V + ρ̃D) (Ĝ + ρ̃I)⁻¹      the least-squares step at penalty ρ̃; (Ĝ + ρ̃I)⁻¹ is the input `inverse`
 *   D ← project(B + V/ρ)                  onto the mask, or the best support re-chosen
 *   V ← V + ρ(B − D)                      the dual ascent
 * ρ̃ (input `penalty`) is ρ, or for ALPS the ρ its inverse was last formed at, within a factor 1.5 below ρ:
 * a dual step up to (1 + √5)/2 times the penalty keeps ADMM convergent (Glowinski), and any ρ̃ leaves the
 * fixed points (B = D, B Ĝ − target + V = 0) as they were.
 * Inputs target, inverse, penalty [1], d, v, rho [1] and `pruned` (fixed) or `previous` (the mask at the last
 * call, chosen); outputs b, d_out, v_out and, when the support is chosen, `pruned` and `change` [1] (entries
 * whose pruned/kept state differs from `previous`: the measure ALPS ties ρ to).
 */
export function buildAdmmSteps(rows: number, cols: number, steps: number, projection: Projection): Uint8Array {
  const g = new GraphBuilder('prunelens_admm_steps');
  const target = g.input('target', 'float', [rows, cols]);
  const inverse = g.input('inverse', 'float', [cols, cols]);
  const penalty = g.input('penalty', 'float', [1]);
  let d = g.input('d', 'float', [rows, cols]);
  let v = g.input('v', 'float', [rows, cols]);
  const rho = g.input('rho', 'float', [1]);
  const fixed = projection.kind === 'fixed' ? g.input('pruned', 'float', [rows, cols]) : undefined;
  let b = '';
  let pruned = '';
  for (let step = 0; step < steps; step++) {
    b = g.op('MatMul', [g.op('Add', [g.op('Sub', [target, v]), g.op('Mul', [penalty, d])]), inverse]);
    ({ d, pruned } = project(g, g.op('Add', [b, g.op('Div', [v, rho])]), rows, cols, projection, fixed));
    v = g.op('Add', [v, g.op('Mul', [rho, g.op('Sub', [b, d])])]);
  }
  g.output(b, 'b', 'float', [rows, cols]);
  g.output(d, 'd_out', 'float', [rows, cols]);
  g.output(v, 'v_out', 'float', [rows, cols]);
  if (projection.kind === 'chosen') {
    const previous = g.input('previous', 'float', [rows, cols]);
    g.output(pruned, 'pruned', 'float', [rows, cols]);
    g.output(g.op('ReduceSum', [g.op('Abs', [g.op('Sub', [pruned, previous])])], { keepdims: 1 }), 'change', 'float', [1]);
  }
  return g.build();
}

/**
 * lowestMask's choice of the `count` lowest of the whole matrix, exactly, without sorting: the
 * threshold from an unsorted TopK (a selection), every entry below it, then as many of the entries
 * equal to it as the count still needs, the first in row-major order (a running count of ties), as
 * the sorted TopK breaks ties. On a 1536 x 576 matrix the sorted TopK and scatter cost several times
 * the selection; ALPS runs this twice per linear. Int32 counts: ReduceSum and CumSum in int32 are on
 * every provider.
 */
export function exactMatrixMask(g: GraphBuilder, score: string, rows: number, cols: number): string {
  const int32 = (value: string): string => g.op('Cast', [value], { to: 6 /* INT32 */ });
  const flat = g.op('Reshape', [score, g.constInt64([-1])]);
  const count = g.input('count', 'int64', [1]);
  const [lowest] = g.opN('TopK', [flat, count], 2, { axis: 0, largest: 0, sorted: 0 });
  const threshold = g.op('ReduceMax', [lowest!], { axes: [0], keepdims: 1 });
  const below = g.op('Less', [flat, threshold]);
  const tied = g.op('Equal', [flat, threshold]);
  const need = g.op('Sub', [int32(count), g.op('ReduceSum', [int32(below), g.constInt64([0])], { keepdims: 1 })]);
  const rank = g.op('CumSum', [int32(tied), g.constInt64Scalar(0)]);
  const chosen = g.op('Or', [below, g.op('And', [tied, g.op('LessOrEqual', [rank, need])])]);
  return g.op('Reshape', [g.op('Cast', [chosen], { to: 1 /* FLOAT */ }), g.constInt64([rows, cols])]);
}

/** Input `z` projected by the pattern with exactly its count pruned (lowestMask's choice): outputs `d` (z with the pruned entries zeroed) and `pruned`. */
export function buildProjection(rows: number, cols: number, pattern: Pattern): Uint8Array {
  const g = new GraphBuilder('prunelens_admm_projection');
  const z = g.input('z', 'float', [rows, cols]);
  const score = g.op('Abs', [z]);
  const pruned = pattern.kind === 'matrix' ? exactMatrixMask(g, score, rows, cols) : lowestMask(g, score, rows, cols, pattern);
  const d = applyMask(g, z, pruned);
  g.output(d, 'd', 'float', [rows, cols]);
  g.output(pruned, 'pruned', 'float', [rows, cols]);
  return g.build();
}

/**
 * Conjugate gradients for B Ĝ = target on the support (every row its own system, restricted to its
 * kept entries), `steps` iterations unrolled. Ĝ has a unit diagonal, so this is CG preconditioned
 * by diag(G) in the original coordinates. Residuals are masked to the support, which keeps the
 * iterate and the directions on it. State in (and out, as x_out, ...): x, r (masked residual),
 * p (direction), rr [rows, 1] = Σ r² per row. A row whose direction has no curvature (converged, or nothing kept)
 * takes a zero step.
 */
export function buildCgSteps(rows: number, cols: number, steps: number): Uint8Array {
  const g = new GraphBuilder('prunelens_admm_cg');
  const gn = g.input('gn', 'float', [cols, cols]);
  const pruned = g.input('pruned', 'float', [rows, cols]);
  let x = g.input('x', 'float', [rows, cols]);
  let r = g.input('r', 'float', [rows, cols]);
  let p = g.input('p', 'float', [rows, cols]);
  let rr = g.input('rr', 'float', [rows, 1]);
  const safeDiv = (num: string, den: string): string => {
    const zero = g.op('Equal', [den, g.constFloat(0)]);
    return g.op('Where', [zero, g.constFloat(0), g.op('Div', [num, g.op('Where', [zero, g.constFloat(1), den])])]);
  };
  for (let step = 0; step < steps; step++) {
    const ap = applyMask(g, g.op('MatMul', [p, gn]), pruned);
    const alpha = safeDiv(rr, rowDot(g, p, ap));
    x = g.op('Add', [x, g.op('Mul', [alpha, p])]);
    r = g.op('Sub', [r, g.op('Mul', [alpha, ap])]);
    const next = rowDot(g, r, r);
    p = g.op('Add', [r, g.op('Mul', [safeDiv(next, rr), p])]);
    rr = next;
  }
  g.output(x, 'x_out', 'float', [rows, cols]);
  g.output(r, 'r_out', 'float', [rows, cols]);
  g.output(p, 'p_out', 'float', [rows, cols]);
  g.output(rr, 'rr_out', 'float', [rows, 1]);
  return g.build();
}

/**
 * The masked residual that starts CG: r = (target − x Ĝ) on the support, with rr = Σ r² per row
 * and tt = Σ (target on the support)² per row, which CG's relative tolerance is measured against.
 */
export function buildResidual(rows: number, cols: number): Uint8Array {
  const g = new GraphBuilder('prunelens_admm_residual');
  const gn = g.input('gn', 'float', [cols, cols]);
  const pruned = g.input('pruned', 'float', [rows, cols]);
  const x = g.input('x', 'float', [rows, cols]);
  const target = g.input('target', 'float', [rows, cols]);
  const r = applyMask(g, g.op('Sub', [target, g.op('MatMul', [x, gn])]), pruned);
  const t = applyMask(g, target, pruned);
  g.output(r, 'r', 'float', [rows, cols]);
  g.output(rowDot(g, r, r), 'rr', 'float', [rows, 1]);
  g.output(rowDot(g, t, t), 'tt', 'float', [rows, 1]);
  return g.build();
}

/** Back to the layer's coordinates: W = B S⁻¹, with the pruned entries exactly +0.0. */
export function buildDenormalise(rows: number, cols: number): Uint8Array {
  const g = new GraphBuilder('prunelens_admm_denormalise');
  const b = g.input('b', 'float', [rows, cols]);
  const s = g.input('s', 'float', [cols]);
  const pruned = g.input('pruned', 'float', [rows, cols]);
  g.output(applyMask(g, g.op('Div', [b, asRow(g, s)]), pruned), 'weight', 'float', [rows, cols]);
  return g.build();
}
