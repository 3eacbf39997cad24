import { PruneLensError } from '../../errors';
import { GraphBuilder } from '../../graph/onnx-builder';
import type { OpRegistry } from '../../graph/op-registry';
import { floatTensor } from '../../graph/session';
import { NotPositiveDefinite, upperCholeskyOfInverse } from '../../linalg/cholesky';
import { addMatmulTNInPlace, mat, slice, transpose } from '../../linalg/matrix-ops';
import type { Logger } from '../../progress';
import { applyMask, columns, lowestMask, patternFeeds, patternKey, prunedCount, rowsOf, type Pattern } from '../mask-graphs';
import { layerLoss } from './loss';
import type { PruneMethod } from './method';

/**
 * SparseGPT (Frantar & Alistarh, "SparseGPT: Massive Language Models Can Be Accurately Pruned in
 * One-Shot", ICML 2023; `SparseGPT.fasterprune` in sparsegpt.py), step by step as fasterprune:
 * prune `weight` [rows, cols] column by column and move each pruned weight's error onto the columns
 * not yet visited, in proportion to the inverse Hessian of the layer's inputs, H = G = (2/n) Σ XᵀX.
 * The in-block column loop and the trailing update run as ORT graphs. W is held transposed, so a
 * block of columns and all the columns after it are contiguous rows of Wᵀ: the block graph reads its
 * block in place and the trailing update (one Gemm) writes into the rest in place. Copying the rest
 * out and back for every block, as a row-major W needs, had cost more than the products on 1B shapes.
 */
export const sparsegpt: PruneMethod<'sparsegpt'> = {
  name: 'sparsegpt',
  statistic: 'gram',
  description: 'calibration, slower',
  detail: "Zero by the inputs' Hessian and update the remaining weights to compensate",
  settings: ['blocksize', 'percdamp'],
  acceptsUpdate: true,
  validate({ nm, blocksize }) {
    if (nm && blocksize % nm.m !== 0) throw new PruneLensError('usage', `blocksize ${blocksize} must be a multiple of M (${nm.m})`);
  },
  async prune({ ops, weight, rows, cols, stat: hessian, sparsity, nm, settings, where, log }) {
    const { blocksize, percdamp } = settings;
    const wt = transpose(weight, rows, cols);

    // dead = diag(H) == 0; H[dead, dead] = 1; W[:, dead] = 0: inputs that never fire carry no information.
    const dead: number[] = [];
    let diagSum = 0;
    for (let j = 0; j < cols; j++) {
      const d = hessian![j * cols + j]!;
      if (d === 0) {
        dead.push(j);
        wt.fill(0, j * rows, (j + 1) * rows);
      }
      diagSum += d === 0 ? 1 : d;
    }

    // Hinv = cholesky(cholesky_inverse(cholesky(H + damp I)), upper=True), damp = percdamp · mean(diag(H)).
    const hinv = await dampedInverseFactor(ops, hessian!, dead, cols, (percdamp * diagSum) / cols, where, log);

    // Unstructured counts per block are cut from one rounded total, so the matrix prunes exactly round(numel·s).
    const total = prunedCount(rows * cols, sparsity);
    // Buffers the blocks reuse: Q1ᵀ, −Err1ᵀ and Hinv[i1:i2, i2:].
    const q1t = new Float32Array(Math.min(blocksize, cols) * rows);
    const negErr1t = new Float32Array(q1t.length);
    const hinv12 = new Float32Array(Math.min(blocksize, cols) * cols);
    for (let i1 = 0; i1 < cols; i1 += blocksize) {
      const i2 = Math.min(i1 + blocksize, cols);
      const count = i2 - i1;
      const pattern: Pattern = nm ? { kind: 'nm', ...nm } : { kind: 'matrix', count: Math.round((total * i2) / cols) - Math.round((total * i1) / cols) };
      // Q1, Err1 = the block pruned column by column (blockGraph below), written transposed.
      const hinv1 = slice(hinv, cols, i1, i2, i1, i2);
      const feeds = {
        weight: floatTensor(wt.subarray(i1 * rows, i2 * rows), [count, rows]),
        u: floatTensor(hinv1, [count, count]),
        diag: floatTensor(Float32Array.from({ length: count }, (_, i) => hinv1[i * count + i]!), [count]),
        ...patternFeeds(pattern, rows),
      };
      const q = q1t.subarray(0, count * rows);
      const negErr = negErr1t.subarray(0, count * rows);
      await ops.runInto(`sparsegpt.block.${rows}x${count}.${patternKey(pattern)}`, () => blockGraph(rows, count, pattern), feeds, { q: floatTensor(q, [count, rows]), neg_err: floatTensor(negErr, [count, rows]) });
      // W[:, i1:i2] = Q1
      wt.set(q, i1 * rows);
      // W[:, i2:] -= Err1 · Hinv[i1:i2, i2:], that is Wᵀ[i2:] += Hinv[i1:i2, i2:]ᵀ · (−Err1ᵀ)
      if (i2 < cols) {
        const rest = mat(wt.subarray(i2 * rows), cols - i2, rows);
        await addMatmulTNInPlace(ops, rest, mat(slice(hinv, cols, i1, i2, i2, cols, hinv12), count, cols - i2), mat(negErr, count, rows));
      }
    }
    const w = transpose(wt, cols, rows);
    for (let i = 0; i < w.length; i++) {
      if (!Number.isFinite(w[i]!)) throw new PruneLensError('weights', `SparseGPT produced a non-finite weight at flat index ${i}`, where);
    }
    return { weight: w, loss: await layerLoss(ops, weight, w, rows, cols, 'gram', hessian) };
  },
};

/** Each retry multiplies the dampening by 10; four tries reach 10x the mean diagonal. */
const DAMPING_TRIES = 4;

/** U with Uᵀ U = (H + λI)⁻¹, H with 1 on the dead inputs' diagonal, raising λ tenfold whenever the Cholesky factorization fails. */
async function dampedInverseFactor(ops: OpRegistry, h: Float32Array, dead: number[], n: number, damping: number, where: string, log?: Logger): Promise<Float32Array> {
  let lambda = damping;
  for (let attempt = 1; ; attempt++) {
    const damped = h.slice();
    for (const j of dead) damped[j * n + j] = 1;
    for (let j = 0; j < n; j++) damped[j * n + j]! += lambda;
    try {
      return await upperCholeskyOfInverse(ops, damped, n);
    } catch (err) {
      if (!(err instanceof NotPositiveDefinite)) throw err;
      if (attempt === DAMPING_TRIES) {
        throw new PruneLensError('weights', `the input Hessian is not positive definite even with dampening ${lambda.toExponential(2)}; the calibration activations may overflow`, where);
      }
      log?.warn(`${where}: Cholesky failed with dampening ${lambda.toExponential(2)}; retrying with ${(lambda * 10).toExponential(2)}`);
      lambda *= 10;
    }
  }
}

/**
 * Columns the block graph updates one by one before a Gemm carries their errors to the rest of the
 * block. Updating the whole block after every column, as fasterprune does, rewrites rows x 128 floats
 * 128 times per block: memory-bound, a quarter of SparseGPT's time on 1B shapes. Sixteen at a time
 * rewrites an eighth of that, and the Gemm that follows each group does the rest at matmul speed.
 */
const SUB_BLOCK = 16;

/**
 * fasterprune's inner loop over one block of `count` columns, unrolled. Inputs: the block W1,
 * transposed (`weight`, [count, rows]), Hinv1 (`u`, upper-triangular) and its diagonal. For each column i:
 *   w = W1[:, i], d = Hinv1[i, i]
 *   unstructured: mask1 = the `count` lowest of W1² / diag(Hinv1)² over the whole block, chosen once;
 *   N:M: at each group's first column, the n lowest of the group's W1² / diag² in each row
 *   err1 = (w − q) / d, q = w with the masked entries zeroed
 *   W1[:, i:] −= err1 ⊗ Hinv1[i, i:]   (Hinv1 is upper-triangular, so earlier columns are untouched)
 * The last line is done lazily, as fasterprune does between blocks: within a sub-block of SUB_BLOCK
 * columns (a whole number of N:M groups, so a group's columns are current when its mask is chosen)
 * column by column, then for the columns after it at once, W1[:, s1:] −= Err[:, s0:s1] · Hinv1[s0:s1, s1:].
 * A column is final once visited, so Q1 is the sub-blocks' columns as they end.
 * Outputs Q1ᵀ (`q`, the pruned block) and −Err1ᵀ (`neg_err`, negated for the trailing Gemm), [count, rows].
 */
function blockGraph(rows: number, count: number, pattern: Pattern): Uint8Array {
  const g = new GraphBuilder('prunelens_sparsegpt_block');
  const w1 = g.op('Transpose', [g.input('weight', 'float', [count, rows])], { perm: [1, 0] });
  const hinv1 = g.input('u', 'float', [count, count]);
  const diag = g.input('diag', 'float', [count]);
  const saliency = (values: string, from: number, to: number): string => {
    const d = rowsOf(g, diag, from, to);
    return g.op('Div', [g.op('Mul', [values, values]), g.op('Mul', [d, d])]);
  };
  const sub = pattern.kind === 'nm' ? pattern.m * Math.ceil(SUB_BLOCK / pattern.m) : SUB_BLOCK;
  const groupMasks: string[] = [];
  // mask / d over the mask's columns, so that each column's err1 is one product (the graph's ops are
  // small and many: each one less per column matters).
  const perDiag = (mask: string, from: number, to: number): string => g.op('Div', [mask, rowsOf(g, diag, from, to)]);
  let mask1 = pattern.kind === 'nm' ? '' : lowestMask(g, saliency(w1, 0, count), rows, count, pattern);
  let scaled1 = pattern.kind === 'nm' ? '' : perDiag(mask1, 0, count);
  let maskStart = 0;
  const err1: string[] = [];
  const q1: string[] = [];
  // The columns from s0 on, with every update from the columns before s0.
  let tail = w1;
  for (let s0 = 0; s0 < count; s0 += sub) {
    const s1 = Math.min(s0 + sub, count);
    let ws = s1 === count && s0 === 0 ? tail : columns(g, tail, 0, s1 - s0);
    const hinvSub = columns(g, rowsOf(g, hinv1, s0, s1), s0, s1);
    const errs: string[] = [];
    for (let i = s0; i < s1; i++) {
      if (pattern.kind === 'nm' && i % pattern.m === 0) {
        const end = Math.min(i + pattern.m, count);
        mask1 = lowestMask(g, saliency(columns(g, ws, i - s0, end - s0), i, end), rows, end - i, pattern);
        scaled1 = perDiag(mask1, i, end);
        groupMasks.push(mask1);
        maskStart = i;
      }
      const err = g.op('Mul', [columns(g, ws, i - s0, i - s0 + 1), columns(g, scaled1, i - maskStart, i - maskStart + 1)]);
      ws = g.op('Sub', [ws, g.op('MatMul', [err, rowsOf(g, hinvSub, i - s0, i - s0 + 1)])]);
      errs.push(err);
    }
    q1.push(ws);
    err1.push(...errs);
    if (s1 < count) {
      const errSub = errs.length === 1 ? errs[0]! : g.op('Concat', errs, { axis: 1 });
      const hinvAfter = columns(g, rowsOf(g, hinv1, s0, s1), s1, count);
      tail = g.op('Sub', [columns(g, tail, s1 - s0, count - s0), g.op('MatMul', [errSub, hinvAfter])]);
    }
  }
  const fullMask = pattern.kind === 'nm' ? (groupMasks.length === 1 ? groupMasks[0]! : g.op('Concat', groupMasks, { axis: 1 })) : mask1;
  const q = q1.length === 1 ? q1[0]! : g.op('Concat', q1, { axis: 1 });
  // A pruned column ends at w − (w/d)·d, which rounding can leave a hair from zero: zero it exactly.
  g.output(g.op('Transpose', [applyMask(g, q, fullMask)], { perm: [1, 0] }), 'q', 'float', [count, rows]);
  const err = count === 1 ? err1[0]! : g.op('Concat', err1, { axis: 1 });
  g.output(g.op('Neg', [g.op('Transpose', [err], { perm: [1, 0] })]), 'neg_err', 'float', [count, rows]);
  return g.build();
}
