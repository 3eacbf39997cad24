/**
 * Float64 reference for the ADMM weight update's target: for a fixed mask, the exact minimiser of
 * the dampened layer objective, row by row,
 *   min over w (zero off the row's support S) of (w - w0) (G + λI) (w - w0)ᵀ,
 * i.e. w_S = A_SS⁻¹ (A w0)_S with A = G + λI, solved by a dense Cholesky of A_SS per row. G is
 * prepared as SparseGPT prepares H (sparsegpt.py): an input whose diagonal is 0 never fires, so its
 * diagonal becomes 1 and its weight column 0; then λ = percdamp x mean(diag G). Written from the
 * definition for the tests; imports nothing from the code under test.
 */

function choleskySolve(a: Float64Array, n: number, b: Float64Array): Float64Array {
  const l = new Float64Array(n * n);
  for (let j = 0; j < n; j++) {
    let s = a[j * n + j]!;
    for (let k = 0; k < j; k++) s -= l[j * n + k]! ** 2;
    if (!(s > 0)) throw new Error(`choleskySolve: not positive definite at pivot ${j} (${s})`);
    const d = Math.sqrt(s);
    l[j * n + j] = d;
    for (let i = j + 1; i < n; i++) {
      let t = a[i * n + j]!;
      for (let k = 0; k < j; k++) t -= l[i * n + k]! * l[j * n + k]!;
      l[i * n + j] = t / d;
    }
  }
  const y = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let t = b[i]!;
    for (let k = 0; k < i; k++) t -= l[i * n + k]! * y[k]!;
    y[i] = t / l[i * n + i]!;
  }
  const x = new Float64Array(n);
  for (let i = n - 1; i >= 0; i--) {
    let t = y[i]!;
    for (let k = i + 1; k < n; k++) t -= l[k * n + i]! * x[k]!;
    x[i] = t / l[i * n + i]!;
  }
  return x;
}

/**
 * The optimal weights on the support `keep` (1 = kept) [rows, cols] for dense `w0` [rows, cols] and
 * G = `gram` [cols, cols]. Entries off the support are +0.
 */
export function referenceMaskedLeastSquares(
  w0: Float64Array,
  rows: number,
  cols: number,
  gram: Float64Array,
  keep: Uint8Array,
  percdamp: number,
): Float64Array {
  if (w0.length !== rows * cols || keep.length !== rows * cols || gram.length !== cols * cols) throw new Error('referenceMaskedLeastSquares: shape mismatch');
  const a = Float64Array.from(gram);
  const w = Float64Array.from(w0);
  let diagSum = 0;
  for (let j = 0; j < cols; j++) {
    if (a[j * cols + j] === 0) {
      a[j * cols + j] = 1;
      for (let r = 0; r < rows; r++) w[r * cols + j] = 0;
    }
    diagSum += a[j * cols + j]!;
  }
  const damp = (percdamp * diagSum) / cols;
  for (let j = 0; j < cols; j++) a[j * cols + j]! += damp;

  const out = new Float64Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    const support: number[] = [];
    for (let c = 0; c < cols; c++) if (keep[r * cols + c]) support.push(c);
    const n = support.length;
    if (n === 0) continue;
    const sub = new Float64Array(n * n);
    const rhs = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      for (let k = 0; k < n; k++) sub[i * n + k] = a[support[i]! * cols + support[k]!]!;
      let t = 0;
      for (let c = 0; c < cols; c++) t += a[support[i]! * cols + c]! * w[r * cols + c]!;
      rhs[i] = t;
    }
    const x = choleskySolve(sub, n, rhs);
    for (let i = 0; i < n; i++) out[r * cols + support[i]!] = x[i]!;
  }
  return out;
}
