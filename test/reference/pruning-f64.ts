/**
 * Independent plain-JS float64 reference implementations of the published pruning algorithms
 * (magnitude, Wanda, SparseGPT). Ground truth for tests of the engine's ONNX-Runtime versions.
 *
 * Deliberately imports nothing from src/ and favours obvious, line-by-line code over speed.
 *
 * Conventions
 * - Matrices are row-major Float64Array. A weight W is [rows, cols] = [out_features, in_features]
 *   like torch nn.Linear, so a layer computes y = x W^T and the input columns are W's columns.
 * - Masks are keep-masks: 1 = kept, 0 = pruned.
 * - Every zero written to an output W is +0.0 (a -0.0 input entry that is kept also comes back
 *   as +0.0): -0.0 in fp16/bf16 has broken 2:4 kernels elsewhere.
 * - Counts such as floor(rows * cols * s) are computed in float64 exactly as Python's
 *   int(numel * s) would (e.g. 0.29 * 100 = 28.999999999999996 -> 28).
 * - Ties are broken by lower index first (a stable ascending sort). Where the published code
 *   uses torch.topk (whose tie order is unspecified) this is a documented choice.
 *
 * Sources: Wanda (locuslab/wanda, prune.py + layerwrapper.py), SparseGPT
 * (IST-DASLab/sparsegpt, sparsegpt.py: add_batch and fasterprune, no quantizer).
 */

export interface NM {
  n: number;
  m: number;
}

// ---------------------------------------------------------------------------------------------
// small helpers
// ---------------------------------------------------------------------------------------------

function checkShape(name: string, a: ArrayLike<number>, expected: number): void {
  if (a.length !== expected) throw new Error(`${name}: expected length ${expected}, got ${a.length}`);
}

function checkFinite(name: string, a: ArrayLike<number>): void {
  for (let i = 0; i < a.length; i++) {
    if (!Number.isFinite(a[i])) throw new Error(`${name}: non-finite value ${a[i]} at flat index ${i}`);
  }
}

function checkDims(rows: number, cols: number): void {
  if (!Number.isInteger(rows) || rows < 1 || !Number.isInteger(cols) || cols < 1) {
    throw new Error(`invalid matrix dims rows=${rows} cols=${cols}`);
  }
}

function checkSparsity(s: number): void {
  if (!(s >= 0 && s <= 1)) throw new Error(`sparsity must lie in [0, 1], got ${s}`);
}

function checkNM(nm: NM): void {
  if (!Number.isInteger(nm.m) || nm.m < 1 || !Number.isInteger(nm.n) || nm.n < 0 || nm.n > nm.m) {
    throw new Error(`invalid N:M pattern ${nm.n}:${nm.m} (need integers 0 <= n <= m, m >= 1)`);
  }
}

/** +0.0 for any zero (turns -0.0 into +0.0), the value otherwise. */
function plusZero(v: number): number {
  return v === 0 ? 0 : v;
}

/**
 * Indices of the `k` lowest entries of `score` among `idx` (ties: lower index first).
 * A plain stable sort on (score, index).
 */
function lowestK(score: (i: number) => number, idx: number[], k: number): number[] {
  const order = idx.slice().sort((a, b) => {
    const d = score(a) - score(b);
    if (d !== 0) return d;
    return a - b;
  });
  return order.slice(0, k);
}

/** Apply a keep-mask to W: pruned entries become +0.0, kept entries keep their value. */
function applyMask(W: Float64Array, mask: Uint8Array): Float64Array {
  const out = new Float64Array(W.length);
  for (let i = 0; i < W.length; i++) out[i] = mask[i] ? plusZero(W[i]) : 0;
  return out;
}

/**
 * Row-wise N:M selection shared by magnitude and Wanda: in each row, each group of m consecutive
 * columns zeroes its n lowest scores (ties: lower column first); a last partial group of length
 * L < m zeroes floor(n * L / m).
 */
function nmMask(score: (r: number, c: number) => number, rows: number, cols: number, nm: NM): Uint8Array {
  checkNM(nm);
  const mask = new Uint8Array(rows * cols).fill(1);
  for (let r = 0; r < rows; r++) {
    for (let g0 = 0; g0 < cols; g0 += nm.m) {
      const L = Math.min(nm.m, cols - g0);
      const k = L === nm.m ? nm.n : Math.floor((nm.n * L) / nm.m);
      const idx: number[] = [];
      for (let c = g0; c < g0 + L; c++) idx.push(c);
      for (const c of lowestK((c) => score(r, c), idx, k)) mask[r * cols + c] = 0;
    }
  }
  return mask;
}

// ---------------------------------------------------------------------------------------------
// Magnitude
// ---------------------------------------------------------------------------------------------

/**
 * Magnitude pruning with one threshold per matrix: zero exactly floor(rows*cols*s) entries with
 * the smallest |W| (ties broken by lower flat index first). Returns the keep-mask and pruned W.
 * N:M variant (s is ignored): in each row, each group of m consecutive columns zeroes its n
 * smallest |W| (ties: lower index first); a last partial group of length L < m zeroes floor(n*L/m).
 */
export function referenceMagnitude(
  W: Float64Array,
  rows: number,
  cols: number,
  s: number,
  nm?: NM,
): { W: Float64Array; mask: Uint8Array } {
  checkDims(rows, cols);
  checkShape('referenceMagnitude W', W, rows * cols);
  checkFinite('referenceMagnitude W', W);
  let mask: Uint8Array;
  if (nm) {
    mask = nmMask((r, c) => Math.abs(W[r * cols + c]), rows, cols, nm);
  } else {
    checkSparsity(s);
    const numel = rows * cols;
    const k = Math.floor(numel * s);
    const idx: number[] = [];
    for (let i = 0; i < numel; i++) idx.push(i);
    mask = new Uint8Array(numel).fill(1);
    for (const i of lowestK((i) => Math.abs(W[i]), idx, k)) mask[i] = 0;
  }
  return { W: applyMask(W, mask), mask };
}

// ---------------------------------------------------------------------------------------------
// Wanda
// ---------------------------------------------------------------------------------------------

/**
 * Wanda's per-input-column statistic from calibration inputs. Each sequence is X [tokens, cols]
 * (row-major, tokens = length / cols). Port of layerwrapper.py's WrappedGPT.add_batch running mean
 * with one sequence per batch:
 *   scaler_row *= nsamples / (nsamples + 1); nsamples += 1; scaler_row += ||X[:, j]||^2 / nsamples
 * which equals (1/numSeq) * sum_seq sum_t x_tj^2. (||.||^2 is taken as the plain sum of squares,
 * not sqrt-then-square as torch.norm(...)**2 does; that only differs in the last ulp.)
 */
export function wandaStat(sequences: Float64Array[], cols: number): Float64Array {
  if (!Number.isInteger(cols) || cols < 1) throw new Error(`wandaStat: invalid cols ${cols}`);
  if (sequences.length === 0) throw new Error('wandaStat: no calibration sequences');
  const stat = new Float64Array(cols);
  let nsamples = 0;
  for (const X of sequences) {
    if (X.length % cols !== 0) throw new Error(`wandaStat: sequence length ${X.length} is not a multiple of cols ${cols}`);
    checkFinite('wandaStat X', X);
    const tokens = X.length / cols;
    for (let j = 0; j < cols; j++) stat[j] *= nsamples / (nsamples + 1);
    nsamples += 1;
    for (let j = 0; j < cols; j++) {
      let sq = 0;
      for (let t = 0; t < tokens; t++) sq += X[t * cols + j] * X[t * cols + j];
      stat[j] += sq / nsamples;
    }
  }
  return stat;
}

/**
 * Wanda: metric_ij = |W_ij| * sqrt(stat_j) (stat from wandaStat). Unstructured: in every row zero
 * the floor(cols*s) lowest metrics (ties: lower column index first, as prune.py's
 * torch.sort(..., stable=True) does). N:M (s ignored): per row, groups of m consecutive columns,
 * zero the n lowest (partial last group of length L: floor(n*L/m)).
 */
export function referenceWanda(
  W: Float64Array,
  rows: number,
  cols: number,
  stat: Float64Array,
  s: number,
  nm?: NM,
): { W: Float64Array; mask: Uint8Array } {
  checkDims(rows, cols);
  checkShape('referenceWanda W', W, rows * cols);
  checkShape('referenceWanda stat', stat, cols);
  checkFinite('referenceWanda W', W);
  checkFinite('referenceWanda stat', stat);
  for (let j = 0; j < cols; j++) if (stat[j] < 0) throw new Error(`referenceWanda: negative stat[${j}] = ${stat[j]}`);
  const metric = (r: number, c: number): number => Math.abs(W[r * cols + c]) * Math.sqrt(stat[c]);
  let mask: Uint8Array;
  if (nm) {
    mask = nmMask(metric, rows, cols, nm);
  } else {
    checkSparsity(s);
    const k = Math.floor(cols * s);
    mask = new Uint8Array(rows * cols).fill(1);
    const idx: number[] = [];
    for (let c = 0; c < cols; c++) idx.push(c);
    for (let r = 0; r < rows; r++) {
      for (const c of lowestK((c) => metric(r, c), idx, k)) mask[r * cols + c] = 0;
    }
  }
  return { W: applyMask(W, mask), mask };
}

// ---------------------------------------------------------------------------------------------
// Dense linear algebra (float64): Cholesky and friends
// ---------------------------------------------------------------------------------------------

/**
 * Lower Cholesky factor L of a symmetric positive-definite A [n, n] (A = L L^T), reading only
 * A's lower triangle (as torch.linalg.cholesky / LAPACK potrf with uplo='L').
 * Throws an Error naming the failing pivot if A is not positive definite.
 */
export function choleskyLower(A: Float64Array, n: number): Float64Array {
  checkShape('choleskyLower A', A, n * n);
  const L = new Float64Array(n * n);
  for (let j = 0; j < n; j++) {
    let s = A[j * n + j];
    for (let k = 0; k < j; k++) s -= L[j * n + k] * L[j * n + k];
    if (!(s > 0) || !Number.isFinite(s)) {
      throw new Error(`choleskyLower: matrix is not positive definite (pivot ${j} of ${n} is ${s})`);
    }
    const ljj = Math.sqrt(s);
    L[j * n + j] = ljj;
    for (let i = j + 1; i < n; i++) {
      let t = A[i * n + j];
      for (let k = 0; k < j; k++) t -= L[i * n + k] * L[j * n + k];
      L[i * n + j] = t / ljj;
    }
  }
  return L;
}

/**
 * Upper Cholesky factor U of a symmetric positive-definite A [n, n] (A = U^T U), reading only A's
 * upper triangle (as torch.linalg.cholesky(A, upper=True)). Mathematically U = choleskyLower(A)^T.
 */
export function choleskyUpper(A: Float64Array, n: number): Float64Array {
  checkShape('choleskyUpper A', A, n * n);
  const U = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    let s = A[i * n + i];
    for (let k = 0; k < i; k++) s -= U[k * n + i] * U[k * n + i];
    if (!(s > 0) || !Number.isFinite(s)) {
      throw new Error(`choleskyUpper: matrix is not positive definite (pivot ${i} of ${n} is ${s})`);
    }
    const uii = Math.sqrt(s);
    U[i * n + i] = uii;
    for (let j = i + 1; j < n; j++) {
      let t = A[i * n + j];
      for (let k = 0; k < i; k++) t -= U[k * n + i] * U[k * n + j];
      U[i * n + j] = t / uii;
    }
  }
  return U;
}

/** Inverse of a lower-triangular L [n, n] with non-zero diagonal (forward substitution per column). */
export function lowerTriangularInverse(L: Float64Array, n: number): Float64Array {
  checkShape('lowerTriangularInverse L', L, n * n);
  const X = new Float64Array(n * n);
  for (let j = 0; j < n; j++) {
    const ljj = L[j * n + j];
    if (ljj === 0 || !Number.isFinite(ljj)) throw new Error(`lowerTriangularInverse: singular diagonal at ${j}`);
    X[j * n + j] = 1 / ljj;
    for (let i = j + 1; i < n; i++) {
      let t = 0;
      for (let k = j; k < i; k++) t += L[i * n + k] * X[k * n + j];
      X[i * n + j] = -t / L[i * n + i];
    }
  }
  return X;
}

/**
 * torch.cholesky_inverse(L): given the lower Cholesky factor L of A, returns A^-1 = L^-T L^-1.
 * The result is exactly symmetric (same products, same summation order for [i, j] and [j, i]).
 */
export function choleskyInverse(L: Float64Array, n: number): Float64Array {
  const X = lowerTriangularInverse(L, n);
  const out = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      let t = 0;
      // (X^T X)[i, j] = sum_k X[k, i] X[k, j]; X is lower, so k >= max(i, j)
      for (let k = Math.max(i, j); k < n; k++) t += X[k * n + i] * X[k * n + j];
      out[i * n + j] = t;
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// SparseGPT
// ---------------------------------------------------------------------------------------------

/**
 * SparseGPT's Hessian H = (2/numSeq) * sum_seq X_seq^T X_seq ([cols, cols]), computed exactly as
 * sparsegpt.py's add_batch running mean does with one sequence per call (nsamples counts sequences):
 *   H *= nsamples / (nsamples + 1); nsamples += 1; inp = sqrt(2 / nsamples) * X^T; H += inp inp^T
 */
export function sparseGptHessian(sequences: Float64Array[], cols: number): Float64Array {
  if (!Number.isInteger(cols) || cols < 1) throw new Error(`sparseGptHessian: invalid cols ${cols}`);
  if (sequences.length === 0) throw new Error('sparseGptHessian: no calibration sequences');
  const H = new Float64Array(cols * cols);
  let nsamples = 0;
  for (const X of sequences) {
    if (X.length % cols !== 0) throw new Error(`sparseGptHessian: sequence length ${X.length} is not a multiple of cols ${cols}`);
    checkFinite('sparseGptHessian X', X);
    const tokens = X.length / cols;
    for (let i = 0; i < H.length; i++) H[i] *= nsamples / (nsamples + 1);
    nsamples += 1;
    const scale = Math.sqrt(2 / nsamples);
    for (let a = 0; a < cols; a++) {
      for (let b = 0; b < cols; b++) {
        let t = 0;
        for (let k = 0; k < tokens; k++) t += scale * X[k * cols + a] * (scale * X[k * cols + b]);
        H[a * cols + b] += t;
      }
    }
  }
  return H;
}

/**
 * The preprocessing of fasterprune up to `Hinv`:
 *   dead = diag(H) == 0; H[dead, dead] = 1   (torch's paired boolean indexing: only the diagonal entries)
 *   damp = percdamp * mean(diag(H))          (mean taken after the dead entries were set to 1)
 *   H += damp * I; H = cholesky(H); H = cholesky_inverse(H); H = cholesky(H, upper=True)
 * Returns Hinv = U (upper, with (H + damp I)^-1 = U^T U), damp and the dead columns.
 * The caller must zero W[:, dead]. H is not modified. Throws if a Cholesky fails (no fallback:
 * the published code has none either).
 */
export function sparseGptHinv(
  H: Float64Array,
  cols: number,
  percdamp = 0.01,
): { Hinv: Float64Array; damp: number; dead: boolean[] } {
  checkShape('sparseGptHinv H', H, cols * cols);
  checkFinite('sparseGptHinv H', H);
  const A = Float64Array.from(H);
  const dead: boolean[] = [];
  for (let j = 0; j < cols; j++) {
    dead.push(A[j * cols + j] === 0);
    if (dead[j]) A[j * cols + j] = 1;
  }
  let meanDiag = 0;
  for (let j = 0; j < cols; j++) meanDiag += A[j * cols + j];
  meanDiag /= cols;
  const damp = percdamp * meanDiag;
  for (let j = 0; j < cols; j++) A[j * cols + j] += damp;
  const L = choleskyLower(A, cols);
  const Ainv = choleskyInverse(L, cols);
  const Hinv = choleskyUpper(Ainv, cols);
  return { Hinv, damp, dead };
}

export interface SparseGptOptions {
  /** Unstructured target (ignored when prunen > 0). Must be < 1 (torch would index past the end). */
  sparsity: number;
  /** N of N:M (0 = unstructured). */
  prunen?: number;
  /** M of N:M. */
  prunem?: number;
  /** Column block size (default 128). */
  blocksize?: number;
  /** Dampening as a fraction of mean(diag H) (default 0.01). */
  percdamp?: number;
}

/**
 * SparseGPT fasterprune: a faithful float64 port of IST-DASLab/sparsegpt sparsegpt.py (no quantizer).
 * W is [rows, cols] (not modified), H the [cols, cols] Hessian from sparseGptHessian.
 *
 * Faithful quirks, kept on purpose (document them wherever the engine is compared to this):
 * - Unstructured: per block, thresh = sort(tmp)[int(numel * sparsity)] and EVERY entry with
 *   tmp <= thresh is pruned. Without ties that is int(numel*s) + 1 entries per block (one more
 *   than the target; even sparsity 0 prunes the block's smallest entry); with ties it can be
 *   many more (e.g. a block of equal weights and equal diag(Hinv) is pruned entirely).
 *   Rows end up with unequal sparsity (one threshold per block across all rows).
 * - N:M: groups are i % prunem == 0 with i counted from the start of each block, so a blocksize
 *   that is not a multiple of prunem restarts the groups at every block. The n lowest scores of
 *   the *already updated* weights W1 are chosen (ties: lower column first; torch.topk leaves tie
 *   order unspecified). A last partial group of length L prunes prunen of its L columns (torch's
 *   topk(tmp, prunen) on the truncated slice), NOT floor(n*L/m) like magnitude/Wanda; L < prunen
 *   throws here where torch.topk would raise.
 * - Dead columns (diag(H) == 0) are zeroed in W; the keep-mask still reports what mask1 decided
 *   for them (so a dead column can be "kept" with value 0).
 *
 * Returns the final W (pruned entries +0.0), the keep-mask (1 where mask1 did not prune the entry)
 * and the Cholesky dampening `damp` that was added to diag(H).
 */
export function referenceSparseGpt(
  W0: Float64Array,
  rows: number,
  cols: number,
  H0: Float64Array,
  opts: SparseGptOptions,
): { W: Float64Array; mask: Uint8Array; damp: number } {
  checkDims(rows, cols);
  checkShape('referenceSparseGpt W', W0, rows * cols);
  checkFinite('referenceSparseGpt W', W0);
  const sparsity = opts.sparsity;
  const prunen = opts.prunen ?? 0;
  const prunem = opts.prunem ?? 0;
  const blocksize = opts.blocksize ?? 128;
  const percdamp = opts.percdamp ?? 0.01;
  if (!Number.isInteger(blocksize) || blocksize < 1) throw new Error(`referenceSparseGpt: invalid blocksize ${blocksize}`);
  if (prunen !== 0) {
    checkNM({ n: prunen, m: prunem });
  } else if (!(sparsity >= 0 && sparsity < 1)) {
    throw new Error(`referenceSparseGpt: unstructured sparsity must lie in [0, 1), got ${sparsity}`);
  }

  const W = Float64Array.from(W0);
  const { Hinv, damp, dead } = sparseGptHinv(H0, cols, percdamp);
  for (let c = 0; c < cols; c++) {
    if (dead[c]) for (let r = 0; r < rows; r++) W[r * cols + c] = 0;
  }
  const pruned = new Uint8Array(rows * cols); // 1 = pruned by mask1

  for (let i1 = 0; i1 < cols; i1 += blocksize) {
    const i2 = Math.min(i1 + blocksize, cols);
    const count = i2 - i1;

    // W1 = W[:, i1:i2].clone(); Q1, Err1 = zeros; Hinv1 = Hinv[i1:i2, i1:i2]
    const W1 = new Float64Array(rows * count);
    for (let r = 0; r < rows; r++) for (let i = 0; i < count; i++) W1[r * count + i] = W[r * cols + i1 + i];
    const Q1 = new Float64Array(rows * count);
    const Err1 = new Float64Array(rows * count);
    const hinv1 = (a: number, b: number): number => Hinv[(i1 + a) * cols + (i1 + b)];
    const diag1 = (a: number): number => hinv1(a, a);

    const mask1 = new Uint8Array(rows * count); // 1 = prune
    if (prunen === 0) {
      // tmp = W1 ** 2 / diag(Hinv1)**2; thresh = sort(tmp.flatten())[int(numel * sparsity)]; mask1 = tmp <= thresh
      const tmp = new Float64Array(rows * count);
      for (let r = 0; r < rows; r++) {
        for (let i = 0; i < count; i++) {
          const w = W1[r * count + i];
          const d = diag1(i);
          tmp[r * count + i] = (w * w) / (d * d);
        }
      }
      const sorted = Array.from(tmp).sort((a, b) => a - b);
      const k = Math.floor(tmp.length * sparsity);
      const thresh = sorted[k];
      for (let t = 0; t < tmp.length; t++) mask1[t] = tmp[t] <= thresh ? 1 : 0;
    }

    for (let i = 0; i < count; i++) {
      const d = diag1(i);

      if (prunen !== 0 && i % prunem === 0) {
        // tmp = W1[:, i:i+prunem]**2 / diag(Hinv1)[i:i+prunem]**2; mask1.scatter_(1, i + topk(tmp, prunen, largest=False), True)
        const L = Math.min(prunem, count - i);
        if (L < prunen) {
          throw new Error(
            `referenceSparseGpt: N:M group at block column ${i1 + i} has only ${L} columns < prunen=${prunen} (torch.topk would raise)`,
          );
        }
        const idx: number[] = [];
        for (let j = 0; j < L; j++) idx.push(j);
        for (let r = 0; r < rows; r++) {
          const score = (j: number): number => {
            const w = W1[r * count + i + j];
            const dj = diag1(i + j);
            return (w * w) / (dj * dj);
          };
          for (const j of lowestK(score, idx, prunen)) mask1[r * count + i + j] = 1;
        }
      }

      // q = w.clone(); q[mask1[:, i]] = 0; Q1[:, i] = q; err1 = (w - q) / d
      // W1[:, i:] -= err1.unsqueeze(1).matmul(Hinv1[i, i:].unsqueeze(0)); Err1[:, i] = err1
      for (let r = 0; r < rows; r++) {
        const w = W1[r * count + i];
        const q = mask1[r * count + i] ? 0 : w;
        Q1[r * count + i] = q;
        const err1 = (w - q) / d;
        for (let j = i; j < count; j++) W1[r * count + j] -= err1 * hinv1(i, j);
        Err1[r * count + i] = err1;
      }
    }

    // W[:, i1:i2] = Q1; W[:, i2:] -= Err1.matmul(Hinv[i1:i2, i2:])
    for (let r = 0; r < rows; r++) {
      for (let i = 0; i < count; i++) {
        W[r * cols + i1 + i] = Q1[r * count + i];
        pruned[r * cols + i1 + i] = mask1[r * count + i];
      }
      for (let j = i2; j < cols; j++) {
        let t = 0;
        for (let i = 0; i < count; i++) t += Err1[r * count + i] * Hinv[(i1 + i) * cols + j];
        W[r * cols + j] -= t;
      }
    }
  }

  const mask = new Uint8Array(rows * cols);
  const out = new Float64Array(rows * cols);
  for (let t = 0; t < out.length; t++) {
    mask[t] = pruned[t] ? 0 : 1;
    out[t] = pruned[t] ? 0 : plusZero(W[t]);
    if (Number.isNaN(out[t])) throw new Error(`referenceSparseGpt: NaN in the result at flat index ${t}`);
  }
  return { W: out, mask, damp };
}

// ---------------------------------------------------------------------------------------------
// Layer output error
// ---------------------------------------------------------------------------------------------

/**
 * ||W X^T - W' X^T||_F^2 summed over the sequences (each X is [tokens, cols]): the layer output
 * error SparseGPT minimises. Computed as ||(W - W') X^T||_F^2.
 */
export function outputError(
  W: Float64Array,
  Wp: Float64Array,
  rows: number,
  cols: number,
  sequences: Float64Array[],
): number {
  checkDims(rows, cols);
  checkShape('outputError W', W, rows * cols);
  checkShape('outputError Wp', Wp, rows * cols);
  const D = new Float64Array(rows * cols);
  for (let i = 0; i < D.length; i++) D[i] = W[i] - Wp[i];
  let total = 0;
  for (const X of sequences) {
    if (X.length % cols !== 0) throw new Error(`outputError: sequence length ${X.length} is not a multiple of cols ${cols}`);
    const tokens = X.length / cols;
    for (let t = 0; t < tokens; t++) {
      for (let r = 0; r < rows; r++) {
        let y = 0;
        for (let c = 0; c < cols; c++) y += D[r * cols + c] * X[t * cols + c];
        total += y * y;
      }
    }
  }
  return total;
}
