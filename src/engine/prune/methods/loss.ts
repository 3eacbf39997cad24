import { GraphBuilder } from '../../graph/onnx-builder';
import type { OpRegistry } from '../../graph/op-registry';
import { floatTensor } from '../../graph/session';
import type { Statistic } from './method';

/**
 * The layer loss of `pruned` against the `dense` weights it was cut from (see Pruned in method.ts),
 * from the statistic the method had: ½ Σ (ΔW G) ⊙ ΔW with the Gram matrix, Σ ΔW² · norms_j with the
 * input norms, Σ ΔW² with nothing. One [rows, cols] x [cols, cols] product at most, in ORT.
 */
export async function layerLoss(ops: OpRegistry, dense: Float32Array, pruned: Float32Array, rows: number, cols: number, statistic: Statistic, stat?: Float32Array): Promise<number> {
  const feeds = {
    dense: floatTensor(dense, [rows, cols]),
    pruned: floatTensor(pruned, [rows, cols]),
    ...(statistic === 'gram' ? { gram: floatTensor(stat!, [cols, cols]) } : statistic === 'norms' ? { norms: floatTensor(stat!, [cols]) } : {}),
  };
  const [loss] = await ops.run(`layer-loss.${rows}x${cols}.${statistic}`, () => buildLayerLoss(rows, cols, statistic), feeds, ['loss']);
  return loss![0]!;
}

function buildLayerLoss(rows: number, cols: number, statistic: Statistic): Uint8Array {
  const g = new GraphBuilder('prunelens_layer_loss');
  const delta = g.op('Sub', [g.input('dense', 'float', [rows, cols]), g.input('pruned', 'float', [rows, cols])]);
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
