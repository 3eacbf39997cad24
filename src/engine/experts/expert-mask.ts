import { CalibrationActivations } from '../calibrate/activations';
import type { CalibrationSet } from '../calibrate/calibration-data';
import type { TapRequest } from '../graph/decoder-block';
import type { Checkpoint } from '../io/checkpoint';
import { BlockRunner } from '../model/block-runner';
import { DecoderRunner } from '../model/decoder-runner';
import { EXPERT_LINEARS, expertWeightName, routerName, type MoeSpec } from '../model/families/moe';
import type { ModelSession } from '../model/model-session';
import { throwIfCancelled, type RunControl } from '../progress';
import { inverseSpd } from '../linalg/cholesky';
import { mat } from '../linalg/matrix-ops';
import { computeExpertStats } from './expert-stats';

const ROUTER_IN: TapRequest[] = [
  { point: 'mlp_in', reduce: 'sum' },
  { point: 'mlp_in', reduce: 'gram' },
];

/** Ridge on the router inputs' second moment, relative to its mean diagonal, so a rank-deficient one still inverts. */
const DAMPING = 1e-3;

/**
 * Per listed layer, the direction v = M⁻¹μ of the router inputs (the post-attention RMSNorm output)
 * over the calibration tokens, μ their mean and M = E[x xᵀ] their second moment, each block fed the
 * dense previous block's output. Since M = Σ + μμᵀ, v is parallel to Σ⁻¹μ, the direction along which
 * v·x has the largest mean relative to its spread (Fisher's): the fewest tokens have v·x ≤ 0. The
 * graph reduces the tokens (sum, XᵀX) and inverts M; JS adds the batches in float64.
 */
export async function routerDirections(session: ModelSession, calibration: CalibrationSet, layers: readonly number[], control: RunControl): Promise<Map<number, { v: Float64Array; vMu: number }>> {
  const { checkpoint, runner } = session;
  const cfg = checkpoint.config;
  const d = cfg.hiddenSize;
  const last = Math.max(...layers);
  const tapRunner = await BlockRunner.create(cfg, session.runtime, ROUTER_IN);
  try {
    const activations = await CalibrationActivations.embed(runner, calibration);
    const tokens = calibration.nsamples * calibration.seqlen;
    const directions = new Map<number, { v: Float64Array; vMu: number }>();
    for (let layer = 0; layer <= last; layer++) {
      throwIfCancelled(control.signal);
      control.onProgress?.({ type: 'stage', stage: 'router inputs', done: layer, total: last + 1 });
      const weights = await checkpoint.readBlock(layer);
      if (!layers.includes(layer)) {
        await activations.advance(runner.block, layer, weights, control.signal);
        continue;
      }
      const sum = new Float64Array(d);
      const gram = new Float64Array(d * d);
      await activations.forEach(tapRunner, layer, weights, control.signal, ([out, s, g], offset) => {
        activations.hidden.set(out!, offset);
        for (let i = 0; i < d; i++) sum[i]! += s![i]!;
        for (let i = 0; i < d * d; i++) gram[i]! += g![i]!;
      });
      const mu = sum.map((v) => v / tokens);
      let diagonal = 0;
      for (let i = 0; i < d; i++) diagonal += gram[i * d + i]! / tokens / d;
      const m = Float32Array.from(gram, (v, i) => v / tokens + (i % (d + 1) === 0 ? DAMPING * diagonal : 0));
      const inverse = (await inverseSpd(session.ops, mat(m, d, d))).data;
      const v = new Float64Array(d);
      for (let i = 0; i < d; i++) for (let j = 0; j < d; j++) v[i]! += inverse[i * d + j]! * mu[j]!;
      directions.set(layer, { v, vMu: v.reduce((s, x, i) => s + x * mu[i]!, 0) });
    }
    control.onProgress?.({ type: 'stage', stage: 'router inputs', done: last + 1, total: last + 1 });
    return directions;
  } finally {
    await tapRunner.release();
  }
}

/**
 * The logit a masked router row gives the mean router input: far below a trained router's (a softmax
 * weight e⁻²⁰ ≈ 2·10⁻⁹ of the mean's). A larger scale does not help: the few tokens with v·x < 0 then
 * pick the masked expert with a weight near 1 (on the fixture's first layer, -10, -20 and -10⁴ leave 7.2%,
 * 7.9% and 8.7% of tokens routed to it; scripts/masked-router-rows.ts).
 */
const MASK_LOGIT = -20;
/** Largest entry a masked row may hold: finite in float16 (65504) with room, so any checkpoint dtype can store it. */
const MAX_ROW_ENTRY = 1e4;

/**
 * A router row that (nearly) never wins top-k. The router is a linear with no bias, so no row gives
 * every input a low logit; but after RMSNorm the router inputs share a consistent component, and the
 * row -c·v (v from routerDirections, c = 20 / v·μ) gives logit -20·(v·x)/(v·μ): -20 for the mean input
 * and below the real experts' for nearly every token. The routing that remains is measured on the
 * written model (maskedRouting), not assumed. Measured on the fixture's calibration text, masking one
 * expert per layer (scripts/masked-router-rows.ts): this row leaves 8.6%, 0.05% and 0.10% of tokens
 * routed to it (layers 0, 1, 2); the mean direction -μ leaves 22%, 1.9%, 2.7%; a zero row (logit 0)
 * 38%, 14%, 33%. Layer 0 reads nearly raw embeddings, which share the least.
 */
export function maskedRouterRow(direction: { v: Float64Array; vMu: number }): Float32Array {
  const { v, vMu } = direction;
  const maxAbs = v.reduce((m, x) => Math.max(m, Math.abs(x)), 0);
  if (!(vMu > 0) || maxAbs === 0) return new Float32Array(v.length);
  const scale = Math.min(-MASK_LOGIT / vMu, MAX_ROW_ENTRY / maxAbs);
  return Float32Array.from(v, (x) => -scale * x);
}

/**
 * A sparse layer's tensors (already renumbered) with `masked` (output indices) zeroed: its expert
 * weights become zero, so a token that still picks it gets nothing from it, and its router row is
 * `row`.
 */
export function maskExperts(moe: MoeSpec, hidden: number, weights: Map<string, Float32Array>, masked: readonly number[], row: Float32Array): Map<string, Float32Array> {
  if (masked.length === 0) return weights;
  const out = new Map(weights);
  const router = Float32Array.from(weights.get(routerName(moe))!);
  for (const j of masked) {
    router.set(row, j * hidden);
    for (const l of EXPERT_LINEARS) {
      const name = expertWeightName(moe, j, l);
      out.set(name, new Float32Array(weights.get(name)!.length));
    }
  }
  return out.set(routerName(moe), router);
}

/** Where source expert `j` sits once `removed` are cut out of a layer of `experts`. */
export function renumbered(experts: number, removed: readonly number[], j: number): number {
  return Array.from({ length: experts }, (_, i) => i).filter((i) => !removed.includes(i)).indexOf(j);
}

/**
 * Per layer with masked experts: the routings to them per calibration token, measured by running the
 * written model on the calibration windows (the routing the family's loader will do, since the mask is
 * in the weights). 0 means no calibration token picked a masked expert.
 */
export async function measureMaskedRouting(
  written: Checkpoint,
  session: ModelSession,
  calibration: CalibrationSet,
  maskedOut: Map<number, number[]>,
  control: RunControl,
): Promise<Record<string, number>> {
  const runner = await DecoderRunner.create(written, session.runtime);
  try {
    const stats = await computeExpertStats({ ...session, checkpoint: written, runner }, calibration, {
      ...control,
      onProgress: (e) => control.onProgress?.(e.type === 'stage' ? { ...e, stage: 'masked routing' } : e),
    });
    return Object.fromEntries(
      [...maskedOut].map(([layer, experts]) => {
        const entry = stats.layers.find((l) => l.layer === layer)!;
        return [String(layer), experts.reduce((s, j) => s + entry.experts[j]!.frequency, 0)];
      }),
    );
  } finally {
    await runner.release();
  }
}
