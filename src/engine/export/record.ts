import * as path from 'node:path';
import type { Plan } from '../allocate/plan';
import type { CalibrationSet } from '../calibrate/calibration-data';
import type { PerplexityResult } from '../evaluate/perplexity';
import type { Checkpoint } from '../io/checkpoint';
import { layerPrefix, linearWeightNames, parameterCount } from '../model/config';
import type { LayerRecord } from '../prune/sequential';
import type { PruneSpec } from '../prune/spec';

export interface TensorSparsity {
  shape: number[];
  zeros: number;
  sparsity: number;
  targeted: boolean;
}

/** prunelens.json: how a pruned model was made and what it measured; the extension's Runs view reads it. */
export interface PruneRecord {
  format: 'prunelens.record';
  version: 1;
  created: string;
  output: string;
  source: { path: string; dtype: string; files: string[]; parameters: number };
  method: PruneSpec['method'];
  /** The requested fraction; `measured.sparsity` is what the written files hold. */
  sparsity: number;
  nm: string | null;
  settings: { include: string[]; exclude: string[]; blocksize: number; percdamp: number; update: PruneSpec['update'] | null };
  calibration: Omit<CalibrationSet, 'ids'> | null;
  evaluation: { file: string; seqlen: number; windows: number; tokens: number } | null;
  perplexity: { dense: number | null; pruned: number | null };
  measured: {
    /** Zeros over the targeted linear weights. */
    sparsity: number;
    /** Zeros over every parameter, embeddings and norms included. */
    modelSparsity: number;
    zeros: number;
    targetedParameters: number;
    parameters: number;
  };
  /** The allocation the run pruned by (uniform, OWL, BESA-style or a plan file), with its statistics. */
  plan: Plan;
  tensors: Record<string, TensorSparsity>;
  layers: (LayerRecord & { sparsity: number })[];
  seconds: { total: number; prune: number };
  peakRssMb: number;
  /** The peak predicted before the model was loaded (absent in records made before it was). */
  predictedPeakMb?: number;
}

export interface RecordInputs {
  source: Checkpoint;
  written: Checkpoint;
  out: string;
  spec: PruneSpec;
  plan: Plan;
  targets: string[];
  calibration?: CalibrationSet;
  evaluation?: { file: string; seqlen: number };
  dense?: PerplexityResult;
  pruned?: PerplexityResult;
  layers: LayerRecord[];
  seconds: { total: number; prune: number };
  peakRssMb: number;
  predictedPeakMb: number;
}

/** Builds the record, measuring sparsity from the weights as written, not as intended. */
export async function buildRecord(inputs: RecordInputs): Promise<PruneRecord> {
  const { source, written, spec } = inputs;
  const cfg = written.config;
  const targets = new Set(inputs.targets);
  const tensors: Record<string, TensorSparsity> = {};
  let zeros = 0;
  let targeted = 0;
  for (const name of linearWeightNames(cfg)) {
    const values = await written.readF32(name);
    let z = 0;
    for (let i = 0; i < values.length; i++) if (values[i] === 0) z++;
    tensors[name] = { shape: written.entry(name).shape, zeros: z, sparsity: z / values.length, targeted: targets.has(name) };
    if (targets.has(name)) {
      zeros += z;
      targeted += values.length;
    }
  }
  const layers = inputs.layers.map((record) => {
    const prefix = layerPrefix(cfg, record.layer);
    const inLayer = Object.entries(tensors).filter(([name]) => name.startsWith(prefix));
    const numel = inLayer.reduce((n, [, t]) => n + t.shape[0]! * t.shape[1]!, 0);
    return { ...record, sparsity: inLayer.reduce((n, [, t]) => n + t.zeros, 0) / numel };
  });
  const parameters = parameterCount(cfg);
  const calibration = inputs.calibration ? (({ ids: _ids, ...rest }) => rest)(inputs.calibration) : null;
  return {
    format: 'prunelens.record',
    version: 1,
    created: new Date().toISOString(),
    output: inputs.out,
    source: { path: source.dir, dtype: source.dtype, files: source.files.map((f) => path.basename(f)), parameters },
    method: spec.method,
    sparsity: spec.nm ? spec.nm.n / spec.nm.m : inputs.plan.target,
    nm: spec.nm ? `${spec.nm.n}:${spec.nm.m}` : null,
    settings: { include: spec.include, exclude: spec.exclude, blocksize: spec.blocksize, percdamp: spec.percdamp, update: spec.update ?? null },
    plan: inputs.plan,
    calibration,
    evaluation:
      inputs.evaluation && inputs.pruned
        ? { file: inputs.evaluation.file, seqlen: inputs.pruned.seqlen, windows: inputs.pruned.windows, tokens: inputs.pruned.tokens }
        : null,
    perplexity: { dense: inputs.dense?.ppl ?? null, pruned: inputs.pruned?.ppl ?? null },
    measured: { sparsity: zeros / targeted, modelSparsity: zeros / parameters, zeros, targetedParameters: targeted, parameters },
    tensors,
    layers,
    seconds: inputs.seconds,
    peakRssMb: inputs.peakRssMb,
    predictedPeakMb: inputs.predictedPeakMb,
  };
}
