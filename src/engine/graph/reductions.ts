import { GraphBuilder } from './onnx-builder';
import type { OpRegistry } from './op-registry';
import { floatTensor } from './session';

/** ||a - b||², reduced in ORT. */
export async function squaredDistance(ops: OpRegistry, a: Float32Array, b: Float32Array): Promise<number> {
  const [out] = await ops.run('reductions.squared-distance', buildSquaredDistance, { a: floatTensor(a, [a.length]), b: floatTensor(b, [b.length]) }, ['out']);
  return out![0]!;
}

function buildSquaredDistance(): Uint8Array {
  const g = new GraphBuilder('prunelens_squared_distance');
  const diff = g.op('Sub', [g.input('a', 'float', ['n']), g.input('b', 'float', ['n'])]);
  g.output(g.op('ReduceSumSquare', [diff], { keepdims: 1 }), 'out', 'float', [1]);
  return g.build();
}
