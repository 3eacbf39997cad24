import { statSync } from 'node:fs';
import { drawCalibration, type CalibrationRequest, type CalibrationSet } from '../calibrate/calibration-data';
import { PythonRandom } from '../calibrate/python-random';
import { PruneLensError } from '../errors';
import { OutputFolder } from '../export/output-folder';
import { REPORT_FILE } from '../export/report';
import type { RuntimeSettings } from '../graph/session';
import type { Checkpoint } from '../io/checkpoint';
import { peakRssMb } from '../memory';
import { evaluationWindowsAtMost, type MemoryJob } from '../memory-plan';
import { blockTensorNames, checkTokenIds, expectedTensorShapes, layerPrefix, parameterCount, parseModelConfig, type ModelConfig } from '../model/config';
import { EXPERT_LINEARS, expertCountKey, expertWeightName, routerName, type MoeSpec } from '../model/families/moe';
import { withModelSession } from '../model/model-session';
import { checkCalibrationMemory, checkWritable, evaluateDense, finishJob, type EvaluationRequest, type EvaluationText } from '../prune/prune-job';
import { throwIfCancelled, type RunControl } from '../progress';
import { encodeText } from '../text/encode-text';
import { readTextFile } from '../text/text-file';
import type { StructuredRecord } from '../structured/structured-prune';
import { checkExpertList, commonCount, formatExpertList, splitExpertList, type ExpertSplit } from './expert-list';
import { maskedRouterRow, maskExperts, measureMaskedRouting, routerDirections, renumbered } from './expert-mask';
import { computeExpertStats, moeOf, type ExpertMetric, type ExpertStats } from './expert-stats';

export const EXPERT_STATS_FILE = 'prunelens-experts.json';

export interface ExpertTarget {
  /** Fraction of each sparse layer's experts to remove. */
  ratio: number;
  metric: ExpertMetric;
  /** For `random`. */
  seed: number;
}

/** A person's choice of experts (`--remove "0.e3,1.e2"`, the heat map), source indices per layer. */
export interface ExplicitExperts {
  experts: Record<string, number[]>;
  /** Where layers name different counts: which named experts are cut out (the lowest) and which masked. */
  metric: ExpertMetric;
  seed: number;
}

export interface ExpertPruneOptions extends RunControl {
  model: string;
  out: string;
  overwrite?: boolean;
  /** Exactly one of target (a ratio of every layer) and explicit (named experts). */
  target?: ExpertTarget;
  explicit?: ExplicitExperts;
  calibration?: CalibrationRequest;
  evaluation?: EvaluationRequest;
  runtime: RuntimeSettings;
}

/** What an expert removal did, as prunelens.json records it (a structured record's `experts`). */
export interface ExpertRemoval {
  target: ExpertTarget | null;
  explicit: ExplicitExperts | null;
  /** Source expert indices removed, per layer (sparse layers only); the kept ones are renumbered in order. */
  removed: Record<string, number[]>;
  /**
   * Source expert indices masked, per layer: named experts beyond the count every layer loses. They
   * keep a slot (renumbered like the rest) with zero weights and a router row that (nearly) never
   * wins top-k (see expert-mask.ts).
   */
  masked: Record<string, number[]>;
  /** Per layer with masked experts: routings to them per calibration token, measured on the written model. */
  maskedRouting: Record<string, number> | null;
  count: number;
  topK: number;
  countBefore: number;
  topKBefore: number;
}

/** A structured record (the Runs and Model views read it as one) whose `experts` says what was removed. */
export type ExpertRecord = StructuredRecord & { experts: ExpertRemoval; predictedPeakMb: number };

/**
 * How many experts each sparse layer loses: round(E x ratio), at least 1, leaving at least one. The
 * same count everywhere, because a standard config.json has one expert count for all layers.
 */
export function expertsToRemove(moe: MoeSpec, ratio: number): number {
  return Math.min(moe.experts - 1, Math.max(1, Math.round(moe.experts * ratio)));
}

/**
 * Per sparse layer, the experts to remove: the lowest-scoring by the metric (REAP or routing
 * frequency from calibration; seeded random scores), ties to the lower index.
 */
export function selectExperts(cfg: ModelConfig, stats: ExpertStats | undefined, target: ExpertTarget): Map<number, number[]> {
  const moe = moeOf(cfg, 'config.json');
  const count = expertsToRemove(moe, target.ratio);
  const scores = expertScores(cfg, stats, target.metric, target.seed);
  const removed = new Map<number, number[]>();
  for (const [layer, score] of scores) {
    const order = score.map((s, j) => [s, j] as const).sort((a, b) => a[0] - b[0] || a[1] - b[1]);
    removed.set(layer, order.slice(0, count).map(([, j]) => j).sort((a, b) => a - b));
  }
  return removed;
}

/** Each sparse layer's expert scores by the metric: REAP or routing frequency from calibration, or seeded random. */
function expertScores(cfg: ModelConfig, stats: ExpertStats | undefined, metric: ExpertMetric, seed: number): Map<number, number[]> {
  const moe = moeOf(cfg, 'config.json');
  const random = new PythonRandom(seed);
  const scores = new Map<number, number[]>();
  for (let layer = 0; layer < cfg.numLayers; layer++) {
    if (!moe.sparse[layer]) continue;
    if (metric === 'random') {
      scores.set(layer, Array.from({ length: moe.experts }, () => random.randint(0, 2 ** 31)));
    } else {
      const entry = stats?.layers.find((l) => l.layer === layer);
      if (!entry) throw new PruneLensError('usage', `the ${metric} metric needs calibration statistics of layer ${layer}`);
      scores.set(layer, entry.experts.map((e) => (metric === 'reap' ? e.reap : e.frequency)));
    }
  }
  return scores;
}

/**
 * config.json with fewer experts: the family's own expert-count field, and num_experts_per_tok
 * lowered to the kept count if it would exceed it (never otherwise: the router still picks k).
 */
export function expertConfig(cfg: ModelConfig, kept: number): Record<string, unknown> {
  const moe = moeOf(cfg, 'config.json');
  return { ...cfg.raw, [expertCountKey(cfg.modelType)]: kept, num_experts_per_tok: Math.min(moe.topK, kept) };
}

/** A sparse layer's tensors without the removed experts: router rows dropped, experts renumbered in order. */
export function removeExperts(moe: MoeSpec, hidden: number, weights: Map<string, Float32Array>, removed: readonly number[]): Map<string, Float32Array> {
  const kept = Array.from({ length: moe.experts }, (_, j) => j).filter((j) => !removed.includes(j));
  const expertNames = new Set(Array.from({ length: moe.experts }, (_, j) => EXPERT_LINEARS.map((l) => expertWeightName(moe, j, l))).flat());
  const out = new Map<string, Float32Array>();
  for (const [name, values] of weights) {
    if (name === routerName(moe)) {
      const router = new Float32Array(kept.length * hidden);
      kept.forEach((j, i) => router.set(values.subarray(j * hidden, (j + 1) * hidden), i * hidden));
      out.set(name, router);
    } else if (!expertNames.has(name)) {
      out.set(name, values);
    }
  }
  kept.forEach((j, i) => {
    for (const l of EXPERT_LINEARS) out.set(expertWeightName(moe, i, l), weights.get(expertWeightName(moe, j, l))!);
  });
  return out;
}

/**
 * Expert removal that really shrinks the model: the chosen experts' weights and router rows are cut
 * out, the rest renumbered, and config.json's expert count lowered, so the family's own loader reads
 * a smaller model. Built under a temporary name, read back, evaluated, committed (as structured pruning).
 */
export async function pruneExperts(options: ExpertPruneOptions): Promise<ExpertRecord> {
  const start = performance.now();
  if (!options.target === !options.explicit) throw new PruneLensError('usage', 'give either a ratio of experts to remove or an explicit list, not both');
  return withModelSession(options.model, options.runtime, async (session) => {
    const { checkpoint, tokenizer } = session;
    const cfg = checkpoint.config;
    const moe = moeOf(cfg, checkpoint.dir);
    const lists = options.explicit && checkExpertList(cfg, Object.entries(options.explicit.experts).flatMap(([l, experts]) => experts.map((e) => [Number(l), e] as [number, number])), checkpoint.dir);
    // Unequal lists mask some experts: the mask's router rows and its measured routing both need calibration text.
    const masking = lists !== undefined && new Set(moe.sparse.flatMap((s, l) => (s ? [lists.get(l)?.length ?? 0] : []))).size > 1;
    const metric = options.target?.metric ?? options.explicit!.metric;
    const needsStats = (options.target !== undefined || masking) && metric !== 'random';
    if ((needsStats || masking) && !options.calibration) {
      throw new PruneLensError('usage', masking ? 'layers name different numbers of experts, so some are masked; masking needs calibration text (--calib FILE)' : `the ${metric} metric needs calibration text (--calib FILE)`);
    }
    checkWritable(checkpoint);
    if (needsStats || masking) checkCalibrationMemory(options.calibration!, cfg);
    const evalText = options.evaluation ? await readTextFile(options.evaluation.file) : undefined;
    const evalIds = evalText !== undefined ? await encodeText(tokenizer, evalText, { ...options, source: options.evaluation!.file }) : undefined;
    if (evalIds) checkTokenIds(evalIds, cfg, options.evaluation!.file);
    const evaluation: EvaluationText | undefined = evalIds && { request: options.evaluation!, text: evalText!, ids: evalIds };
    const calibration = needsStats || masking ? await drawCalibration(tokenizer, options.calibration!, options, cfg) : undefined;
    const stats = needsStats ? await computeExpertStats(session, calibration!, options) : undefined;
    const split: ExpertSplit = lists
      ? splitExpertList(cfg, lists, masking ? scoresOf(expertScores(cfg, stats, metric, options.explicit!.seed)) : undefined)
      : { removed: selectExperts(cfg, stats, options.target!), masked: new Map(), kept: moe.experts - expertsToRemove(moe, options.target!.ratio) };
    const { removed, masked, kept } = split;
    const directions = masked.size > 0 ? await routerDirections(session, calibration!, [...masked.keys()], options) : undefined;
    // Masked experts by their index in the written model (after the cut experts are renumbered away).
    const maskedOut = new Map([...masked].map(([l, experts]) => [l, experts.map((j) => renumbered(moe.experts, removed.get(l) ?? [], j))]));
    const config = expertConfig(cfg, kept);
    const newCfg = parseModelConfig(config, 'config.json');
    const specs = [...expectedTensorShapes(newCfg)].map(([name, shape]) => ({ name, shape, dtype: sourceDtype(checkpoint, moe, removed, name) }));
    const inputs = [options.evaluation?.file, calibration ? options.calibration!.file : undefined].filter((f): f is string => f !== undefined);
    const output = await OutputFolder.create(checkpoint, options.out, options.overwrite ?? false, { files: [{ name: 'model.safetensors', specs, metadata: { format: 'pt' } }], config }, { inputs, log: options.log });
    return output.complete(async () => {
      const dense = evaluation ? await evaluateDense(session, evaluation, options) : undefined;
      const blockNames = new Set(blockTensorNames(cfg));
      for (const name of expectedTensorShapes(cfg).keys()) if (!blockNames.has(name)) await output.copy(name);
      for (let layer = 0; layer < cfg.numLayers; layer++) {
        throwIfCancelled(options.signal);
        const weights = await checkpoint.readBlock(layer);
        const cut = removed.has(layer) ? removeExperts(moe, cfg.hiddenSize, weights, removed.get(layer)!) : weights;
        const written = maskedOut.has(layer) ? maskExperts(moe, cfg.hiddenSize, cut, maskedOut.get(layer)!, maskedRouterRow(directions!.get(layer)!)) : cut;
        for (const [name, values] of written) await output.write(layerPrefix(cfg, layer) + name, values);
      }
      if (stats) await output.writeFile(EXPERT_STATS_FILE, `${JSON.stringify(stats, null, 2)}\n`);
      const before = parameterCount(cfg);
      const after = parameterCount(newCfg);
      const perLayer = (m: Map<number, number[]>) => Object.fromEntries([...m].map(([l, experts]) => [String(l), experts]));
      return finishJob<ExpertRecord>(
        {
          output,
          session,
          evaluation,
          dense,
          reshaped: true,
          record: async (written, pruned) => ({
            format: 'prunelens.record',
            version: 1,
            kind: 'structured',
            created: new Date().toISOString(),
            output: output.out,
            source: { path: checkpoint.dir, dtype: checkpoint.dtype },
            target: null,
            explicit: null,
            removed: { layers: [], kvHeads: {}, channelsPerLayer: 0, maskedHeads: [] },
            config: { numLayers: newCfg.numLayers, numHeads: newCfg.numHeads, numKvHeads: newCfg.numKvHeads, intermediateSize: newCfg.intermediateSize },
            experts: {
              target: options.target ?? null,
              explicit: options.explicit ?? null,
              removed: perLayer(removed),
              masked: perLayer(masked),
              maskedRouting: maskedOut.size > 0 ? await measureMaskedRouting(written, session, calibration!, maskedOut, options) : null,
              count: kept,
              topK: newCfg.arch.moe!.topK,
              countBefore: moe.experts,
              topKBefore: moe.topK,
            },
            parameters: { before, after, removedFraction: 1 - after / before },
            bytes: { before: checkpoint.bytesOnDisk, after: written.bytesOnDisk },
            calibration: stats?.calibration ?? (calibration ? describeCalibration(calibration) : null),
            evaluation: pruned && options.evaluation ? { file: options.evaluation.file, seqlen: pruned.seqlen, windows: pruned.windows } : null,
            perplexity: { dense: dense?.ppl ?? null, pruned: pruned?.ppl ?? null },
            seconds: { total: (performance.now() - start) / 1000 },
            peakRssMb: peakRssMb(),
            predictedPeakMb: session.memory!.peakBytes / 2 ** 20,
          }),
          report: (r) => [[REPORT_FILE, renderExpertReport(r)]],
        },
        options,
      );
    });
  }, { job: (cfg) => expertRemovalMemory(cfg, options), onProgress: options.onProgress });
}

/**
 * What an expert removal holds, from its options alone (the evaluation text's size bounds its windows).
 * A named list counts a calibration pass whatever its counts: one is needed where they differ.
 */
function expertRemovalMemory(cfg: ModelConfig, options: ExpertPruneOptions): MemoryJob {
  const { evaluation, calibration, target, explicit } = options;
  const moe = cfg.arch.moe;
  const textBytes = evaluation ? (statSync(evaluation.file, { throwIfNoEntry: false })?.size ?? 0) : 0;
  const removed = !moe ? 0 : target ? expertsToRemove(moe, target.ratio) : commonCount(moe, new Map(Object.entries(explicit!.experts).map(([l, e]) => [Number(l), e])));
  return {
    evalWindows: evaluation ? evaluationWindowsAtMost(textBytes, evaluation.seqlen, evaluation.maxWindows) : 0,
    evalSeqlen: evaluation?.seqlen ?? 0,
    experts: calibration && target?.metric !== 'random' ? { nsamples: calibration.nsamples, seqlen: calibration.seqlen } : undefined,
    keptExperts: moe ? moe.experts - removed : undefined,
  };
}

const scoresOf = (scores: Map<number, number[]>) => (layer: number): number[] => scores.get(layer)!;

function describeCalibration(calibration: CalibrationSet): Omit<CalibrationSet, 'ids'> {
  const { ids: _ids, ...described } = calibration;
  return described;
}

/** The dtype of the source tensor an output tensor comes from (expert i of the output is the i-th kept one). */
function sourceDtype(checkpoint: Checkpoint, moe: MoeSpec, removed: Map<number, number[]>, name: string): ReturnType<Checkpoint['entry']>['dtype'] {
  const match = /^model\.layers\.(\d+)\..*\.experts\.(\d+)\./.exec(name);
  if (!match) return checkpoint.entry(name).dtype;
  const layer = Number(match[1]);
  const kept = Array.from({ length: moe.experts }, (_, j) => j).filter((j) => !(removed.get(layer) ?? []).includes(j));
  return checkpoint.entry(name.replace(`.experts.${match[2]}.`, `.experts.${kept[Number(match[2])]}.`)).dtype;
}

function renderExpertReport(r: ExpertRecord): string {
  const ppl = (v: number | null) => (v === null ? 'not evaluated' : v.toFixed(3));
  const e = r.experts;
  const how = e.target
    ? `Removed ${Math.round(e.target.ratio * 100)}% of the experts of every sparse layer by ${e.target.metric}`
    : `Removed the experts named (${formatExpertList(e.explicit!.experts)})${Object.keys(e.masked).length > 0 ? `; where layers named more than the fewest, the extra ones (lowest ${e.explicit!.metric} cut first) are masked: zero weights and a router row that (nearly) never wins top-k` : ''}`;
  const routing = (l: string) => (e.maskedRouting?.[l] === undefined ? '' : `${(100 * e.maskedRouting[l]).toFixed(3)}%`);
  return [
    `# Expert removal: ${r.output}`,
    '',
    `Source: ${r.source.path} (${r.source.dtype}). ${how}: ${e.countBefore} -> ${e.count} experts, top-${e.topK}.`,
    '',
    '| layer | removed experts (source indices) | masked experts | routings to masked experts per calibration token |',
    '|---|---|---|---|',
    ...Object.entries(e.removed).map(([l, experts]) => `| ${l} | ${experts.join(', ')} | ${(e.masked[l] ?? []).join(', ')} | ${routing(l)} |`),
    '',
    `Parameters ${r.parameters.before} -> ${r.parameters.after} (${(100 * r.parameters.removedFraction).toFixed(1)}% removed); ${r.bytes.before} -> ${r.bytes.after} bytes.`,
    '',
    `Perplexity: dense ${ppl(r.perplexity.dense)}, after removal ${ppl(r.perplexity.pruned)}${r.evaluation ? ` (${r.evaluation.windows} windows of ${r.evaluation.seqlen} of ${r.evaluation.file})` : ''}.`,
    '',
  ].join('\n');
}
