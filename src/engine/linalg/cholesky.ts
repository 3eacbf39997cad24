import type { OpRegistry } from '../graph/op-registry';
import { addMatmulTN, mat, matmulNT, matmulTN, negMatmul3, place, slice, subMatmulNT, type Mat } from './matrix-ops';

/** Thrown when a pivot is not positive: the caller raises the damping and tries again. */
export class NotPositiveDefinite extends Error {
  constructor(readonly pivot: number) {
    super(`matrix is not positive definite (pivot ${pivot})`);
  }
}

/** Blocks this small are factored in float64 JS: n³/3 flops for n ≤ 128 is well under a millisecond. */
const BASE = 128;

/**
 * The upper-triangular U with Uᵀ U = H⁻¹, which SparseGPT reads its updates from (the reference takes
 * chol(H), inverts it, and factors the inverse again). Here it comes from one factorization: if
 * P H P = L Lᵀ with P the order-reversing permutation, then U = P L⁻¹ P, since H = V Vᵀ with V = P L P
 * upper-triangular and U = V⁻¹. Cholesky factors are unique, so this is the same U with fewer
 * rounding steps. P A P reverses the order of A's elements, which is done in place: `h` is
 * overwritten (on 5632 x 5632, each copy into new memory costs ~0.5 s on the 2-core VM, where first
 * touching a page is the slow part).
 */
export async function upperCholeskyOfInverse(ops: OpRegistry, h: Float32Array, n: number): Promise<Float32Array> {
  return (await inverseCholesky(ops, mat(h.reverse(), n, n))).data.reverse();
}

/**
 * L⁻¹ for the lower Cholesky factor L of a symmetric positive-definite A, by recursion on 2x2 blocks:
 * with L11 = chol(A11), L21 = A21 L11⁻ᵀ and L22 = chol(A22 - L21 L21ᵀ), the inverse has blocks L11⁻¹,
 * -L22⁻¹ L21 L11⁻¹ and L22⁻¹. Every O(n³) product is an ORT run; JS only copies blocks and factors
 * the small ones.
 */
export async function inverseCholesky(ops: OpRegistry, a: Mat): Promise<Mat> {
  const n = a.rows;
  if (n <= BASE) return smallInverseCholesky(a);
  const k = Math.ceil(n / 2 / BASE) * BASE;
  const top = await inverseCholesky(ops, block(a, 0, k, 0, k));
  const l21 = await matmulNT(ops, block(a, k, n, 0, k), top);
  const bottom = await inverseCholesky(ops, await subMatmulNT(ops, block(a, k, n, k, n), l21, l21));
  return assemble(n, k, top, await negMatmul3(ops, bottom, l21, top), bottom);
}

/**
 * A⁻¹ for a symmetric positive-definite A: L⁻¹ from inverseCholesky, then A⁻¹ = L⁻ᵀ L⁻¹ by
 * transposedGram, which skips the zero half of L⁻¹ on large matrices. Where A⁻¹ is needed for
 * many shifts A + ρI (ALPS), this costs about 2n³ flops per shift against 10n³/3 with a dense product
 * L⁻ᵀ · L⁻¹, with the rounding of the Cholesky route (a Schur-complement inversion, at (4/3)n³, lost
 * two digits on a Gram matrix of condition 10⁴).
 */
export async function inverseSpd(ops: OpRegistry, a: Mat): Promise<Mat> {
  return transposedGram(ops, await inverseCholesky(ops, a));
}

/** Below this size one dense product beats the recursion's many small runs (576: 100 vs 125 ms; 1536: 620 vs 270). */
const DENSE_GRAM = 768;

/**
 * Mᵀ M for a lower-triangular M, by recursion on the blocks of M = [[P, 0], [Q, R]]:
 * Mᵀ M = [[Pᵀ P + Qᵀ Q, Qᵀ R], [Rᵀ Q, Rᵀ R]], every product an ORT run.
 */
async function transposedGram(ops: OpRegistry, m: Mat): Promise<Mat> {
  const n = m.rows;
  if (n <= DENSE_GRAM) return matmulTN(ops, m, m);
  const k = Math.ceil(n / 2 / BASE) * BASE;
  const q = block(m, k, n, 0, k);
  const r = block(m, k, n, k, n);
  const top = await addMatmulTN(ops, await transposedGram(ops, block(m, 0, k, 0, k)), q, q);
  const lower = await matmulTN(ops, r, q);
  const bottom = await transposedGram(ops, r);
  const out = new Float32Array(n * n);
  place(out, n, top.data, 0, k, 0, k);
  place(out, n, lower.data, k, n, 0, k);
  place(out, n, bottom.data, k, n, k, n);
  for (let i = k; i < n; i++) for (let j = 0; j < k; j++) out[j * n + i] = lower.data[(i - k) * k + j]!;
  return mat(out, n, n);
}

function smallInverseCholesky(a: Mat): Mat {
  const n = a.rows;
  const l = new Float64Array(n * n);
  for (let j = 0; j < n; j++) {
    let s = a.data[j * n + j]!;
    for (let k = 0; k < j; k++) s -= l[j * n + k]! * l[j * n + k]!;
    if (!(s > 0)) throw new NotPositiveDefinite(s);
    const d = Math.sqrt(s);
    l[j * n + j] = d;
    for (let i = j + 1; i < n; i++) {
      let t = a.data[i * n + j]!;
      for (let k = 0; k < j; k++) t -= l[i * n + k]! * l[j * n + k]!;
      l[i * n + j] = t / d;
    }
  }
  const inv = new Float64Array(n * n);
  for (let j = 0; j < n; j++) {
    inv[j * n + j] = 1 / l[j * n + j]!;
    for (let i = j + 1; i < n; i++) {
      let t = 0;
      for (let k = j; k < i; k++) t += l[i * n + k]! * inv[k * n + j]!;
      inv[i * n + j] = -t / l[i * n + i]!;
    }
  }
  return mat(Float32Array.from(inv), n, n);
}

function block(a: Mat, r0: number, r1: number, c0: number, c1: number): Mat {
  return mat(slice(a.data, a.cols, r0, r1, c0, c1), r1 - r0, c1 - c0);
}

/** [[top, 0], [lower, bottom]] as one n x n lower-triangular matrix. */
function assemble(n: number, k: number, top: Mat, lower: Mat, bottom: Mat): Mat {
  const out = new Float32Array(n * n);
  place(out, n, top.data, 0, k, 0, k);
  place(out, n, lower.data, k, n, 0, k);
  place(out, n, bottom.data, k, n, k, n);
  return mat(out, n, n);
}
