import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { OpRegistry } from '../../../src/engine/graph/op-registry';
import { NotPositiveDefinite, upperCholeskyOfInverse } from '../../../src/engine/linalg/cholesky';
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
