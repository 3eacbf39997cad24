import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { OpRegistry, rowChunks } from '../../../src/engine/graph/op-registry';
import { magnitude } from '../../../src/engine/prune/methods/magnitude';
import { sparsegpt } from '../../../src/engine/prune/methods/sparsegpt';
import { layerLoss } from '../../../src/engine/prune/methods/loss';
import { wanda } from '../../../src/engine/prune/methods/wanda';
import type { NM } from '../../../src/engine/prune/spec';
import { outputError, referenceMagnitude, referenceSparseGpt, referenceWanda, sparseGptHessian, wandaStat } from '../../reference/pruning-f64';
import { correlatedInputs, normals } from '../../helpers/random-data';
import { magnitudePrune, pruneLinear, sparseGpt, wandaPrune } from '../../helpers/prune-linear';

const ops = new OpRegistry({ provider: 'cpu' });
after(() => ops.release());

function keepMask(w: ArrayLike<number>): Uint8Array {
  return Uint8Array.from(Array.from(w, (v) => (v === 0 ? 0 : 1)));
}

function zeros(w: ArrayLike<number>, from = 0, to = w.length, step = 1): number {
  let n = 0;
  for (let i = from; i < to; i += step) if (w[i] === 0) n++;
  return n;
}

function assertNoNegativeZero(w: Float32Array): void {
  for (const v of w) assert.ok(!Object.is(v, -0), 'a pruned weight is stored as -0.0');
}

/** Every row's groups of m consecutive columns: full groups hold n zeros, a tail of L holds floor(n L / m). */
function assertNM(w: Float32Array, rows: number, cols: number, { n, m }: NM): void {
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c += m) {
      const len = Math.min(m, cols - c);
      assert.equal(zeros(w, r * cols + c, r * cols + c + len), Math.floor((n * len) / m), `row ${r} group at ${c}`);
    }
  }
}

describe('magnitude and Wanda against float64 references', () => {
  const rows = 24;
  const cols = 44;
  const w64 = normals(rows * cols, 1);
  const w = Float32Array.from(w64);
  const stat64 = wandaStat(correlatedInputs(4, 16, cols, 2), cols);
  const stat = Float32Array.from(stat64);

  it('magnitude: one threshold per matrix, the same mask as the reference', async () => {
    const pruned = await magnitudePrune(ops, w, rows, cols, 0.5);
    assert.equal(zeros(pruned), Math.floor(rows * cols * 0.5));
    assert.deepEqual(keepMask(pruned), referenceMagnitude(w64, rows, cols, 0.5).mask);
    assertNoNegativeZero(pruned);
  });

  it('Wanda: cols * s per row, the same mask as the reference', async () => {
    for (const s of [0.25, 0.5, 0.75]) {
      const pruned = await wandaPrune(ops, w, rows, cols, stat, s);
      for (let r = 0; r < rows; r++) assert.equal(zeros(pruned, r * cols, (r + 1) * cols), cols * s);
      assert.deepEqual(keepMask(pruned), referenceWanda(w64, rows, cols, stat64, s).mask);
      assertNoNegativeZero(pruned);
    }
  });

  it('Wanda: when cols * s is fractional, rows differ by one and the matrix holds exactly round(numel * s)', async () => {
    const s = 0.3; // 44 * 0.3 = 13.2 per row; 24 * 44 * 0.3 = 316.8 -> 317 = 5 rows of 14 and 19 of 13
    const pruned = await wandaPrune(ops, w, rows, cols, stat, s);
    assert.equal(zeros(pruned), 317);
    for (let r = 0; r < rows; r++) {
      const count = r < 5 ? 14 : 13;
      const row = pruned.subarray(r * cols, (r + 1) * cols);
      assert.equal(zeros(row), count, `row ${r}`);
      const ref = referenceWanda(w64.subarray(r * cols, (r + 1) * cols), 1, cols, stat64, count / cols).mask;
      assert.deepEqual(keepMask(row), ref, `row ${r}`);
    }
  });

  it('N:M: n zeros in every group of m, a proportional share in a partial last group', async () => {
    for (const nm of [{ n: 2, m: 4 }, { n: 4, m: 8 }]) {
      const wanda = await wandaPrune(ops, w, rows, cols, stat, nm.n / nm.m, nm);
      assertNM(wanda, rows, cols, nm);
      assert.deepEqual(keepMask(wanda), referenceWanda(w64, rows, cols, stat64, 0, nm).mask);
      const magnitude = await magnitudePrune(ops, w, rows, cols, nm.n / nm.m, nm);
      assertNM(magnitude, rows, cols, nm);
      assert.deepEqual(keepMask(magnitude), referenceMagnitude(w64, rows, cols, 0, nm).mask);
    }
  });

  it('keeps the surviving weights bit for bit', async () => {
    const pruned = await wandaPrune(ops, w, rows, cols, stat, 0.5);
    for (let i = 0; i < w.length; i++) if (pruned[i] !== 0) assert.equal(pruned[i], w[i]);
  });
});

describe('SparseGPT against the float64 port of sparsegpt.py', () => {
  const rows = 16;
  const blocksize = 32;
  const cols = 96;
  const inputs = correlatedInputs(6, 48, cols, 3);
  const h64 = sparseGptHessian(inputs, cols);
  const w64 = normals(rows * cols, 4);
  const options = { blocksize, percdamp: 0.01 };

  it('unstructured: the same mask and the same output error as the reference for the same count', async () => {
    const s = 0.5;
    const pruned = await sparseGpt(ops, Float32Array.from(w64), rows, cols, Float32Array.from(h64), { ...options, sparsity: s });
    // The reference prunes every score <= the sorted entry at int(numel * s): one more than
    // int(numel * s) per block. Asking it for the count we prune makes the two comparable.
    const perBlock = Math.floor(rows * blocksize * s);
    const ref = referenceSparseGpt(w64, rows, cols, h64, { sparsity: (perBlock - 0.5) / (rows * blocksize), blocksize, percdamp: 0.01 });
    for (let b = 0; b < cols / blocksize; b++) {
      let blockZeros = 0;
      for (let r = 0; r < rows; r++) blockZeros += zeros(pruned, r * cols + b * blocksize, r * cols + (b + 1) * blocksize);
      assert.equal(blockZeros, perBlock, `block ${b}`);
    }
    assert.deepEqual(keepMask(pruned), ref.mask);
    let worst = 0;
    for (let i = 0; i < pruned.length; i++) worst = Math.max(worst, Math.abs(pruned[i]! - ref.W[i]!));
    assert.ok(worst < 1e-3, `weights differ by up to ${worst}`);
    const ours = outputError(w64, Float64Array.from(pruned), rows, cols, inputs);
    const theirs = outputError(w64, ref.W, rows, cols, inputs);
    assert.ok(ours <= theirs * 1.001, `output error ${ours} vs reference ${theirs}`);
    assertNoNegativeZero(pruned);
  });

  it('2:4 and 4:8: the same mask, chosen on the updated weights, and no worse output error', async () => {
    for (const nm of [{ n: 2, m: 4 }, { n: 4, m: 8 }]) {
      const pruned = await sparseGpt(ops, Float32Array.from(w64), rows, cols, Float32Array.from(h64), { ...options, sparsity: 0.5, nm });
      assertNM(pruned, rows, cols, nm);
      const ref = referenceSparseGpt(w64, rows, cols, h64, { sparsity: 0, prunen: nm.n, prunem: nm.m, blocksize, percdamp: 0.01 });
      assert.deepEqual(keepMask(pruned), ref.mask);
      const ours = outputError(w64, Float64Array.from(pruned), rows, cols, inputs);
      const theirs = outputError(w64, ref.W, rows, cols, inputs);
      assert.ok(ours <= theirs * 1.001, `${nm.n}:${nm.m}: output error ${ours} vs reference ${theirs}`);
    }
  });

  it('beats Wanda and magnitude on the layer output error', async () => {
    const w = Float32Array.from(w64);
    const sgpt = await sparseGpt(ops, w, rows, cols, Float32Array.from(h64), { ...options, sparsity: 0.5 });
    const wanda = await wandaPrune(ops, w, rows, cols, Float32Array.from(wandaStat(inputs, cols)), 0.5);
    const magnitude = await magnitudePrune(ops, w, rows, cols, 0.5);
    const err = (p: Float32Array) => outputError(w64, Float64Array.from(p), rows, cols, inputs);
    assert.ok(err(sgpt) < 0.5 * Math.min(err(wanda), err(magnitude)), `${err(sgpt)} vs ${err(wanda)} / ${err(magnitude)}`);
  });

  it('zeroes the weights of inputs that never fire, without NaN', async () => {
    const h = Float32Array.from(h64);
    for (let k = 0; k < cols; k++) h[5 * cols + k] = h[k * cols + 5] = 0;
    const pruned = await sparseGpt(ops, Float32Array.from(w64), rows, cols, h, { ...options, sparsity: 0.5 });
    for (let r = 0; r < rows; r++) assert.equal(pruned[r * cols + 5], 0);
    assert.ok(pruned.every(Number.isFinite));
  });
});

describe('the layer loss each method reports, against float64 recomputations', () => {
  const rows = 16;
  const cols = 96;
  const inputs = correlatedInputs(6, 48, cols, 3);
  const h64 = sparseGptHessian(inputs, cols);
  const norms64 = wandaStat(inputs, cols);
  const w64 = normals(rows * cols, 4);
  const w = Float32Array.from(w64);
  const close = (ours: number, reference: number): void => assert.ok(Math.abs(ours - reference) <= 1e-3 * reference, `loss ${ours} vs float64 ${reference}`);
  const weighted = (pruned: Float32Array, weight: (j: number) => number): number => {
    let sum = 0;
    for (let i = 0; i < pruned.length; i++) sum += (w64[i]! - pruned[i]!) ** 2 * weight(i % cols);
    return sum;
  };

  it("SparseGPT: ½ tr(ΔW H ΔWᵀ), the layer's squared output change per calibration sequence", async () => {
    const { weight, loss } = await pruneLinear(sparsegpt, ops, w, rows, cols, Float32Array.from(h64), { sparsity: 0.6, blocksize: 32 });
    close(loss, outputError(w64, Float64Array.from(weight), rows, cols, inputs) / inputs.length);
  });

  it('Wanda: Σ ΔW_ij² · (1/n)||X_j||², the diagonal part of the same', async () => {
    const { weight, loss } = await pruneLinear(wanda, ops, w, rows, cols, Float32Array.from(norms64), { sparsity: 0.6 });
    close(loss, weighted(weight, (j) => norms64[j]!));
  });

  it('magnitude: ||ΔW||², with no data to weigh it', async () => {
    const { weight, loss } = await pruneLinear(magnitude, ops, w, rows, cols, undefined, { sparsity: 0.6 });
    close(loss, weighted(weight, () => 1));
  });

  it('SparseGPT refuses an N:M group that does not divide the block width, before any work', () => {
    assert.throws(() => sparsegpt.validate!({ nm: { n: 2, m: 4 }, blocksize: 30, percdamp: 0.01 }), /blocksize 30 must be a multiple of M \(4\)/);
  });
});

describe('matrices larger than one run: rows split over chunks (rowChunks) give what one run would', () => {
  const rows = 1500;
  const cols = 1000;
  const w64 = normals(rows * cols, 7);
  const w = Float32Array.from(w64);
  const norms64 = Float64Array.from({ length: cols }, (_, j) => 0.5 + ((j * 7919) % 1000) / 1000);

  it('splits this matrix into runs of whole rows, the uneven rows spanning two of them', () => {
    const chunks = rowChunks(rows, cols);
    assert.ok(chunks.length === 2 && chunks[0]![1] < 1200, JSON.stringify(chunks));
    assert.deepEqual([chunks[0]![0], chunks.at(-1)![1]], [0, rows]);
  });

  it('Wanda: each row its reference mask, and the loss of all chunks', async () => {
    // 451,200 = 300 per row and one more in the first 1,200 rows: the per-row counts cross the chunk boundary.
    const s = 451_200 / (rows * cols);
    const { weight, loss } = await pruneLinear(wanda, ops, w, rows, cols, Float32Array.from(norms64), { sparsity: s });
    let expected = 0;
    for (let r = 0; r < rows; r++) {
      const row = weight.subarray(r * cols, (r + 1) * cols);
      const count = r < 1200 ? 301 : 300;
      assert.equal(zeros(row), count, `row ${r}`);
      if (r % 97 === 0 || (r >= 1190 && r < 1210)) assert.deepEqual(keepMask(row), referenceWanda(w64.subarray(r * cols, (r + 1) * cols), 1, cols, norms64, count / cols).mask, `row ${r}`);
      for (let c = 0; c < cols; c++) if (row[c] === 0) expected += w64[r * cols + c]! ** 2 * norms64[c]!;
    }
    assert.ok(Math.abs(loss - expected) <= 1e-4 * expected, `loss ${loss} vs float64 ${expected}`);
  });

  it('the Gram layer loss: ½ Σ (ΔW G) ⊙ ΔW over every chunk', async () => {
    const n = 600;
    const r = 1800; // 1,080,000 entries: two runs
    const g64 = sparseGptHessian(correlatedInputs(2, 64, n, 5), n);
    const dense = Float32Array.from(normals(r * n, 8));
    const pruned = dense.map((v, i) => (i % 3 === 0 ? 0 : v));
    let expected = 0;
    const delta = new Float64Array(n);
    for (let i = 0; i < r; i++) {
      for (let j = 0; j < n; j++) delta[j] = dense[i * n + j]! - pruned[i * n + j]!;
      for (let j = 0; j < n; j++) {
        if (delta[j] === 0) continue;
        let dot = 0;
        for (let k = 0; k < n; k++) dot += delta[k]! * g64[k * n + j]!;
        expected += 0.5 * dot * delta[j]!;
      }
    }
    const loss = await layerLoss(ops, dense, pruned, r, n, 'gram', Float32Array.from(g64));
    assert.ok(rowChunks(r, n).length === 2);
    assert.ok(Math.abs(loss - expected) <= 1e-4 * expected, `loss ${loss} vs float64 ${expected}`);
  });
});
