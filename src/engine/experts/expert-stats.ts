import { CalibrationActivations } from '../calibrate/activations';
import { drawCalibration, type CalibrationRequest, type CalibrationSet } from '../calibrate/calibration-data';
import { PruneLensError } from '../errors';
import type { TapRequest } from '../graph/decoder-block';
import type { RuntimeSettings } from '../graph/session';
import { BlockRunner } from '../model/block-runner';
import type { ModelConfig } from '../model/config';
import type { MoeSpec } from '../model/families/moe';
import { withModelSession, type ModelSession } from '../model/model-session';
import { peakRssMb } from '../memory';
import { throwIfCancelled, type RunControl } from '../progress';

/** One expert of one layer, over the calibration tokens. */
export interface ExpertStat {
  /** Tokens routed to the expert (it was in their top-k). */
  routed: number;
  /** routed / tokens: the share of tokens that use the expert (the shares of a layer sum to k). */
  frequency: number;
  /** Mean routing weight over the routed tokens (after the family's renormalisation); 0 if never routed. */
  meanWeight: number;
  /**
   * REAP (Lasby et al. 2025; CerebrasResearch/reap's pruning_metrics.py): mean over the routed tokens of
   * weight x ‖unweighted expert output‖₂; 0 if never routed. The weight is the one the forward applies
   * (renormalised over the top-k where the family does): their code renormalises only where the config
   * says norm_topk_prob, which Mixtral's lacks though its forward renormalises.
   */
  reap: number;
}

export interface LayerExperts {
  layer: number;
  experts: ExpertStat[];
}

export interface ExpertStats {
  calibration: Omit<CalibrationSet, 'ids'>;
  /** Calibration tokens each layer saw (nsamples x seqlen). */
  tokens: number;
  experts: number;
  topK: number;
  /** Sparse layers only (a Qwen model's dense layers have no experts). */
  layers: LayerExperts[];
}

export const EXPERT_METRICS = ['reap', 'frequency', 'random'] as const;
export type ExpertMetric = (typeof EXPERT_METRICS)[number];

const STATS_TAP: TapRequest = { point: 'expert_stats', reduce: 'sum' };

/** The model's MoE spec, or a clear refusal for a dense model. */
export function moeOf(cfg: ModelConfig, where: string): MoeSpec {
  if (!cfg.arch.moe) throw new PruneLensError('usage', `model_type "${cfg.modelType}" has no experts; expert statistics and expert pruning need a mixture-of-experts model (mixtral, qwen2_moe, qwen3_moe, olmoe)`, where);
  return cfg.arch.moe;
}

/**
 * Routing statistics of every expert from one dense pass over the calibration windows (each block
 * fed the dense previous block's output): the counts, the weight sums and REAP's sums of
 * weight x ‖f_j(x)‖₂ are reduced inside the block graph (see graph/moe-block.ts); JS adds the
 * batches' [3, E] sums in float64.
 */
export async function computeExpertStats(session: ModelSession, calibration: CalibrationSet, control: RunControl): Promise<ExpertStats> {
  const { checkpoint, runner } = session;
  const cfg = checkpoint.config;
  const moe = moeOf(cfg, checkpoint.dir);
  const E = moe.experts;
  const tapRunner = await BlockRunner.create(cfg, session.runtime, [STATS_TAP]);
  try {
    const activations = await CalibrationActivations.embed(runner, calibration);
    const tokens = calibration.nsamples * calibration.seqlen;
    const layers: LayerExperts[] = [];
    for (let layer = 0; layer < cfg.numLayers; layer++) {
      throwIfCancelled(control.signal);
      control.onProgress?.({ type: 'stage', stage: 'expert statistics', done: layer, total: cfg.numLayers });
      const weights = await checkpoint.readBlock(layer);
      if (!moe.sparse[layer]) {
        await activations.advance(runner.block, layer, weights, control.signal);
        continue;
      }
      const sums = new Float64Array(3 * E);
      await activations.forEach(tapRunner, layer, weights, control.signal, ([out, stats], offset) => {
        activations.hidden.set(out!, offset);
        for (let i = 0; i < sums.length; i++) sums[i]! += stats![i]!;
      });
      layers.push({
        layer,
        experts: Array.from({ length: E }, (_, j) => {
          const routed = sums[j]!;
          return { routed, frequency: routed / tokens, meanWeight: routed > 0 ? sums[E + j]! / routed : 0, reap: routed > 0 ? sums[2 * E + j]! / routed : 0 };
        }),
      });
    }
    control.onProgress?.({ type: 'stage', stage: 'expert statistics', done: cfg.numLayers, total: cfg.numLayers });
    const { ids: _ids, ...described } = calibration;
    return { calibration: described, tokens, experts: E, topK: moe.topK, layers };
  } finally {
    await tapRunner.release();
  }
}

/** Expert statistics on their own: `prunelens experts` and the Model view, with the run's peak memory, predicted and measured. */
export async function expertStatsOf(options: { model: string; calibration: CalibrationRequest; runtime: RuntimeSettings } & RunControl): Promise<ExpertStats & { peakRssMb: number; predictedPeakMb: number }> {
  const { nsamples, seqlen } = options.calibration;
  const memory = { job: () => ({ evalWindows: 0, evalSeqlen: 0, experts: { nsamples, seqlen } }), onProgress: options.onProgress };
  return withModelSession(options.model, options.runtime, async (session) => {
    moeOf(session.checkpoint.config, session.checkpoint.dir);
    const stats = await computeExpertStats(session, await drawCalibration(session.tokenizer, options.calibration, options, session.checkpoint.config), options);
    return { ...stats, peakRssMb: peakRssMb(), predictedPeakMb: session.memory!.peakBytes / 2 ** 20 };
  }, memory);
}
