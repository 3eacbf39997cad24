import { GraphBuilder } from '../graph/onnx-builder';
import type { OpRegistry } from '../graph/op-registry';
import { floatTensor } from '../graph/session';

/**
 * The matrix products the O(n³) parts of pruning are made of, each one ORT run. Matrices are
 * row-major Float32Arrays with their shapes; every graph has symbolic dimensions, so one session
 * serves all sizes.
 */
export interface Mat {
  data: Float32Array;
  rows: number;
  cols: number;
}

export function mat(data: Float32Array, rows: number, cols: number): Mat {
  return { data, rows, cols };
}

/** Rows [r0, r1) and columns [c0, c1) of a row-major matrix with `cols` columns, as a new array or at the start of `into`. */
export function slice(a: Float32Array, cols: number, r0: number, r1: number, c0: number, c1: number, into?: Float32Array): Float32Array {
  const out = into ? into.subarray(0, (r1 - r0) * (c1 - c0)) : new Float32Array((r1 - r0) * (c1 - c0));
  for (let r = r0; r < r1; r++) out.set(a.subarray(r * cols + c0, r * cols + c1), (r - r0) * (c1 - c0));
  return out;
}

/** The transpose of a row-major [rows, cols] matrix, by tiles so both sides are read and written in cache lines. */
export function transpose(a: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(rows * cols);
  const TILE = 32;
  for (let r0 = 0; r0 < rows; r0 += TILE) {
    const r1 = Math.min(r0 + TILE, rows);
    for (let c0 = 0; c0 < cols; c0 += TILE) {
      const c1 = Math.min(c0 + TILE, cols);
      for (let r = r0; r < r1; r++) for (let c = c0; c < c1; c++) out[c * rows + r] = a[r * cols + c]!;
    }
  }
  return out;
}

/** Writes `block` over rows [r0, r1) and columns [c0, c1) of `a`. */
export function place(a: Float32Array, cols: number, block: Float32Array, r0: number, r1: number, c0: number, c1: number): void {
  for (let r = r0; r < r1; r++) a.set(block.subarray((r - r0) * (c1 - c0), (r - r0 + 1) * (c1 - c0)), r * cols + c0);
}

function build(name: string, body: (g: GraphBuilder) => string, inputs: string[]): Uint8Array {
  const g = new GraphBuilder(name);
  for (const input of inputs) g.input(input, 'float', [`${input}_rows`, `${input}_cols`]);
  g.output(body(g), 'out', 'float', ['out_rows', 'out_cols']);
  return g.build();
}

async function run(ops: OpRegistry, key: string, graph: () => Uint8Array, inputs: Record<string, Mat>, rows: number, cols: number): Promise<Mat> {
  const feeds = Object.fromEntries(Object.entries(inputs).map(([k, m]) => [k, floatTensor(m.data, [m.rows, m.cols])]));
  const [out] = await ops.run(key, graph, feeds, ['out']);
  return mat(out!, rows, cols);
}

/** aᵀ · b */
export function matmulTN(ops: OpRegistry, a: Mat, b: Mat): Promise<Mat> {
  return run(ops, 'linalg.matmulTN', () => build('matmul_tn', (g) => g.op('Gemm', ['a', 'b'], { transA: 1 }), ['a', 'b']), { a, b }, a.cols, b.cols);
}

/** c + aᵀ · b */
export function addMatmulTN(ops: OpRegistry, c: Mat, a: Mat, b: Mat): Promise<Mat> {
  return run(
    ops,
    'linalg.addMatmulTN',
    () => build('add_matmul_tn', (g) => g.op('Add', ['c', g.op('Gemm', ['a', 'b'], { transA: 1 })]), ['c', 'a', 'b']),
    { c, a, b },
    c.rows,
    c.cols,
  );
}

/** a · bᵀ */
export function matmulNT(ops: OpRegistry, a: Mat, b: Mat): Promise<Mat> {
  return run(ops, 'linalg.matmulNT', () => build('matmul_nt', (g) => g.op('Gemm', ['a', 'b'], { transB: 1 }), ['a', 'b']), { a, b }, a.rows, b.rows);
}

/** c - a · bᵀ */
export function subMatmulNT(ops: OpRegistry, c: Mat, a: Mat, b: Mat): Promise<Mat> {
  return run(
    ops,
    'linalg.subMatmulNT',
    () => build('sub_matmul_nt', (g) => g.op('Sub', ['c', g.op('Gemm', ['a', 'b'], { transB: 1 })]), ['c', 'a', 'b']),
    { c, a, b },
    c.rows,
    c.cols,
  );
}

/**
 * c ← c + aᵀ · b, written into c's own memory by one Gemm (C accumulated, no intermediate), so `c` may
 * be a view of a larger array: nothing is copied in or out.
 */
export async function addMatmulTNInPlace(ops: OpRegistry, c: Mat, a: Mat, b: Mat): Promise<void> {
  const feeds = { a: floatTensor(a.data, [a.rows, a.cols]), b: floatTensor(b.data, [b.rows, b.cols]), c: floatTensor(c.data, [c.rows, c.cols]) };
  await ops.runInto('linalg.addMatmulTNInPlace', () => build('add_matmul_tn_in_place', (g) => g.op('Gemm', ['a', 'b', 'c'], { transA: 1 }), ['a', 'b', 'c']), feeds, { out: floatTensor(c.data, [c.rows, c.cols]) });
}

/** -(a · b · c) */
export function negMatmul3(ops: OpRegistry, a: Mat, b: Mat, c: Mat): Promise<Mat> {
  return run(
    ops,
    'linalg.negMatmul3',
    () => build('neg_matmul3', (g) => g.op('Neg', [g.op('MatMul', [g.op('MatMul', ['a', 'b']), 'c'])]), ['a', 'b', 'c']),
    { a, b, c },
    a.rows,
    c.cols,
  );
}
