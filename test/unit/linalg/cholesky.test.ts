import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { OpRegistry } from '../../../src/engine/graph/op-registry';
import { inverseSpd, NotPositiveDefinite, upperCholeskyOfInverse } from '../../../src/engine/linalg/cholesky';
import { mat } from '../../../src/engine/linalg/matrix-ops';
import { sparseGptHessian, sparseGptHinv } from '../../reference/pruning-f64';
import { correlatedInputs } from '../../helpers/random-data';

describe('upper Cholesky factor of the inverse (blocked, products in ORT)', () => {
  const ops = new OpRegistry({ provider: 'cpu' });
  after(() => ops.release());

  for (const n of [50, 300]) {
    it(`equals the float64 chol -> cholesky_inverse -> upper chol chain for n = ${n}`, async () => {
      const h = sparseGptHessian(correlatedInputs(8, 64, n, n), n);
      const { Hinv, damp } = sparseGptHinv(h, n, 0.01);
      const damped = Float32Array.from(h);
      for (let j = 0; j < n; j++) damped[j * n + j]! += damp;
      const u = await upperCholeskyOfInverse(ops, damped, n);
      let scale = 0;
      for (const v of Hinv) scale = Math.max(scale, Math.abs(v));
      let worst = 0;
      for (let i = 0; i < n; i++) {
        for (let j = 0; j < n; j++) {
          if (j < i) assert.equal(u[i * n + j], 0, `below the diagonal at ${i},${j}`);
          worst = Math.max(worst, Math.abs(u[i * n + j]! - Hinv[i * n + j]!) / scale);
        }
      }
      // Float32 throughout, on a Hessian of half rank plus 1% dampening (condition number in the
      // thousands): a few units in the fourth digit is what float32 can give, blocked or not.
      assert.ok(worst < 5e-4, `worst difference ${worst} relative to the largest entry`);
    });
  }

  it('reports a matrix that is not positive definite', async () => {
    const n = 200;
    const a = new Float32Array(n * n);
    for (let i = 0; i < n; i++) a[i * n + i] = i === 150 ? -1 : 1;
    await assert.rejects(upperCholeskyOfInverse(ops, a, n), NotPositiveDefinite);
  });
});

/** A⁻¹ in float64 by Gauss-Jordan elimination with partial pivoting: independent of the Cholesky code. */
function inverse64(a: ArrayLike<number>, n: number): Float64Array {
  const m = Float64Array.from(a);
  const inv = new Float64Array(n * n);
  for (let i = 0; i < n; i++) inv[i * n + i] = 1;
  for (let c = 0; c < n; c++) {
    let p = c;
    for (let r = c + 1; r < n; r++) if (Math.abs(m[r * n + c]!) > Math.abs(m[p * n + c]!)) p = r;
    for (const x of [m, inv]) for (let j = 0; j < n; j++) [x[c * n + j], x[p * n + j]] = [x[p * n + j]!, x[c * n + j]!];
    const d = m[c * n + c]!;
    for (const x of [m, inv]) for (let j = 0; j < n; j++) x[c * n + j]! /= d;
    for (let r = 0; r < n; r++) {
      const f = m[r * n + c]!;
      if (r === c || f === 0) continue;
      for (const x of [m, inv]) for (let j = 0; j < n; j++) x[r * n + j]! -= f * x[c * n + j]!;
    }
  }
  return inv;
}

describe('inverse of a positive-definite matrix (L⁻ᵀ L⁻¹ by blocks, products in ORT)', () => {
  const ops = new OpRegistry({ provider: 'cpu' });
  after(() => ops.release());

  // 100 is one float64 block; 300 recurses in the Cholesky; 1000 also splits L⁻ᵀ L⁻¹ (512 + 488).
  for (const [n, shift] of [[100, 0.01], [300, 0.01], [1000, 0.3]] as const) {
    it(`equals a float64 Gauss-Jordan inverse for n = ${n} (Gram matrix of half rank, unit diagonal, + ${shift})`, async () => {
      const h = sparseGptHessian(correlatedInputs(4, 2 * Math.ceil(n / 8), n, n), n);
      // As ALPS uses it: normalised to a unit diagonal, then shifted by ρ (here also the dampening).
      const a = new Float64Array(n * n);
      for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) a[i * n + j] = h[i * n + j]! / Math.sqrt(h[i * n + i]! * h[j * n + j]!) + (i === j ? shift : 0);
      const ours = (await inverseSpd(ops, mat(Float32Array.from(a), n, n))).data;
      const reference = inverse64(Float32Array.from(a), n);
      let scale = 0;
      for (const v of reference) scale = Math.max(scale, Math.abs(v));
      let worst = 0;
      for (let i = 0; i < n * n; i++) worst = Math.max(worst, Math.abs(ours[i]! - reference[i]!) / scale);
      // The Cholesky route gives 8e-5 at n = 300 (condition about 10⁴); an explicit Schur complement gave 1e-2.
      assert.ok(worst < 5e-4, `worst difference ${worst} relative to the largest entry`);
    });
  }

  it('reports a matrix that is not positive definite', async () => {
    const n = 300;
    const a = new Float32Array(n * n);
    for (let i = 0; i < n; i++) a[i * n + i] = i === 280 ? -1 : 1;
    await assert.rejects(inverseSpd(ops, mat(a, n, n)), NotPositiveDefinite);
  });
});
