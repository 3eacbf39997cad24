import { PruneLensError } from '../errors';
import { GraphBuilder } from '../graph/onnx-builder';
import type { OpRegistry } from '../graph/op-registry';
import { floatTensor } from '../graph/session';
import { NotPositiveDefinite, upperCholeskyOfInverse } from '../linalg/cholesky';
import { mat, place, slice, subMatmul } from '../linalg/matrix-ops';
import type { Logger } from '../progress';
import { applyMask, columns, lowestMask, patternFeeds, patternKey, prunedCount, type Pattern } from './mask-graphs';
import type { NM } from './spec';

export interface SparseGptOptions {
  sparsity: number;
  nm?: NM;
  /** Columns per lazy-update block (128 in the paper). */
  blocksize: number;
  /** Dampening as a fraction of the mean Hessian diagonal (0.01 in the paper). */
  percdamp: number;
}

/** Each retry multiplies the dampening by 10; four tries reach 10x the mean diagonal. */
const DAMPING_TRIES = 4;

/**
 * SparseGPT (Frantar & Alistarh, 2023): prunes `weight` [rows, cols] column by column and moves each
 * pruned weight's error onto the columns not yet visited, in proportion to the inverse Hessian of
 * the layer's inputs, `hessian` = (2/n) Σ X Xᵀ [cols, cols]. The in-block column loop and the
 * trailing update run as ORT graphs; JS only copies column blocks.
 */
export async function sparseGpt(
  ops: OpRegistry,
  weight: Float32Array,
  rows: number,
  cols: number,
  hessian: Float32Array,
  options: SparseGptOptions,
  where: string,
  log?: Logger,
): Promise<Float32Array> {
  const { sparsity, nm, blocksize } = options;
  if (nm && blocksize % nm.m !== 0) throw new PruneLensError('usage', `blocksize ${blocksize} must be a multiple of M (${nm.m})`);
  const w = Float32Array.from(weight);
  const h = Float32Array.from(hessian);
  // Inputs that never fire carry no information: their weights go, and a unit diagonal keeps H invertible.
  let diagSum = 0;
  for (let j = 0; j < cols; j++) {
    if (h[j * cols + j] === 0) {
      h[j * cols + j] = 1;
      for (let r = 0; r < rows; r++) w[r * cols + j] = 0;
    }
    diagSum += h[j * cols + j]!;
  }
  const u = await dampedInverseFactor(ops, h, cols, (options.percdamp * diagSum) / cols, where, log);

  // Unstructured counts per block are cut from one rounded total, so the matrix prunes exactly round(numel·s).
  const total = prunedCount(rows * cols, sparsity);
  for (let i1 = 0; i1 < cols; i1 += blocksize) {
    const i2 = Math.min(i1 + blocksize, cols);
    const width = i2 - i1;
    const pattern: Pattern = nm ? { kind: 'nm', ...nm } : { kind: 'matrix', count: Math.round((total * i2) / cols) - Math.round((total * i1) / cols) };
    const uBlock = slice(u, cols, i1, i2, i1, i2);
    const diag = new Float32Array(width);
    for (let i = 0; i < width; i++) diag[i] = uBlock[i * width + i]!;
    const feeds = {
      weight: floatTensor(slice(w, cols, 0, rows, i1, i2), [rows, width]),
      u: floatTensor(uBlock, [width, width]),
      diag: floatTensor(diag, [width]),
      ...patternFeeds(pattern, rows),
    };
    const [q, err] = await ops.run(`sparsegpt.block.${rows}x${width}.${patternKey(pattern)}`, () => buildBlockGraph(rows, width, pattern), feeds, ['q', 'err']);
    place(w, cols, q!, 0, rows, i1, i2);
    if (i2 < cols) {
      const rest = await subMatmul(ops, mat(slice(w, cols, 0, rows, i2, cols), rows, cols - i2), mat(err!, rows, width), mat(slice(u, cols, i1, i2, i2, cols), width, cols - i2));
      place(w, cols, rest.data, 0, rows, i2, cols);
    }
  }
  for (let i = 0; i < w.length; i++) {
    if (!Number.isFinite(w[i]!)) throw new PruneLensError('weights', `SparseGPT produced a non-finite weight at flat index ${i}`, where);
  }
  return w;
}

/** U with Uᵀ U = (H + λI)⁻¹, raising λ tenfold whenever the Cholesky factorization fails. */
async function dampedInverseFactor(ops: OpRegistry, h: Float32Array, n: number, damping: number, where: string, log?: Logger): Promise<Float32Array> {
  let lambda = damping;
  for (let attempt = 1; ; attempt++) {
    const damped = Float32Array.from(h);
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
 * One block of columns, unrolled: for each column i, the entries chosen for pruning become zero and
 * their error err = w_i·p_i / U_ii is taken off the block's later columns by err ⊗ U[i, :] (U is
 * upper-triangular, so earlier columns are untouched). Unstructured masks are chosen once per block
 * from w² / diag(U)², the `count` lowest over all rows; N:M masks at each group's first column from
 * the weights as updated so far. Outputs the pruned block `q` and the errors `err` [rows, width].
 */
function buildBlockGraph(rows: number, width: number, pattern: Pattern): Uint8Array {
  const g = new GraphBuilder('prunelens_sparsegpt_block');
  let w = g.input('weight', 'float', [rows, width]);
  const u = g.input('u', 'float', [width, width]);
  const diag = g.input('diag', 'float', [width]);
  const saliency = (value: string, from: number, to: number): string => {
    const d = g.op('Slice', [diag, g.constInt64([from]), g.constInt64([to]), g.constInt64([0])]);
    return g.op('Div', [g.op('Mul', [value, value]), g.op('Mul', [d, d])]);
  };
  const groupMasks: string[] = [];
  let mask = pattern.kind === 'nm' ? '' : lowestMask(g, saliency(w, 0, width), rows, width, pattern);
  let maskStart = 0;
  const errors: string[] = [];
  for (let i = 0; i < width; i++) {
    if (pattern.kind === 'nm' && i % pattern.m === 0) {
      const end = Math.min(i + pattern.m, width);
      mask = lowestMask(g, saliency(columns(g, w, i, end), i, end), rows, end - i, pattern);
      groupMasks.push(mask);
      maskStart = i;
    }
    const d = g.op('Slice', [diag, g.constInt64([i]), g.constInt64([i + 1]), g.constInt64([0])]);
    const err = g.op('Div', [g.op('Mul', [columns(g, w, i, i + 1), columns(g, mask, i - maskStart, i - maskStart + 1)]), d]);
    const uRow = g.op('Slice', [u, g.constInt64([i]), g.constInt64([i + 1]), g.constInt64([0])]);
    w = g.op('Sub', [w, g.op('MatMul', [err, uRow])]);
    errors.push(err);
  }
  const fullMask = pattern.kind === 'nm' ? (groupMasks.length === 1 ? groupMasks[0]! : g.op('Concat', groupMasks, { axis: 1 })) : mask;
  // A pruned column ends at w - (w/d)·d, which rounding can leave a hair from zero: zero it exactly.
  g.output(applyMask(g, w, fullMask), 'q', 'float', [rows, width]);
  g.output(width === 1 ? errors[0]! : g.op('Concat', errors, { axis: 1 }), 'err', 'float', [rows, width]);
  return g.build();
}
