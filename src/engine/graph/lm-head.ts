import type { ModelConfig } from '../model/config';
import { GraphBuilder } from './onnx-builder';
import { rmsNorm, softcap } from './ops';

/**
 * Final norm and LM head. Inputs: `hidden` [B, T, D], `norm.weight` [D], `lm_head.weight` [V, D]
 * (the embedding table when tied), and for 'nll' the window's token `ids` [B, T].
 *
 * 'nll' returns only `nll` [B, T-1], the cross-entropy of each next token: logits live and die inside
 * ORT, so a 150k-word vocabulary never crosses into JS. 'logits' returns `logits` [B*T, V] for tests
 * and generation.
 */
export type LmHeadOutput = 'nll' | 'logits';

export function buildLmHead(cfg: ModelConfig, output: LmHeadOutput): Uint8Array {
  const g = new GraphBuilder(`prunelens_lm_head_${output}`);
  const d = cfg.hiddenSize;
  const hidden = g.input('hidden', 'float', ['batch', 'seq', d]);
  const normWeight = g.input('norm.weight', 'float', [d]);
  const headWeight = g.input('lm_head.weight', 'float', [cfg.vocabSize, d]);

  // The last position has no next token to predict, so it is dropped before the vocabulary-wide product.
  const positions = output === 'nll' ? g.op('Slice', [hidden, g.constInt64([0]), g.constInt64([-1]), g.constInt64([1])]) : hidden;
  const x = g.op('Reshape', [positions, g.constInt64([-1, d])]);
  const raw = g.op('Gemm', [rmsNorm(g, x, normWeight, cfg.rmsNormEps, cfg.arch.norm), headWeight], { transB: 1 });
  const logits = cfg.arch.finalSoftcap !== undefined ? softcap(g, raw, cfg.arch.finalSoftcap) : raw;

  if (output === 'logits') {
    g.output(logits, 'logits', 'float', ['tokens', cfg.vocabSize]);
    return g.build();
  }
  const ids = g.input('ids', 'int64', ['batch', 'seq']);
  const targets = g.op('Slice', [ids, g.constInt64([1]), g.constInt64([Number.MAX_SAFE_INTEGER]), g.constInt64([1])]);
  const logProbs = g.op('LogSoftmax', [logits], { axis: 1 });
  const picked = g.op('GatherElements', [logProbs, g.op('Reshape', [targets, g.constInt64([-1, 1])])], { axis: 1 });
  const nll = g.op('Reshape', [g.op('Neg', [picked]), g.op('Shape', [targets])]);
  g.output(nll, 'nll', 'float', ['batch', 'seq_minus_1']);
  return g.build();
}
