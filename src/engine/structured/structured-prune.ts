import { drawCalibration, type CalibrationRequest } from '../calibrate/calibration-data';
import { PruneLensError } from '../errors';
import { OutputFolder } from '../export/output-folder';
import { structuredReportFiles } from '../export/report';
import type { RuntimeSettings } from '../graph/session';
import { Checkpoint } from '../io/checkpoint';
import { peakRssMb } from '../memory';
import { type ModelConfig, blockTensorNames, blockTensorShapes, expectedTensorShapes, layerPrefix, parameterCount, parseModelConfig, checkTokenIds } from '../model/config';
import type { RunControl } from '../progress';
import { throwIfCancelled } from '../progress';
import { withModelSession } from '../model/model-session';
import { checkCalibrationMemory, checkWritable, evaluateDense, finishJob, type EvaluationRequest, type EvaluationText } from '../prune/prune-job';
import { encodeText } from '../text/encode-text';
import { readTextFile } from '../text/text-file';
import { computeScores, type StructuredScores } from './scores';
import { selectRemoval, type Selection, type StructuredTarget } from './select';
import { shrinkBlock, shrunkConfig } from './shrink';
import { toStoredBlock } from '../model/families/fused';
import type { ExpertRemoval } from '../experts/expert-prune';

export const SCORES_FILE = 'prunelens-scores.json';

/** Explicit removals, as the model tree asks for them: "3.h2" (head 2 of layer 3), "L4" (layer 4). */
export interface ExplicitRemoval {
  heads: [layer: number, head: number][];
  layers: number[];
}

export interface StructuredPruneOptions extends RunControl {
  model: string;
  out: string;
  overwrite?: boolean;
  target?: StructuredTarget;
  explicit?: ExplicitRemoval;
  calibration?: CalibrationRequest;
  evaluation?: EvaluationRequest;
  runtime: RuntimeSettings;
}

export interface StructuredRecord {
  format: 'prunelens.record';
  version: 1;
  kind: 'structured';
  created: string;
  output: string;
  source: { path: string; dtype: string };
  target: StructuredTarget | null;
  explicit: ExplicitRemoval | null;
  removed: {
    layers: number[];
    /** Key/value heads removed per kept source layer (each with every query head that reads it). */
    kvHeads: Record<string, number[]>;
    channelsPerLayer: number;
    /** Explicitly named heads whose weights were zeroed, not cut: a standard config.json has one head count for all layers. */
    maskedHeads: [number, number][];
  };
  config: { numLayers: number; numHeads: number; numKvHeads: number; intermediateSize: number };
  /** Expert removal (`--structured experts`, engine/experts/expert-prune.ts): heads, channels and layers are then untouched. */
  experts?: ExpertRemoval;
  parameters: { before: number; after: number; removedFraction: number };
  bytes: { before: number; after: number };
  calibration: StructuredScores['calibration'] | null;
  evaluation: { file: string; seqlen: number; windows: number } | null;
  perplexity: { dense: number | null; pruned: number | null };
  seconds: { total: number };
  peakRssMb: number;
}

/** Scores, on their own: `prunelens scores` and the model tree. */
export async function scoreModel(options: { model: string; calibration: CalibrationRequest; runtime: RuntimeSettings } & RunControl): Promise<StructuredScores> {
  return withModelSession(options.model, options.runtime, async (session) => {
    refuseExperts(session.checkpoint);
    return computeScores(session, await drawCalibration(session.tokenizer, options.calibration, options, session.checkpoint.config), options);
  });
}

/** Heads, channels and blocks are scored and cut in dense MLPs; a MoE model's unit is the expert. */
function refuseExperts(checkpoint: Checkpoint): void {
  const cfg = checkpoint.config;
  if (cfg.arch.moe) throw new PruneLensError('usage', `model_type "${cfg.modelType}" is a mixture of experts: heads, channels and layers are not scored or removed there; remove experts with --structured experts`, checkpoint.dir);
}

/**
 * Structured pruning that really shrinks the model: chosen heads, channels or blocks are cut out of
 * the tensors and the config.json is rewritten to match, so any Llama loader reads a smaller model.
 * Written beside the source under a temporary name, checked by loading it back, evaluated, renamed.
 */
export async function structuredPrune(options: StructuredPruneOptions): Promise<StructuredRecord> {
  const start = performance.now();
  if (!options.target === !options.explicit) throw new PruneLensError('usage', 'give either a ratio to remove or an explicit list, not both');
  const needsScores = options.target !== undefined && (options.target.layers ? options.target.metrics.layers !== 'random' : (options.target.heads && options.target.metrics.heads !== 'random') || (options.target.channels && options.target.metrics.channels !== 'random'));
  if (needsScores && !options.calibration) throw new PruneLensError('usage', 'the metrics need calibration text (--calib FILE)');
  return withModelSession(options.model, options.runtime, async (session) => {
    const { checkpoint, tokenizer } = session;
    const cfg = checkpoint.config;
    refuseExperts(checkpoint);
    refuseHeadRemoval(cfg, options);
    checkWritable(checkpoint);
    if (needsScores) checkCalibrationMemory(options.calibration!, cfg);
    const evalText = options.evaluation ? await readTextFile(options.evaluation.file) : undefined;
    const evalIds = evalText !== undefined ? await encodeText(tokenizer, evalText, { ...options, source: options.evaluation!.file }) : undefined;
    if (evalIds) checkTokenIds(evalIds, cfg, options.evaluation!.file);
    const evaluation: EvaluationText | undefined = evalIds && { request: options.evaluation!, text: evalText!, ids: evalIds };
    const calibration = needsScores ? await drawCalibration(tokenizer, options.calibration!, options, cfg) : undefined;
    const selection = options.target ? undefined : explicitSelection(checkpoint, options.explicit!);
    const masked = options.explicit?.heads ?? [];
    const scores = calibration ? await computeScores(session, calibration, options) : undefined;
    const chosen = selection ?? selectRemoval(cfg, scores, options.target!);
    const config = shrunkConfig(cfg, { layers: chosen.layers, kvHeads: chosen.kvHeads, channels: chosen.channels });
    // The output keeps the source's tensor names, whichever root its checkpoint uses (GPT-2 with or without `transformer.`).
    const parsed = parseModelConfig(config, 'config.json');
    const newCfg = { ...parsed, arch: { ...parsed.arch, names: cfg.arch.names } };
    const blockPrefix = `${cfg.arch.names.root}${cfg.arch.names.layers}.`;
    const dtypeOf = (name: string): ReturnType<Checkpoint['entry']>['dtype'] => {
      const inBlock = name.startsWith(blockPrefix) ? /^(\d+)\.(.*)$/.exec(name.slice(blockPrefix.length)) : null;
      return checkpoint.entry(inBlock ? layerPrefix(cfg, chosen.layers[Number(inBlock[1])]!) + inBlock[2]! : name).dtype;
    };
    const specs = [...expectedTensorShapes(newCfg)].map(([name, shape]) => ({ name, shape, dtype: dtypeOf(name) }));
    const inputs = [options.evaluation?.file, needsScores ? options.calibration!.file : undefined].filter((f): f is string => f !== undefined);
    const output = await OutputFolder.create(checkpoint, options.out, options.overwrite ?? false, { files: [{ name: 'model.safetensors', specs, metadata: { format: 'pt' } }], config }, { inputs, log: options.log });
    return output.complete(async () => {
      const dense = evaluation ? await evaluateDense(session, evaluation, options) : undefined;
      const blockNames = new Set(blockTensorNames(cfg));
      for (const name of expectedTensorShapes(cfg).keys()) if (!blockNames.has(name)) await output.copy(name);
      for (const [index, layer] of chosen.layers.entries()) {
        throwIfCancelled(options.signal);
        const weights = maskHeads(cfg, await checkpoint.readBlock(layer), masked.filter(([l]) => l === layer).map(([, h]) => h));
        for (const [name, values] of toStoredBlock(newCfg, shrinkBlock(cfg, weights, chosen.keep.get(layer)!), blockTensorShapes(newCfg))) await output.write(layerPrefix(newCfg, index) + name, values);
      }
      if (scores) await output.writeFile(SCORES_FILE, `${JSON.stringify(scores, null, 2)}\n`);
      const before = parameterCount(cfg);
      const after = parameterCount(newCfg);
      return finishJob<StructuredRecord>(
        {
          output,
          session,
          evaluation,
          dense,
          reshaped: true,
          record: (written, pruned) => ({
            format: 'prunelens.record',
            version: 1,
            kind: 'structured',
            created: new Date().toISOString(),
            output: output.out,
            source: { path: checkpoint.dir, dtype: checkpoint.dtype },
            target: options.target ?? null,
            explicit: options.explicit ?? null,
            removed: {
              layers: Array.from({ length: cfg.numLayers }, (_, l) => l).filter((l) => !chosen.layers.includes(l)),
              kvHeads: Object.fromEntries(chosen.layers.map((l) => [String(l), Array.from({ length: cfg.numKvHeads }, (_, k) => k).filter((k) => !chosen.keep.get(l)!.kvHeads.includes(k))])),
              channelsPerLayer: cfg.intermediateSize - chosen.channels,
              maskedHeads: masked,
            },
            config: { numLayers: newCfg.numLayers, numHeads: newCfg.numHeads, numKvHeads: newCfg.numKvHeads, intermediateSize: newCfg.intermediateSize },
            parameters: { before, after, removedFraction: 1 - after / before },
            bytes: { before: checkpoint.bytesOnDisk, after: written.bytesOnDisk },
            calibration: scores?.calibration ?? null,
            evaluation: pruned && options.evaluation ? { file: options.evaluation.file, seqlen: pruned.seqlen, windows: pruned.windows } : null,
            perplexity: { dense: dense?.ppl ?? null, pruned: pruned?.ppl ?? null },
            seconds: { total: (performance.now() - start) / 1000 },
            peakRssMb: peakRssMb(),
          }),
          // The same report and per-token losses as an unstructured run, so the Runs view and the inline loss view treat both alike.
          report: structuredReportFiles,
        },
        options,
      );
    });
  });
}

/**
 * Head removal needs a config with fewer heads of the same head size; GPT-2, OPT and GPT-NeoX derive
 * the head size from hidden_size / heads and have no head_dim field, so their loaders could not read it.
 */
function refuseHeadRemoval(cfg: ModelConfig, options: StructuredPruneOptions): void {
  if (!cfg.arch.headDimFromWidth || !options.target?.heads) return;
  throw new PruneLensError(
    'usage',
    `${cfg.modelType} models cannot lose attention heads: their config.json has no head_dim (the loader computes it as hidden size / heads), so no config describes fewer heads of the same size; remove MLP channels or layers instead`,
  );
}

/** An explicit list: named layers are cut out; named heads are zeroed (see StructuredRecord.removed.maskedHeads). */
function explicitSelection(checkpoint: Checkpoint, explicit: ExplicitRemoval): Selection {
  const cfg = checkpoint.config;
  for (const l of [...explicit.layers, ...explicit.heads.map(([l]) => l)]) {
    if (!(Number.isInteger(l) && l >= 0 && l < cfg.numLayers)) throw new PruneLensError('usage', `layer ${l} does not exist; the model has layers 0-${cfg.numLayers - 1}`);
  }
  for (const [l, h] of explicit.heads) {
    if (!(Number.isInteger(h) && h >= 0 && h < cfg.numHeads)) throw new PruneLensError('usage', `head ${l}.h${h} does not exist; layers have heads 0-${cfg.numHeads - 1}`);
  }
  const layers = Array.from({ length: cfg.numLayers }, (_, l) => l).filter((l) => !explicit.layers.includes(l));
  if (layers.length === 0) throw new PruneLensError('usage', 'removing every layer leaves no model');
  const all = (n: number) => Array.from({ length: n }, (_, i) => i);
  return { layers, keep: new Map(layers.map((l) => [l, { kvHeads: all(cfg.numKvHeads), channels: all(cfg.intermediateSize) }])), kvHeads: cfg.numKvHeads, channels: cfg.intermediateSize };
}

/** Zeroes query heads: their q rows (and biases) and o_proj columns, so they add nothing to the output. */
function maskHeads(cfg: ReturnType<typeof parseModelConfig>, weights: Map<string, Float32Array>, heads: number[]): Map<string, Float32Array> {
  if (heads.length === 0) return weights;
  const { hiddenSize: d, headDim: hd, numHeads } = cfg;
  const q = Float32Array.from(weights.get('self_attn.q_proj.weight')!);
  const o = Float32Array.from(weights.get('self_attn.o_proj.weight')!);
  for (const h of heads) {
    q.fill(0, h * hd * d, (h + 1) * hd * d);
    for (let r = 0; r < d; r++) o.fill(0, r * numHeads * hd + h * hd, r * numHeads * hd + (h + 1) * hd);
  }
  const out = new Map(weights).set('self_attn.q_proj.weight', q).set('self_attn.o_proj.weight', o);
  const bias = weights.get('self_attn.q_proj.bias');
  if (bias) {
    const b = Float32Array.from(bias);
    for (const h of heads) b.fill(0, h * hd, (h + 1) * hd);
    out.set('self_attn.q_proj.bias', b);
  }
  return out;
}

/** Parses "3.h2,3.h5,L4". */
export function parseRemoval(text: string): ExplicitRemoval {
  const removal: ExplicitRemoval = { heads: [], layers: [] };
  for (const item of text.split(',').map((s) => s.trim()).filter(Boolean)) {
    const head = /^(\d+)\.h(\d+)$/.exec(item);
    const layer = /^L(\d+)$/.exec(item);
    if (head) removal.heads.push([Number(head[1]), Number(head[2])]);
    else if (layer) removal.layers.push(Number(layer[1]));
    else throw new PruneLensError('usage', `"${item}" is neither a head ("3.h2": head 2 of layer 3) nor a layer ("L4")`);
  }
  return removal;
}
