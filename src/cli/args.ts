import type { ParseArgsConfig } from 'node:util';
import { ALLOCATIONS, type Allocation } from '../engine/allocate/plan';
import { OWL_DEFAULTS } from '../engine/allocate/owl';
import type { CalibrationRequest } from '../engine/calibrate/calibration-data';
import { SAMPLE_CALIBRATION_TEXT } from '../engine/embedded';
import { PruneLensError } from '../engine/errors';
import { isProvider, type RuntimeSettings } from '../engine/graph/session';
import { checkSparsity, isMethod, METHODS, parseNM, parseUpdate, type PruneSpec } from '../engine/prune/spec';
import type { AllocationRequest } from '../engine/allocate/allocation';
import { CHANNEL_METRICS, HEAD_METRICS, LAYER_METRICS, type StructuredTarget } from '../engine/structured/select';
import { RUNTIME_OPTIONS } from './command';

export function positiveInt(value: string | undefined, option: string): number | undefined {
  const n = nonNegativeInt(value, option);
  if (n === 0) throw new PruneLensError('usage', `${option} must be a positive integer, got "${value}"`);
  return n;
}

export function nonNegativeInt(value: string | undefined, option: string): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (value.trim() === '' || !Number.isSafeInteger(n) || n < 0) throw new PruneLensError('usage', `${option} must be a non-negative integer, got "${value}"`);
  return n;
}

function number(value: string | undefined, option: string): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n)) throw new PruneLensError('usage', `${option} must be a number, got "${value}"`);
  return n;
}

export function runtime(values: { provider?: string; threads?: string }): RuntimeSettings {
  const provider = values.provider ?? 'cpu';
  if (!isProvider(provider)) throw new PruneLensError('usage', `--provider must be one of cpu, webgpu, cuda; got "${provider}"`);
  return { provider, threads: positiveInt(values.threads, '--threads') };
}

/** Options shared by `prune` and `plan`: what to prune, by what allocation, calibrated on what. */
export const PRUNING_OPTIONS = {
  ...RUNTIME_OPTIONS,
  method: { type: 'string' },
  update: { type: 'string' },
  sparsity: { type: 'string' },
  nm: { type: 'string' },
  allocation: { type: 'string' },
  'owl-m': { type: 'string' },
  'owl-lambda': { type: 'string' },
  calib: { type: 'string' },
  nsamples: { type: 'string' },
  seqlen: { type: 'string' },
  seed: { type: 'string' },
  include: { type: 'string' },
  exclude: { type: 'string' },
  blocksize: { type: 'string' },
  percdamp: { type: 'string' },
} as const satisfies ParseArgsConfig['options'];

type PruningValues = { [K in keyof typeof PRUNING_OPTIONS]?: string };

function globs(value: string | undefined): string[] {
  return value === undefined ? [] : value.split(',').map((g) => g.trim()).filter((g) => g.length > 0);
}

export function seqlenOf(values: PruningValues): number {
  return positiveInt(values.seqlen, '--seqlen') ?? 256;
}

export function pruneSpec(values: PruningValues): PruneSpec {
  const method = values.method ?? 'wanda';
  if (!isMethod(method)) throw new PruneLensError('usage', `--method must be one of ${METHODS.join(', ')}; got "${method}"`);
  const update = values.update === undefined ? undefined : parseUpdate(values.update, method);
  if (values.nm !== undefined && values.sparsity !== undefined) {
    throw new PruneLensError('usage', '--nm fixes the sparsity at N/M; give --sparsity or --nm, not both');
  }
  const nm = values.nm === undefined ? undefined : parseNM(values.nm);
  const percdamp = number(values.percdamp, '--percdamp') ?? 0.01;
  if (!(percdamp > 0)) throw new PruneLensError('usage', `--percdamp must be positive, got ${percdamp}`);
  return {
    method,
    sparsity: nm ? nm.n / nm.m : checkSparsity(number(values.sparsity, '--sparsity') ?? 0.5),
    nm,
    ...(update !== undefined ? { update } : {}),
    include: globs(values.include),
    exclude: globs(values.exclude),
    blocksize: positiveInt(values.blocksize, '--blocksize') ?? 128,
    percdamp,
  };
}

export function calibrationRequest(values: PruningValues): CalibrationRequest {
  return {
    file: values.calib ?? SAMPLE_CALIBRATION_TEXT,
    nsamples: positiveInt(values.nsamples, '--nsamples') ?? 128,
    seqlen: seqlenOf(values),
    seed: nonNegativeInt(values.seed, '--seed') ?? 0,
  };
}

export function allocationRequest(values: PruningValues): Exclude<AllocationRequest, { kind: 'plan' }> {
  const kind = values.allocation ?? 'uniform';
  if (!(ALLOCATIONS as readonly string[]).includes(kind)) {
    throw new PruneLensError('usage', `--allocation must be one of ${ALLOCATIONS.join(', ')}; got "${kind}"`);
  }
  if (kind !== 'owl' && (values['owl-m'] !== undefined || values['owl-lambda'] !== undefined)) {
    throw new PruneLensError('usage', '--owl-m and --owl-lambda apply to --allocation owl only');
  }
  switch (kind as Allocation) {
    case 'owl': {
      const M = number(values['owl-m'], '--owl-m') ?? OWL_DEFAULTS.M;
      const lambda = number(values['owl-lambda'], '--owl-lambda') ?? OWL_DEFAULTS.lambda;
      if (!(M > 0)) throw new PruneLensError('usage', `--owl-m must be positive, got ${M}`);
      if (!(lambda >= 0 && lambda < 0.5)) throw new PruneLensError('usage', `--owl-lambda must be in [0, 0.5), got ${lambda}`);
      return { kind: 'owl', M, lambda };
    }
    case 'besa':
      return { kind: 'besa' };
    case 'uniform':
      return { kind: 'uniform' };
  }
}

/** --structured heads,channels --ratio 0.2 --metric output,flap: one metric per part, defaults for the rest. */
export function structuredTarget(values: { structured?: string; ratio?: string; metric?: string; seed?: string }): StructuredTarget {
  const parts = (values.structured ?? '').split(',').map((p) => p.trim());
  const heads = parts.includes('heads');
  const channels = parts.includes('channels');
  const layers = parts.includes('layers');
  const unknown = parts.filter((p) => !['heads', 'channels', 'layers'].includes(p));
  if (unknown.length > 0 || parts.length === 0 || (layers && (heads || channels))) {
    throw new PruneLensError('usage', `--structured takes heads, channels, heads,channels or layers; got "${values.structured}"`);
  }
  const ratio = number(values.ratio, '--ratio');
  if (ratio === undefined || !(ratio > 0 && ratio < 1)) throw new PruneLensError('usage', `--ratio must be a fraction of the parameters in (0, 1), got ${values.ratio}`);
  const metrics: StructuredTarget['metrics'] = { heads: 'output', channels: 'flap', layers: 'bi' };
  for (const name of (values.metric ?? '').split(',').map((m) => m.trim()).filter(Boolean)) {
    if (name === 'random') Object.assign(metrics, { heads: 'random', channels: 'random', layers: 'random' });
    else if ((HEAD_METRICS as readonly string[]).includes(name)) metrics.heads = name as StructuredTarget['metrics']['heads'];
    else if ((CHANNEL_METRICS as readonly string[]).includes(name)) metrics.channels = name as StructuredTarget['metrics']['channels'];
    else if ((LAYER_METRICS as readonly string[]).includes(name)) metrics.layers = name as StructuredTarget['metrics']['layers'];
    else throw new PruneLensError('usage', `unknown metric "${name}"; heads: ${HEAD_METRICS.join(', ')}; channels: ${CHANNEL_METRICS.join(', ')}; layers: ${LAYER_METRICS.join(', ')}`);
  }
  return { heads, channels, layers, ratio, metrics, seed: nonNegativeInt(values.seed, '--seed') ?? 0 };
}
