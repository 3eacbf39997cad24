import { CalibrationActivations } from '../calibrate/activations';
import type { CalibrationSet } from '../calibrate/calibration-data';
import type { TapRequest } from '../graph/decoder-block';
import { squaredDistance } from '../graph/reductions';
import { BlockRunner } from '../model/block-runner';
import { throwIfCancelled, type RunControl } from '../progress';
import type { ModelSession } from '../model/model-session';
import { ERROR_WINDOWS } from '../prune/sequential';
import { headCosineSums, residualCosineSums } from './score-graphs';

/** Windows the perplexity-based block metric evaluates: one model run per removed block. */
export const PPL_WINDOWS = 8;

export interface LayerScores {
  layer: number;
  heads: {
    /** Squared change of the block output when the head alone is removed (higher: more important). */
    output: number[];
    /** 1 - the head's highest mean cosine with another head's contribution (low: redundant). */
    similarity: number[];
  };
  /** Output change when a key/value head goes with every query head that reads it: what removal acts on. */
  groups: { output: number[]; similarity: number[] };
  channels: {
    /** FLAP: variance of the channel's input times the squared norm of its down_proj column. */
    flap: number[];
    /** Structured Wanda: Σ |W|·‖X‖ over the channel's gate and up rows and its down column. */
    wandaSp: number[];
  };
  block: {
    /** ShortGPT's Block Influence: 1 - mean cos(block input, block output). */
    influence: number;
    attentionInfluence: number;
    mlpInfluence: number;
    /** Shortened LLaMA: perplexity on the first windows with this block skipped. */
    pplWithout: number;
  };
}

export interface StructuredScores {
  calibration: Omit<CalibrationSet, 'ids'>;
  /** Perplexity of the dense model on the windows pplWithout uses. */
  densePpl: number;
  pplWindows: number;
  layers: LayerScores[];
}

const TAPS: TapRequest[] = [
  { point: 'o_in', reduce: 'raw' },
  { point: 'residual', reduce: 'raw' },
  { point: 'down_in', reduce: 'sum' },
  { point: 'down_in', reduce: 'sumsq' },
  { point: 'mlp_in', reduce: 'sumsq' },
];

/**
 * Every structured importance score, from one dense sequential pass over the calibration windows
 * (each block fed the dense previous block's output). Reductions run in ORT; JS sums them over batches.
 */
export async function computeScores(session: ModelSession, calibration: CalibrationSet, control: RunControl): Promise<StructuredScores> {
  const { checkpoint, runner, ops } = session;
  const cfg = checkpoint.config;
  const { numHeads: heads, numKvHeads: kvHeads, headDim: hd, hiddenSize: d, intermediateSize: inter } = cfg;
  const group = heads / kvHeads;
  const tapRunner = await BlockRunner.create(cfg, session.runtime, TAPS);
  try {
    const activations = await CalibrationActivations.embed(runner, calibration);
    const { seqlen, nsamples } = calibration;
    const tokens = nsamples * seqlen;
    const errorWindows = Math.min(ERROR_WINDOWS, nsamples);
    const pplWindows = Math.min(PPL_WINDOWS, nsamples);
    const pplLength = pplWindows * seqlen * d;
    // streams[l]: the first windows as they run through the model without block l.
    const streams: Float32Array[] = [];
    const layers: LayerScores[] = [];
    for (let layer = 0; layer < cfg.numLayers; layer++) {
      throwIfCancelled(control.signal);
      const weights = await checkpoint.readBlock(layer);
      const feeds = runner.block.feeds(weights, layer);
      for (const stream of streams) {
        const [out] = await runner.block.run(feeds, stream, pplWindows, seqlen);
        stream.set(out!);
      }
      streams.push(activations.hidden.slice(0, pplLength));

      const oProj = weights.get('self_attn.o_proj.weight')!;
      const next = new Float32Array(activations.hidden.length);
      const headCos = new Float64Array(heads * heads);
      const residualCos = new Float64Array(3);
      const downSum = new Float64Array(inter);
      const downSq = new Float64Array(inter);
      const mlpSq = new Float64Array(d);
      await activations.forEach(tapRunner, layer, weights, control.signal, async ([out, oIn, residual, sum, sq, mlp], offset, length) => {
        next.set(out!, offset);
        const n = length / d;
        addInto(headCos, await headCosineSums(ops, oIn!, oProj, n, heads, hd, d));
        addInto(residualCos, await residualCosineSums(ops, activations.hidden.subarray(offset, offset + length), residual!, out!, n, d));
        addInto(downSum, sum!);
        addInto(downSq, sq!);
        addInto(mlpSq, mlp!);
      });

      // Output change when query heads are removed (their o_proj columns zeroed), on the first windows.
      const measured = errorWindows * seqlen * d;
      const outputChange = async (queryHeads: number[]): Promise<number> => {
        const trial = Float32Array.from(oProj);
        for (let r = 0; r < d; r++) for (const h of queryHeads) trial.fill(0, r * heads * hd + h * hd, r * heads * hd + (h + 1) * hd);
        let sum = 0;
        await activations.forEach(runner.block, layer, new Map(weights).set('self_attn.o_proj.weight', trial), control.signal, async ([out], offset, length) => {
          sum += await squaredDistance(ops, out!, next.subarray(offset, offset + length));
        }, errorWindows);
        return sum / measured;
      };
      const headOutput: number[] = [];
      for (let h = 0; h < heads; h++) headOutput.push(await outputChange([h]));
      const groupOutput: number[] = [];
      for (let k = 0; k < kvHeads; k++) groupOutput.push(await outputChange(Array.from({ length: group }, (_, i) => k * group + i)));

      const similarity = Array.from({ length: heads }, (_, h) => {
        let most = -1;
        for (let k = 0; k < heads; k++) if (k !== h) most = Math.max(most, headCos[h * heads + k]! / tokens);
        return 1 - most;
      });
      const mean = (values: number[]) => values.reduce((a, b) => a + b, 0) / values.length;
      const groupSimilarity = Array.from({ length: kvHeads }, (_, k) => mean(similarity.slice(k * group, (k + 1) * group)));

      layers.push({
        layer,
        heads: { output: headOutput, similarity },
        groups: { output: groupOutput, similarity: groupSimilarity },
        channels: channelScores(weights, { downSum, downSq, mlpSq }, tokens, nsamples, inter, d),
        block: {
          influence: 1 - residualCos[0]! / tokens,
          attentionInfluence: 1 - residualCos[1]! / tokens,
          mlpInfluence: 1 - residualCos[2]! / tokens,
          pplWithout: 0,
        },
      });
      activations.hidden.set(next);
      control.onProgress?.({ type: 'stage', stage: 'scores', done: layer + 1, total: cfg.numLayers, detail: `block ${layer + 1}/${cfg.numLayers}` });
    }
    const windowIds = calibration.ids.subarray(0, pplWindows * seqlen);
    const ppl = async (hidden: Float32Array): Promise<number> => {
      const nll = await runner.nll(hidden, windowIds, pplWindows, seqlen);
      return Math.exp(nll.reduce((a, b) => a + b, 0) / nll.length);
    };
    for (const [l, stream] of streams.entries()) layers[l]!.block.pplWithout = await ppl(stream);
    const { ids: _ids, ...calibrationInfo } = calibration;
    return { calibration: calibrationInfo, densePpl: await ppl(activations.hidden.subarray(0, pplLength)), pplWindows, layers };
  } finally {
    await tapRunner.release();
  }
}

/**
 * FLAP's fluctuation (the input's variance over every calibration token times the squared norm of the
 * down_proj column it feeds) and structured Wanda (|W|·‖X‖ summed over the channel's weights, with
 * Wanda's per-sequence mean statistic). O(D x I) sums over one block's weights.
 */
function channelScores(
  weights: Map<string, Float32Array>,
  sums: { downSum: Float64Array; downSq: Float64Array; mlpSq: Float64Array },
  tokens: number,
  nsamples: number,
  inter: number,
  d: number,
): LayerScores['channels'] {
  const down = weights.get('mlp.down_proj.weight')!;
  // Families without a gate (GPT-2, OPT, GPT-NeoX) score a channel by its up row alone.
  const gate = weights.get('mlp.gate_proj.weight');
  const up = weights.get('mlp.up_proj.weight')!;
  const mlpNorm = Float64Array.from(sums.mlpSq, (v) => Math.sqrt(v / nsamples));
  const flap: number[] = [];
  const wandaSp: number[] = [];
  for (let j = 0; j < inter; j++) {
    const mean = sums.downSum[j]! / tokens;
    const variance = Math.max(0, sums.downSq[j]! / tokens - mean * mean);
    let column = 0;
    let columnAbs = 0;
    for (let i = 0; i < d; i++) {
      const w = down[i * inter + j]!;
      column += w * w;
      columnAbs += Math.abs(w);
    }
    let rows = 0;
    for (let k = 0; k < d; k++) rows += ((gate ? Math.abs(gate[j * d + k]!) : 0) + Math.abs(up[j * d + k]!)) * mlpNorm[k]!;
    flap.push(variance * column);
    wandaSp.push(columnAbs * Math.sqrt(sums.downSq[j]! / nsamples) + rows);
  }
  return { flap, wandaSp };
}

function addInto(sum: Float64Array, values: Float32Array): void {
  for (let i = 0; i < values.length; i++) sum[i]! += values[i]!;
}
