import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { OpRegistry } from '../../../src/engine/graph/op-registry';
import type { NM } from '../../../src/engine/prune/spec';
import { admmUpdate, sparseGpt, wandaPrune, smallLayer } from '../../helpers/prune-linear';
import { referenceMaskedLeastSquares } from '../../reference/admm-f64';
import { wandaStat } from '../../reference/pruning-f64';

const ops = new OpRegistry({ provider: 'cpu' });
after(() => ops.release());

const { rows, cols, inputs, h64, w64, h, w, err } = smallLayer();
const percdamp = 0.01;
const keepOf = (p: Float32Array): Uint8Array => Uint8Array.from(p, (v) => (v === 0 ? 0 : 1));

function sparseGptAt(sparsity: number, nm?: NM): Promise<Float32Array> {
  return sparseGpt(ops, w, rows, cols, h, { sparsity, nm, blocksize: 32, percdamp });
}

describe('ADMM update: the optimal weights on a fixed mask, against a float64 least-squares solve', () => {
  const cases: [string, () => Promise<Float32Array>][] = [
    ["SparseGPT's 50% mask", () => sparseGptAt(0.5)],
    ["SparseGPT's 70% mask", () => sparseGptAt(0.7)],
    ["SparseGPT's 2:4 mask", () => sparseGptAt(0.5, { n: 2, m: 4 })],
    ["Wanda's 60% mask", () => wandaPrune(ops, w, rows, cols, Float32Array.from(wandaStat(inputs, cols)), 0.6)],
  ];
  for (const [name, masked] of cases) {
    it(`${name}: keeps the mask, beats the mask's own weights and is within 0.1% of the optimum`, async () => {
      const pruned = await masked();
      const { weight: updated, loss } = await admmUpdate(ops, w, pruned, rows, cols, h, percdamp);
      assert.deepEqual(keepOf(updated).map((k, i) => k & (1 - keepOf(pruned)[i]!)), new Uint8Array(rows * cols), 'a pruned weight came back');
      for (const v of updated) assert.ok(!Object.is(v, -0), 'a pruned weight is stored as -0.0');
      const optimum = referenceMaskedLeastSquares(w64, rows, cols, h64, keepOf(pruned), percdamp);
      const [ours, theirs, reference] = [err(updated), err(pruned), err(optimum)];
      assert.ok(ours <= theirs, `output error ${ours} vs the mask's own weights ${theirs}`);
      assert.ok(ours <= reference * 1.001, `output error ${ours} vs the float64 optimum ${reference}`);
      // The reported loss is ½ tr(ΔW H ΔWᵀ) = the output error per calibration sequence.
      assert.ok(Math.abs(loss - ours / inputs.length) <= 1e-3 * (ours / inputs.length), `loss ${loss} vs ${ours / inputs.length}`);
    });
  }

  it('zeroes the weights of inputs that never fire, without NaN', async () => {
    const dead = Float32Array.from(h);
    for (let k = 0; k < cols; k++) dead[5 * cols + k] = dead[k * cols + 5] = 0;
    const pruned = await sparseGpt(ops, w, rows, cols, dead, { sparsity: 0.5, blocksize: 32, percdamp });
    const { weight: updated } = await admmUpdate(ops, w, pruned, rows, cols, dead, percdamp);
    for (let r = 0; r < rows; r++) assert.equal(updated[r * cols + 5], 0);
    assert.ok(updated.every(Number.isFinite));
  });
});
