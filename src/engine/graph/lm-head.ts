import type { ModelConfig } from '../model/config';
import { GraphBuilder } from './onnx-builder';
import { familyNorm, softcap } from './ops';

/**
 * Final norm and LM head. Inputs: `hidden` [B, T, D], `norm.weight` [D] (and `norm.bias` for LayerNorm;
 * neither when the family has no final norm), `project_out.weight` [P, D] where OPT projects out,
 * `lm_head.weight` [V, P or D] (the embedding table when tied), and for 'nll' the window's token `ids` [B, T].
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
  const { finalNorm, norm, projection } = cfg.arch;
  if (finalNorm) g.input('norm.weight', 'float', [d]);
  if (finalNorm && norm === 'layer') g.input('norm.bias', 'float', [d]);
  if (projection !== undefined) g.input('project_out.weight', 'float', [projection, d]);
  const headWeight = g.input('lm_head.weight', 'float', [cfg.vocabSize, projection ?? d]);

  // The last position has no next token to predict, so it is dropped before the vocabulary-wide product.
  const positions = output === 'nll' ? g.op('Slice', [hidden, g.constInt64([0]), g.constInt64([-1]), g.constInt64([1])]) : hidden;
  const x = g.op('Reshape', [positions, g.constInt64([-1, d])]);
  const normed = finalNorm ? familyNorm(g, x, 'norm', cfg.rmsNormEps, norm) : x;
  const projected = projection !== undefined ? g.op('Gemm', [normed, 'project_out.weight'], { transB: 1 }) : normed;
  const raw = g.op('Gemm', [projected, headWeight], { transB: 1 });
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

/** x [N, P] · wᵀ with w [D, P] (OPT's project_in, no bias): `y` [N, D]. */
export function buildProjection(from: number, to: number): Uint8Array {
  const g = new GraphBuilder('prunelens_projection');
  const x = g.input('x', 'float', ['tokens', from]);
  const w = g.input('w', 'float', [to, from]);
  g.output(g.op('Gemm', [x, w], { transB: 1 }), 'y', 'float', ['tokens', to]);
  return g.build();
}
