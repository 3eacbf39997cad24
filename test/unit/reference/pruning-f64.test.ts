/**
 * Tests that prove the float64 pruning references (test/reference/pruning-f64.ts) are right,
 * on small seeded random matrices, with brute-force and independent re-derivations.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  choleskyInverse,
  choleskyLower,
  choleskyUpper,
  lowerTriangularInverse,
  outputError,
  referenceMagnitude,
  referenceSparseGpt,
  referenceWanda,
  sparseGptHessian,
  sparseGptHinv,
  wandaStat,
  type NM,
} from '../../reference/pruning-f64';
import { maxAbsDiff } from '../../helpers/engine-logits';

// ---------------------------------------------------------------------------------------------
// seeded randomness and small helpers (test-local, independent of the reference)
// ---------------------------------------------------------------------------------------------

function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function normalGen(rng: () => number): () => number {
  return () => {
    let u = 0;
    while (u === 0) u = rng();
    const v = rng();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  };
}

function randn(rng: () => number, len: number, scale = 1): Float64Array {
  const g = normalGen(rng);
  const out = new Float64Array(len);
  for (let i = 0; i < len; i++) out[i] = g() * scale;
  return out;
}

/** C = A [n, k] x B [k, m] (row-major). */
function matmul(A: Float64Array, B: Float64Array, n: number, k: number, m: number): Float64Array {
  const C = new Float64Array(n * m);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < m; j++) {
      let t = 0;
      for (let p = 0; p < k; p++) t += A[i * k + p] * B[p * m + j];
      C[i * m + j] = t;
    }
  }
  return C;
}

function transpose(A: Float64Array, n: number, m: number): Float64Array {
  const T = new Float64Array(n * m);
  for (let i = 0; i < n; i++) for (let j = 0; j < m; j++) T[j * n + i] = A[i * m + j];
  return T;
}

/** Gauss-Jordan inverse with partial pivoting (independent of the Cholesky code under test). */
function gaussJordanInverse(A0: Float64Array, n: number): Float64Array {
  const A = Float64Array.from(A0);
  const X = new Float64Array(n * n);
  for (let i = 0; i < n; i++) X[i * n + i] = 1;
  for (let c = 0; c < n; c++) {
    let p = c;
    for (let r = c + 1; r < n; r++) if (Math.abs(A[r * n + c]) > Math.abs(A[p * n + c])) p = r;
    if (A[p * n + c] === 0) throw new Error('singular');
    if (p !== c) {
      for (let j = 0; j < n; j++) {
        [A[c * n + j], A[p * n + j]] = [A[p * n + j], A[c * n + j]];
        [X[c * n + j], X[p * n + j]] = [X[p * n + j], X[c * n + j]];
      }
    }
    const piv = A[c * n + c];
    for (let j = 0; j < n; j++) {
      A[c * n + j] /= piv;
      X[c * n + j] /= piv;
    }
    for (let r = 0; r < n; r++) {
      if (r === c) continue;
      const f = A[r * n + c];
      if (f === 0) continue;
      for (let j = 0; j < n; j++) {
        A[r * n + j] -= f * A[c * n + j];
        X[r * n + j] -= f * X[c * n + j];
      }
    }
  }
  return X;
}

function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]));
  return m;
}

function countZeros(mask: Uint8Array): number {
  let z = 0;
  for (const v of mask) if (v === 0) z++;
  return z;
}

/** Random SPD matrix B B^T / k + eps I. */
function randomSpd(rng: () => number, n: number, eps = 0.1): Float64Array {
  const k = n + 4;
  const B = randn(rng, n * k);
  const A = matmul(B, transpose(B, n, k), n, k, n);
  for (let i = 0; i < n * n; i++) A[i] /= k;
  for (let i = 0; i < n; i++) A[i * n + i] += eps;
  return A;
}

/** numSeq sequences X [tokens, cols] = Z A (A = mixing [cols, cols]; identity when omitted). */
function makeSequences(rng: () => number, numSeq: number, tokens: number, cols: number, A?: Float64Array): Float64Array[] {
  const out: Float64Array[] = [];
  for (let s = 0; s < numSeq; s++) {
    const Z = randn(rng, tokens * cols);
    out.push(A ? matmul(Z, A, tokens, cols, cols) : Z);
  }
  return out;
}

/** Pruned entries are +0.0, kept entries equal the original. */
function assertMaskApplied(W: Float64Array, Wp: Float64Array, mask: Uint8Array): void {
  for (let i = 0; i < W.length; i++) {
    if (mask[i]) assert.equal(Wp[i], W[i] === 0 ? 0 : W[i]);
    else assert.ok(Object.is(Wp[i], 0), `pruned entry ${i} must be +0.0, got ${Wp[i]}`);
  }
}

/**
 * Brute force "kept entries are the top ones" among `idx`: every pruned entry ranks strictly below
 * every kept one, where the order is (score, index) ascending (ties: lower index pruned first).
 */
function assertLowestPruned(idx: number[], score: (i: number) => number, mask: Uint8Array): void {
  for (const p of idx) {
    if (mask[p]) continue;
    for (const k of idx) {
      if (!mask[k]) continue;
      const sp = score(p);
      const sk = score(k);
      assert.ok(sp < sk || (sp === sk && p < k), `pruned ${p} (${sp}) should rank below kept ${k} (${sk})`);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Magnitude
// ---------------------------------------------------------------------------------------------

test('magnitude unstructured: exactly floor(numel*s) pruned, one threshold per matrix, ties by lower flat index', () => {
  const rng = mulberry32(1);
  for (const [rows, cols, s] of [
    [8, 16, 0.5],
    [7, 13, 0.3],
    [10, 10, 0.29],
    [5, 9, 0],
    [4, 6, 1],
    [16, 24, 0.7],
  ] as const) {
    for (const withTies of [false, true]) {
      let W = randn(rng, rows * cols);
      // rounding to a coarse grid makes many |W| ties (and some -0 / +0 entries)
      if (withTies) W = W.map((v) => Math.round(v * 2) / 2);
      const { W: Wp, mask } = referenceMagnitude(W, rows, cols, s);
      assert.equal(countZeros(mask), Math.floor(rows * cols * s));
      const all = Array.from({ length: rows * cols }, (_, i) => i);
      assertLowestPruned(all, (i) => Math.abs(W[i]), mask);
      assertMaskApplied(W, Wp, mask);
    }
  }
  // the per-matrix threshold: one row of tiny weights is pruned entirely
  const W = new Float64Array(4 * 4).map((_, i) => (i < 4 ? 0.001 * (i + 1) : 1 + i));
  const { mask } = referenceMagnitude(W, 4, 4, 0.25);
  assert.deepEqual(Array.from(mask.slice(0, 4)), [0, 0, 0, 0]);
  assert.equal(countZeros(mask), 4);
});

test('magnitude N:M: n zeros per full group of m, floor(n*L/m) in a partial group, lowest |w| per group', () => {
  const rng = mulberry32(2);
  for (const [rows, cols, nm] of [
    [6, 16, { n: 2, m: 4 }],
    [5, 10, { n: 2, m: 4 }],
    [4, 19, { n: 4, m: 8 }],
    [3, 12, { n: 1, m: 4 }],
    [3, 7, { n: 3, m: 4 }],
  ] as [number, number, NM][]) {
    for (const withTies of [false, true]) {
      let W = randn(rng, rows * cols);
      if (withTies) W = W.map((v) => Math.round(v));
      const { W: Wp, mask } = referenceMagnitude(W, rows, cols, 0.9 /* ignored for N:M */, nm);
      for (let r = 0; r < rows; r++) {
        for (let g0 = 0; g0 < cols; g0 += nm.m) {
          const L = Math.min(nm.m, cols - g0);
          const idx = Array.from({ length: L }, (_, j) => r * cols + g0 + j);
          const zeros = idx.filter((i) => mask[i] === 0).length;
          assert.equal(zeros, L === nm.m ? nm.n : Math.floor((nm.n * L) / nm.m), `row ${r} group ${g0}`);
          assertLowestPruned(idx, (i) => Math.abs(W[i]), mask);
        }
      }
      assertMaskApplied(W, Wp, mask);
    }
  }
});

// ---------------------------------------------------------------------------------------------
// Wanda
// ---------------------------------------------------------------------------------------------

test('wandaStat is the per-column mean over sequences of the per-sequence sum of squares', () => {
  const rng = mulberry32(3);
  const cols = 7;
  // sequences of different lengths
  const seqs = [3, 5, 1, 4].map((t) => randn(rng, t * cols));
  const stat = wandaStat(seqs, cols);
  for (let j = 0; j < cols; j++) {
    let total = 0;
    for (const X of seqs) for (let t = 0; t < X.length / cols; t++) total += X[t * cols + j] ** 2;
    const expected = total / seqs.length;
    assert.ok(Math.abs(stat[j] - expected) <= 1e-13 * expected, `col ${j}: ${stat[j]} vs ${expected}`);
  }
});

test('wanda unstructured: exactly floor(cols*s) per row, lowest |W|*sqrt(stat) pruned (ties: lower column)', () => {
  const rng = mulberry32(4);
  for (const [rows, cols, s] of [
    [8, 16, 0.5],
    [6, 13, 0.3],
    [5, 10, 0.29],
    [4, 20, 0.8],
  ] as const) {
    for (const withTies of [false, true]) {
      let W = randn(rng, rows * cols);
      let stat = randn(rng, cols).map((v) => v * v);
      if (withTies) {
        W = W.map((v) => Math.round(v));
        stat = stat.map(() => 4); // exact sqrt: equal |W| give equal metrics
      }
      const { W: Wp, mask } = referenceWanda(W, rows, cols, stat, s);
      for (let r = 0; r < rows; r++) {
        const idx = Array.from({ length: cols }, (_, c) => r * cols + c);
        assert.equal(idx.filter((i) => mask[i] === 0).length, Math.floor(cols * s), `row ${r}`);
        assertLowestPruned(idx, (i) => Math.abs(W[i]) * Math.sqrt(stat[i % cols]), mask);
      }
      assertMaskApplied(W, Wp, mask);
    }
  }
});

test('wanda N:M: n lowest metrics per full group, floor(n*L/m) in a partial group', () => {
  const rng = mulberry32(5);
  for (const [rows, cols, nm] of [
    [6, 16, { n: 2, m: 4 }],
    [5, 11, { n: 2, m: 4 }],
    [4, 21, { n: 4, m: 8 }],
  ] as [number, number, NM][]) {
    const W = randn(rng, rows * cols);
    const stat = randn(rng, cols).map((v) => v * v);
    const { W: Wp, mask } = referenceWanda(W, rows, cols, stat, 0.1 /* ignored */, nm);
    for (let r = 0; r < rows; r++) {
      for (let g0 = 0; g0 < cols; g0 += nm.m) {
        const L = Math.min(nm.m, cols - g0);
        const idx = Array.from({ length: L }, (_, j) => r * cols + g0 + j);
        assert.equal(idx.filter((i) => mask[i] === 0).length, L === nm.m ? nm.n : Math.floor((nm.n * L) / nm.m));
        assertLowestPruned(idx, (i) => Math.abs(W[i]) * Math.sqrt(stat[i % cols]), mask);
      }
    }
    assertMaskApplied(W, Wp, mask);
  }
});

test('wanda with stat = 1 equals per-row magnitude (unstructured and N:M)', () => {
  const rng = mulberry32(6);
  const rows = 9;
  const cols = 22;
  const W = randn(rng, rows * cols).map((v) => Math.round(v * 4) / 4); // with ties
  const ones = new Float64Array(cols).fill(1);
  for (const nm of [undefined, { n: 2, m: 4 }, { n: 4, m: 8 }] as (NM | undefined)[]) {
    for (const s of [0.25, 0.5, 0.6]) {
      const wanda = referenceWanda(W, rows, cols, ones, s, nm);
      for (let r = 0; r < rows; r++) {
        const row = W.slice(r * cols, (r + 1) * cols);
        const mag = referenceMagnitude(row, 1, cols, s, nm);
        assert.deepEqual(Array.from(wanda.mask.slice(r * cols, (r + 1) * cols)), Array.from(mag.mask));
        assert.deepEqual(Array.from(wanda.W.slice(r * cols, (r + 1) * cols)), Array.from(mag.W));
      }
    }
  }
});

test('wanda is invariant to rescaling an input channel against its weight column (its motivating property)', () => {
  const rng = mulberry32(7);
  const rows = 6;
  const cols = 12;
  const W = randn(rng, rows * cols);
  const seqs = makeSequences(rng, 3, 5, cols);
  const stat = wandaStat(seqs, cols);
  // scale input column j by 2^e_j and weight column j by 2^-e_j (powers of two: exact in float64)
  const e = Array.from({ length: cols }, (_, j) => (j % 5) - 2);
  const seqs2 = seqs.map((X) => X.map((v, i) => v * 2 ** e[i % cols]));
  const W2 = W.map((v, i) => v * 2 ** -e[i % cols]);
  const stat2 = wandaStat(seqs2, cols);
  for (const nm of [undefined, { n: 2, m: 4 }]) {
    const a = referenceWanda(W, rows, cols, stat, 0.5, nm);
    const b = referenceWanda(W2, rows, cols, stat2, 0.5, nm);
    assert.deepEqual(Array.from(a.mask), Array.from(b.mask));
    // whereas magnitude changes its mind
    const m1 = referenceMagnitude(W, rows, cols, 0.5, nm);
    const m2 = referenceMagnitude(W2, rows, cols, 0.5, nm);
    assert.notDeepEqual(Array.from(m1.mask), Array.from(m2.mask));
  }
});

// ---------------------------------------------------------------------------------------------
// Hessian, output error, Cholesky helpers
// ---------------------------------------------------------------------------------------------

test('sparseGptHessian equals (2/numSeq) * sum X^T X and is symmetric', () => {
  const rng = mulberry32(8);
  const cols = 9;
  const seqs = [4, 6, 2, 5, 3].map((t) => randn(rng, t * cols));
  const H = sparseGptHessian(seqs, cols);
  const expected = new Float64Array(cols * cols);
  for (const X of seqs) {
    const t = X.length / cols;
    const XtX = matmul(transpose(X, t, cols), X, cols, t, cols);
    for (let i = 0; i < XtX.length; i++) expected[i] += (2 / seqs.length) * XtX[i];
  }
  assert.ok(maxAbsDiff(H, expected) <= 1e-12 * maxAbs(expected));
  for (let a = 0; a < cols; a++) for (let b = 0; b < cols; b++) assert.equal(H[a * cols + b], H[b * cols + a]);
});

test('outputError = ||(W - W\') X^T||_F^2 = (numSeq/2) tr(D H D^T); zero for W\' = W', () => {
  const rng = mulberry32(9);
  const rows = 5;
  const cols = 8;
  const seqs = makeSequences(rng, 4, 6, cols);
  const W = randn(rng, rows * cols);
  const Wp = randn(rng, rows * cols);
  assert.equal(outputError(W, W, rows, cols, seqs), 0);
  const H = sparseGptHessian(seqs, cols);
  const D = W.map((v, i) => v - Wp[i]);
  const DH = matmul(D, H, rows, cols, cols);
  let tr = 0;
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) tr += DH[r * cols + c] * D[r * cols + c];
  const err = outputError(W, Wp, rows, cols, seqs);
  const expected = (seqs.length / 2) * tr;
  assert.ok(Math.abs(err - expected) <= 1e-11 * expected, `${err} vs ${expected}`);
});

test('cholesky helpers: lower/upper factors, triangular inverse, cholesky_inverse; non-PD throws', () => {
  const rng = mulberry32(10);
  const n = 12;
  const A = randomSpd(rng, n);
  const scale = maxAbs(A);
  const L = choleskyLower(A, n);
  const U = choleskyUpper(A, n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      if (j > i) assert.equal(L[i * n + j], 0);
      if (j < i) assert.equal(U[i * n + j], 0);
    }
    assert.ok(L[i * n + i] > 0 && U[i * n + i] > 0);
  }
  assert.ok(maxAbsDiff(matmul(L, transpose(L, n, n), n, n, n), A) <= 1e-13 * scale);
  assert.ok(maxAbsDiff(matmul(transpose(U, n, n), U, n, n, n), A) <= 1e-13 * scale);
  assert.ok(maxAbsDiff(U, transpose(L, n, n)) <= 1e-13 * maxAbs(L));
  const Linv = lowerTriangularInverse(L, n);
  const eye = new Float64Array(n * n);
  for (let i = 0; i < n; i++) eye[i * n + i] = 1;
  assert.ok(maxAbsDiff(matmul(L, Linv, n, n, n), eye) <= 1e-12);
  const Ainv = choleskyInverse(L, n);
  assert.ok(maxAbsDiff(matmul(A, Ainv, n, n, n), eye) <= 1e-11);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) assert.equal(Ainv[i * n + j], Ainv[j * n + i]);

  const notPd = new Float64Array([1, 2, 2, 1]);
  assert.throws(() => choleskyLower(notPd, 2), /not positive definite/);
  assert.throws(() => choleskyUpper(notPd, 2), /not positive definite/);
  assert.throws(() => choleskyLower(new Float64Array([0, 0, 0, 1]), 2), /not positive definite/);
});

test('(e) sparseGptHinv: U upper triangular and U^T U = inv(H + damp I) to 1e-10, damp = 0.01 mean(diag H)', () => {
  const rng = mulberry32(11);
  const cols = 24;
  const mix = randn(rng, cols * cols, 0.3);
  for (let i = 0; i < cols; i++) mix[i * cols + i] += 1;
  const H = sparseGptHessian(makeSequences(rng, 6, 16, cols, mix), cols);
  let meanDiag = 0;
  for (let i = 0; i < cols; i++) meanDiag += H[i * cols + i] / cols;
  for (const percdamp of [0.01, 0.1]) {
    const { Hinv: U, damp, dead } = sparseGptHinv(H, cols, percdamp);
    assert.ok(Math.abs(damp - percdamp * meanDiag) <= 1e-14 * meanDiag);
    assert.deepEqual(dead, new Array(cols).fill(false));
    for (let i = 0; i < cols; i++) for (let j = 0; j < i; j++) assert.equal(U[i * cols + j], 0);
    const Hd = Float64Array.from(H);
    for (let i = 0; i < cols; i++) Hd[i * cols + i] += damp;
    const inv = gaussJordanInverse(Hd, cols);
    const UtU = matmul(transpose(U, cols, cols), U, cols, cols, cols);
    assert.ok(maxAbsDiff(UtU, inv) <= 1e-10 * maxAbs(inv), `diff ${maxAbsDiff(UtU, inv)} vs scale ${maxAbs(inv)}`);
  }
});

// ---------------------------------------------------------------------------------------------
// SparseGPT
// ---------------------------------------------------------------------------------------------

/**
 * Independent re-derivation of SparseGPT as sequential OBS with explicit inverses and no lazy
 * batching: processing column i, with F = {i, ..., cols-1} and M = inv(Hd[F, F]),
 * U_ii^2 = M_ii and the optimal update of the not-yet-processed columns is
 * W[:, j] -= (w - q) * M_ij / M_ii for j > i. Scores are w^2 / U_ii^2 = w^2 / M_ii; the
 * unstructured mask is chosen once per block at block start, N:M groups (counted from each block
 * start) on the current, already-updated weights.
 */
function naiveSparseGpt(
  W0: Float64Array,
  rows: number,
  cols: number,
  H0: Float64Array,
  o: { sparsity: number; prunen?: number; prunem?: number; blocksize?: number; percdamp?: number },
): { W: Float64Array; mask: Uint8Array } {
  const prunen = o.prunen ?? 0;
  const prunem = o.prunem ?? 0;
  const bs = o.blocksize ?? 128;
  const Hd = Float64Array.from(H0);
  const W = Float64Array.from(W0);
  let mean = 0;
  for (let j = 0; j < cols; j++) {
    if (Hd[j * cols + j] === 0) {
      Hd[j * cols + j] = 1;
      for (let r = 0; r < rows; r++) W[r * cols + j] = 0;
    }
    mean += Hd[j * cols + j] / cols;
  }
  const damp = (o.percdamp ?? 0.01) * mean;
  for (let j = 0; j < cols; j++) Hd[j * cols + j] += damp;
  // Minv[i] = inv(Hd[i:, i:]) (size cols - i)
  const Minv: Float64Array[] = [];
  for (let i = 0; i < cols; i++) {
    const n = cols - i;
    const sub = new Float64Array(n * n);
    for (let a = 0; a < n; a++) for (let b = 0; b < n; b++) sub[a * n + b] = Hd[(i + a) * cols + (i + b)];
    Minv.push(gaussJordanInverse(sub, n));
  }
  const uii2 = (i: number): number => Minv[i][0]; // U_ii^2
  const prune = new Uint8Array(rows * cols);
  for (let i = 0; i < cols; i++) {
    const i1 = Math.floor(i / bs) * bs;
    const i2 = Math.min(i1 + bs, cols);
    if (prunen === 0 && i === i1) {
      const tmp: number[] = [];
      for (let r = 0; r < rows; r++) for (let j = i1; j < i2; j++) tmp.push(W[r * cols + j] ** 2 / uii2(j));
      const sorted = tmp.slice().sort((a, b) => a - b);
      const th = sorted[Math.floor(tmp.length * o.sparsity)];
      let t = 0;
      for (let r = 0; r < rows; r++) for (let j = i1; j < i2; j++) prune[r * cols + j] = tmp[t++] <= th ? 1 : 0;
    }
    if (prunen !== 0 && (i - i1) % prunem === 0) {
      const L = Math.min(prunem, i2 - i);
      for (let r = 0; r < rows; r++) {
        const js = Array.from({ length: L }, (_, k) => i + k);
        js.sort((a, b) => W[r * cols + a] ** 2 / uii2(a) - W[r * cols + b] ** 2 / uii2(b) || a - b);
        for (const j of js.slice(0, prunen)) prune[r * cols + j] = 1;
      }
    }
    const M = Minv[i];
    const n = cols - i;
    for (let r = 0; r < rows; r++) {
      const w = W[r * cols + i];
      const q = prune[r * cols + i] ? 0 : w;
      W[r * cols + i] = q;
      for (let k = 1; k < n; k++) W[r * cols + i + k] -= ((w - q) * M[k]) / M[0];
    }
  }
  const mask = prune.map((p) => (p ? 0 : 1));
  return { W, mask };
}

test('(a) SparseGPT with H = I: prunes the int(numel*s)+1 smallest |w| of the block, kept weights unchanged', () => {
  const rng = mulberry32(12);
  const rows = 10;
  const cols = 20;
  const H = new Float64Array(cols * cols);
  for (let i = 0; i < cols; i++) H[i * cols + i] = 1;
  for (const s of [0.3, 0.5, 0.75]) {
    const W = randn(rng, rows * cols);
    const { W: Wp, mask, damp } = referenceSparseGpt(W, rows, cols, H, { sparsity: s, blocksize: 128 });
    assert.equal(damp, 0.01);
    // the reference prunes every tmp <= sorted[int(numel*s)]: int(numel*s)+1 entries without ties
    const k = Math.floor(rows * cols * s) + 1;
    assert.equal(countZeros(mask), k);
    const all = Array.from({ length: rows * cols }, (_, i) => i);
    assertLowestPruned(all, (i) => Math.abs(W[i]), mask);
    // identical to magnitude pruning that zeroes k entries (magnitude's own exact-count rule)
    const mag = referenceMagnitude(W, rows, cols, (k + 0.5) / (rows * cols));
    assert.deepEqual(Array.from(mask), Array.from(mag.mask));
    // identity H: no compensation reaches the kept weights
    assertMaskApplied(W, Wp, mask);
  }
  // with tied scores the reference prunes every entry <= thresh: here the whole block
  const ones = new Float64Array(rows * cols).fill(1);
  const tied = referenceSparseGpt(ones, rows, cols, H, { sparsity: 0.5 });
  assert.equal(countZeros(tied.mask), rows * cols);
  // and even sparsity 0 prunes the block's smallest entry
  const W = randn(rng, rows * cols);
  assert.equal(countZeros(referenceSparseGpt(W, rows, cols, H, { sparsity: 0 }).mask), 1);
});

test('SparseGPT equals an independent sequential-OBS derivation (explicit sub-Hessian inverses, no lazy batching)', () => {
  const rng = mulberry32(13);
  const rows = 12;
  const cols = 40;
  const mix = randn(rng, cols * cols, 0.4);
  for (let i = 0; i < cols; i++) mix[i * cols + i] += 1;
  const seqs = makeSequences(rng, 4, 24, cols, mix);
  for (const X of seqs) for (let t = 0; t < X.length / cols; t++) X[t * cols + 7] = 0; // one dead input
  const H = sparseGptHessian(seqs, cols);
  const W = randn(rng, rows * cols);
  for (const o of [
    { sparsity: 0.5, blocksize: 128 },
    { sparsity: 0.5, blocksize: 16 },
    { sparsity: 0.3, blocksize: 7 },
    { sparsity: 0, prunen: 2, prunem: 4, blocksize: 128 },
    { sparsity: 0, prunen: 2, prunem: 4, blocksize: 12 },
    { sparsity: 0, prunen: 1, prunem: 4, blocksize: 16, percdamp: 0.1 },
  ]) {
    const ref = referenceSparseGpt(W, rows, cols, H, o);
    const naive = naiveSparseGpt(W, rows, cols, H, o);
    assert.deepEqual(Array.from(ref.mask), Array.from(naive.mask), JSON.stringify(o));
    const d = maxAbsDiff(ref.W, naive.W);
    assert.ok(d <= 1e-9 * maxAbs(naive.W), `${JSON.stringify(o)}: max diff ${d}`);
  }
});

test('SparseGPT N:M: lazy batch updates do not depend on the block size (multiples of m)', () => {
  const rng = mulberry32(14);
  const rows = 8;
  const cols = 48;
  const mix = randn(rng, cols * cols, 0.5);
  const H = sparseGptHessian(makeSequences(rng, 4, 32, cols, mix), cols);
  const W = randn(rng, rows * cols);
  const a = referenceSparseGpt(W, rows, cols, H, { sparsity: 0, prunen: 2, prunem: 4, blocksize: 128 });
  for (const blocksize of [4, 8, 20]) {
    const b = referenceSparseGpt(W, rows, cols, H, { sparsity: 0, prunen: 2, prunem: 4, blocksize });
    assert.deepEqual(Array.from(b.mask), Array.from(a.mask));
    assert.ok(maxAbsDiff(a.W, b.W) <= 1e-10 * maxAbs(a.W));
  }
});

test('(b) SparseGPT beats Wanda and magnitude on output error with correlated inputs, at 50% and 2:4', () => {
  const rng = mulberry32(15);
  const rows = 32;
  const cols = 64;
  // X = Z A with a random mixing A whose latent factors have geometrically decaying strength:
  // the input columns are strongly correlated (few effective directions), as in real LLM activations
  const mix = randn(rng, cols * cols);
  for (let i = 0; i < cols; i++) for (let j = 0; j < cols; j++) mix[i * cols + j] *= 0.85 ** i;
  const seqs = makeSequences(rng, 8, 32, cols, mix);
  const W = randn(rng, rows * cols);
  const H = sparseGptHessian(seqs, cols);
  const stat = wandaStat(seqs, cols);
  for (const nm of [undefined, { n: 2, m: 4 }]) {
    const sgpt = referenceSparseGpt(W, rows, cols, H, nm ? { sparsity: 0, prunen: nm.n, prunem: nm.m } : { sparsity: 0.5 });
    const wanda = referenceWanda(W, rows, cols, stat, 0.5, nm);
    const mag = referenceMagnitude(W, rows, cols, 0.5, nm);
    const eS = outputError(W, sgpt.W, rows, cols, seqs);
    const eW = outputError(W, wanda.W, rows, cols, seqs);
    const eM = outputError(W, mag.W, rows, cols, seqs);
    // SparseGPT prunes at least as much as the others (one more per block when unstructured)
    assert.ok(countZeros(sgpt.mask) >= countZeros(wanda.mask));
    assert.ok(eS < 0.5 * Math.min(eW, eM), `${nm ? '2:4' : '50%'}: sparsegpt ${eS}, wanda ${eW}, magnitude ${eM}`);
  }
});

test('(c) SparseGPT N:M: every full group of m has exactly n zeros (+0.0); partial-group behaviour of the reference', () => {
  const rng = mulberry32(16);
  const rows = 10;
  const cols = 32;
  const H = sparseGptHessian(makeSequences(rng, 4, 16, cols, randn(rng, cols * cols)), cols);
  const W = randn(rng, rows * cols);
  for (const [n, m] of [
    [2, 4],
    [1, 4],
    [4, 8],
  ]) {
    const { W: Wp, mask } = referenceSparseGpt(W, rows, cols, H, { sparsity: 0, prunen: n, prunem: m, blocksize: 16 });
    for (let r = 0; r < rows; r++) {
      for (let g0 = 0; g0 < cols; g0 += m) {
        let zeros = 0;
        for (let j = g0; j < g0 + m; j++) {
          if (!mask[r * cols + j]) {
            zeros++;
            assert.ok(Object.is(Wp[r * cols + j], 0));
          } else {
            assert.notEqual(Wp[r * cols + j], 0);
          }
        }
        assert.equal(zeros, n, `${n}:${m} row ${r} group ${g0}`);
      }
    }
  }
  // partial last group (cols = 10, 2:4): torch's topk(tmp, 2) on the 2-column slice prunes both
  const W10 = randn(rng, 3 * 10);
  const H10 = sparseGptHessian(makeSequences(rng, 3, 20, 10), 10);
  const p = referenceSparseGpt(W10, 3, 10, H10, { sparsity: 0, prunen: 2, prunem: 4 });
  for (let r = 0; r < 3; r++) assert.deepEqual(Array.from(p.mask.slice(r * 10 + 8, r * 10 + 10)), [0, 0]);
  // a partial group shorter than n makes torch.topk raise: the reference throws
  const W9 = randn(rng, 3 * 9);
  const H9 = sparseGptHessian(makeSequences(rng, 3, 20, 9), 9);
  assert.throws(() => referenceSparseGpt(W9, 3, 9, H9, { sparsity: 0, prunen: 2, prunem: 4 }), /prunen/);
});

test('(d) SparseGPT dead inputs: zero weight columns, no NaN, unstructured and N:M', () => {
  const rng = mulberry32(17);
  const rows = 8;
  const cols = 24;
  const seqs = makeSequences(rng, 4, 16, cols, randn(rng, cols * cols));
  const deadCols = [0, 5, 13];
  for (const X of seqs) for (let t = 0; t < X.length / cols; t++) for (const c of deadCols) X[t * cols + c] = 0;
  const H = sparseGptHessian(seqs, cols);
  for (const c of deadCols) assert.equal(H[c * cols + c], 0);
  const W = randn(rng, rows * cols);
  const { dead } = sparseGptHinv(H, cols);
  assert.deepEqual(
    dead.flatMap((d, i) => (d ? [i] : [])),
    deadCols,
  );
  for (const o of [{ sparsity: 0.5 }, { sparsity: 0.5, blocksize: 8 }, { sparsity: 0, prunen: 2, prunem: 4, blocksize: 8 }]) {
    const res = referenceSparseGpt(W, rows, cols, H, o);
    for (const v of res.W) assert.ok(Number.isFinite(v));
    for (let r = 0; r < rows; r++) for (const c of deadCols) assert.ok(Object.is(res.W[r * cols + c], 0));
    assert.ok(Number.isFinite(outputError(W, res.W, rows, cols, seqs)));
  }
});

test('SparseGPT input validation', () => {
  const H = new Float64Array([1, 0, 0, 1]);
  const W = new Float64Array([1, 2]);
  assert.throws(() => referenceSparseGpt(W, 1, 2, H, { sparsity: 1 }), /sparsity/);
  assert.throws(() => referenceSparseGpt(W, 1, 2, new Float64Array([1, 2, 2, 1]), { sparsity: 0.5, percdamp: 0 }), /not positive definite/);
  assert.throws(() => referenceSparseGpt(new Float64Array([NaN, 1]), 1, 2, H, { sparsity: 0.5 }), /non-finite/);
});
