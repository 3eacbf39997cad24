import { GraphBuilder } from '../../graph/onnx-builder';
import { rowChunks, type OpRegistry } from '../../graph/op-registry';
import { floatTensor, type Feeds } from '../../graph/session';
import type { Statistic } from './method';

/**
 * The layer loss of `pruned` against the `dense` weights it was cut from (see Pruned in method.ts),
 * from the statistic the method had: ½ Σ (ΔW G) ⊙ ΔW with the Gram matrix, Σ ΔW² · norms_j with the
 * input norms, Σ ΔW² with nothing. One [rows, cols] x [cols, cols] product at most, in ORT, over
 * chunks of rows (rowChunks), each chunk's sum added in float64.
 */
export async function layerLoss(ops: OpRegistry, dense: Float32Array, pruned: Float32Array, rows: number, cols: number, statistic: Statistic, stat?: Float32Array): Promise<number> {
  const statFeed: Feeds = statistic === 'gram' ? { gram: floatTensor(stat!, [cols, cols]) } : statistic === 'norms' ? { norms: floatTensor(stat!, [cols]) } : {};
  const out = new Float32Array(1);
  let loss = 0;
  for (const [r0, r1] of rowChunks(rows, cols)) {
    const feeds = { ...statFeed, dense: floatTensor(dense.subarray(r0 * cols, r1 * cols), [r1 - r0, cols]), pruned: floatTensor(pruned.subarray(r0 * cols, r1 * cols), [r1 - r0, cols]) };
    await ops.runInto(`layer-loss.rows-x${cols}.${statistic}`, () => buildLayerLoss(cols, statistic), feeds, { loss: floatTensor(out, [1]) }, { arena: true });
    loss += out[0]!;
  }
  return loss;
}

function buildLayerLoss(cols: number, statistic: Statistic): Uint8Array {
  const g = new GraphBuilder('prunelens_layer_loss');
  const delta = g.op('Sub', [g.input('dense', 'float', ['rows', cols]), g.input('pruned', 'float', ['rows', cols])]);
  const sum = (value: string): string => g.op('ReduceSum', [value], { keepdims: 0 });
  let loss: string;
  switch (statistic) {
    case 'gram':
      loss = g.op('Mul', [g.constFloat(0.5), sum(g.op('Mul', [g.op('MatMul', [delta, g.input('gram', 'float', [cols, cols])]), delta]))]);
      break;
    case 'norms':
      loss = sum(g.op('Mul', [g.op('Mul', [delta, delta]), g.input('norms', 'float', [cols])]));
      break;
    case 'none':
      loss = sum(g.op('Mul', [delta, delta]));
      break;
  }
  g.output(g.op('Reshape', [loss, g.constInt64([1])]), 'loss', 'float', [1]);
  return g.build();
}
