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

/** Rows [r0, r1) and columns [c0, c1) of a row-major matrix with `cols` columns, as a new array. */
export function slice(a: Float32Array, cols: number, r0: number, r1: number, c0: number, c1: number): Float32Array {
  const out = new Float32Array((r1 - r0) * (c1 - c0));
  for (let r = r0; r < r1; r++) out.set(a.subarray(r * cols + c0, r * cols + c1), (r - r0) * (c1 - c0));
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

/** c - a · b */
export function subMatmul(ops: OpRegistry, c: Mat, a: Mat, b: Mat): Promise<Mat> {
  return run(
    ops,
    'linalg.subMatmul',
    () => build('sub_matmul', (g) => g.op('Sub', ['c', g.op('MatMul', ['a', 'b'])]), ['c', 'a', 'b']),
    { c, a, b },
    c.rows,
    c.cols,
  );
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
