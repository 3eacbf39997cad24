import { ALLOCATIONS, type Allocation } from '../engine/allocate/plan';
import { OWL_DEFAULTS } from '../engine/allocate/owl';
import type { AllocationRequest } from '../engine/allocate/allocation';
import { CALIBRATION_DEFAULTS, type CalibrationRequest } from '../engine/calibrate/calibration-data';
import { SAMPLE_CALIBRATION_TEXT, SAMPLE_EVALUATION_TEXT } from '../engine/embedded';
import { PruneLensError } from '../engine/errors';
import { isProvider, type RuntimeSettings } from '../engine/graph/session';
import { DEFAULT_METHOD, methods, METHOD_NAMES, parseMethod, parseUpdate, settingReaders, UPDATE_NAMES, updateOf } from '../engine/prune/methods';
import { DEFAULT_SPARSITY, parseNM, SETTINGS, SPARSITY_RANGE, type PruneSpec } from '../engine/prune/spec';
import { CHANNEL_METRICS, HEAD_METRICS, LAYER_METRICS, type StructuredTarget } from '../engine/structured/select';
import { RUNTIME_OPTIONS, type OptionTable, type Parsed, type Values } from './command';

/*
 * The option tables: each option with its value's range, default and help, defined once. Ranges
 * refuse what cannot be meant (a window of one token, a hundred million calibration windows) before
 * any work starts; the upper bounds are far above any useful setting, not tuned limits.
 */

export const SEQLEN_OPTION = {
  seqlen: { type: 'string', arg: 'N', range: { integer: true, min: 2, max: 131072 }, default: CALIBRATION_DEFAULTS.seqlen, help: 'tokens per window (calibration and evaluation)' },
} as const satisfies OptionTable;

export const MAX_WINDOWS_OPTION = {
  'max-windows': { type: 'string', arg: 'K', range: { integer: true, min: 1, max: 10_000_000 }, defaultText: 'all', help: 'evaluate at most the first K windows' },
} as const satisfies OptionTable;

export const CALIBRATION_OPTIONS = {
  calib: { type: 'string', arg: 'FILE', defaultText: 'the bundled TinyStories calibration text', help: 'calibration text (.txt, or .jsonl with a "text" per line)' },
  nsamples: { type: 'string', arg: 'N', range: { integer: true, min: 1, max: 4096 }, default: CALIBRATION_DEFAULTS.nsamples, help: 'calibration windows' },
  ...SEQLEN_OPTION,
  seed: { type: 'string', arg: 'N', range: { integer: true, min: 0, max: 4294967295 }, default: CALIBRATION_DEFAULTS.seed, help: 'seed for drawing calibration windows (as the reference scripts draw them)' },
} as const satisfies OptionTable;

/** Options shared by `prune` and `plan`: what to prune, by what allocation, calibrated on what. */
export const PRUNING_OPTIONS = {
  method: { type: 'string', arg: METHOD_NAMES.join('|'), default: DEFAULT_METHOD, help: `the pruning method: ${methods().map((m) => `${m.name} (${m.description})`).join(', ')}` },
  update: { type: 'string', arg: UPDATE_NAMES.join('|'), help: UPDATE_NAMES.map((u) => `${u}: ${updateOf(u).help}`).join('; ') },
  sparsity: { type: 'string', arg: 'S', range: SPARSITY_RANGE, default: DEFAULT_SPARSITY, help: 'fraction of each pruned matrix to zero' },
  nm: { type: 'string', arg: 'N:M', help: 'N of every M consecutive weights zero (2:4, 4:8), instead of --sparsity' },
  allocation: { type: 'string', arg: ALLOCATIONS.join('|'), default: 'uniform', help: 'how sparsity is shared between blocks' },
  'owl-m': { type: 'string', arg: 'M', range: { integer: false, min: 0, max: 1000, minOpen: true }, default: OWL_DEFAULTS.M, help: 'OWL: a score is an outlier above M times its block mean' },
  'owl-lambda': { type: 'string', arg: 'L', range: { integer: false, min: 0, max: 0.5, maxOpen: true }, default: OWL_DEFAULTS.lambda, help: "OWL: how far a block's sparsity may move from the target" },
  ...CALIBRATION_OPTIONS,
  include: { type: 'string', arg: 'GLOB,..', defaultText: 'every block linear', help: 'prune only modules matching a glob ("model.layers.*.mlp.*")' },
  exclude: { type: 'string', arg: 'GLOB,..', help: 'never prune modules matching a glob' },
  blocksize: { type: 'string', arg: 'N', ...SETTINGS.blocksize, help: `lazy-update block width (${settingReaders('blocksize')})` },
  percdamp: { type: 'string', arg: 'F', ...SETTINGS.percdamp, help: `dampening, a fraction of the mean Hessian diagonal (${settingReaders('percdamp')})` },
  ...RUNTIME_OPTIONS,
} as const satisfies OptionTable;

export const EVALUATION_OPTIONS = {
  eval: { type: 'string', arg: 'FILE', defaultText: 'the bundled TinyStories evaluation text', help: 'evaluation text for dense and pruned perplexity' },
  ...MAX_WINDOWS_OPTION,
} as const satisfies OptionTable;

export function runtime(values: Values<typeof RUNTIME_OPTIONS>): RuntimeSettings {
  const provider = values.provider;
  if (!isProvider(provider)) throw new PruneLensError('usage', `--provider must be one of cpu, webgpu, cuda; got "${provider}"`);
  return { provider, threads: values.threads };
}

function globs(value: string | undefined): string[] {
  return value === undefined ? [] : value.split(',').map((g) => g.trim()).filter((g) => g.length > 0);
}

export function pruneSpec({ values, given }: Parsed<typeof PRUNING_OPTIONS>): PruneSpec {
  const method = parseMethod(values.method);
  if (values.nm !== undefined && given.has('sparsity')) {
    throw new PruneLensError('usage', '--nm fixes the sparsity at N/M; give --sparsity or --nm, not both');
  }
  const nm = values.nm === undefined ? undefined : parseNM(values.nm);
  const update = values.update === undefined ? undefined : parseUpdate(values.update, method);
  return {
    method,
    sparsity: nm ? nm.n / nm.m : values.sparsity,
    nm,
    ...(update !== undefined ? { update } : {}),
    include: globs(values.include),
    exclude: globs(values.exclude),
    blocksize: values.blocksize,
    percdamp: values.percdamp,
  };
}

export function calibrationRequest(values: Values<typeof CALIBRATION_OPTIONS>): CalibrationRequest {
  return { file: values.calib ?? SAMPLE_CALIBRATION_TEXT, nsamples: values.nsamples, seqlen: values.seqlen, seed: values.seed };
}

export function evaluationRequest(values: Values<typeof EVALUATION_OPTIONS & typeof SEQLEN_OPTION>): { file: string; seqlen: number; maxWindows?: number } {
  return { file: values.eval ?? SAMPLE_EVALUATION_TEXT, seqlen: values.seqlen, maxWindows: values['max-windows'] };
}

export function allocationRequest({ values, given }: Parsed<typeof PRUNING_OPTIONS>): Exclude<AllocationRequest, { kind: 'plan' }> {
  const kind = values.allocation;
  if (!(ALLOCATIONS as readonly string[]).includes(kind)) {
    throw new PruneLensError('usage', `--allocation must be one of ${ALLOCATIONS.join(', ')}; got "${kind}"`);
  }
  if (kind !== 'owl' && (given.has('owl-m') || given.has('owl-lambda'))) {
    throw new PruneLensError('usage', '--owl-m and --owl-lambda apply to --allocation owl only');
  }
  switch (kind as Allocation) {
    case 'owl':
      return { kind: 'owl', M: values['owl-m'], lambda: values['owl-lambda'] };
    case 'besa':
      return { kind: 'besa' };
    case 'uniform':
      return { kind: 'uniform' };
  }
}

export const STRUCTURED_OPTIONS = {
  structured: { type: 'string', arg: 'heads|channels|heads,channels|layers|experts', help: 'remove whole heads, MLP channels, layers or experts instead of single weights' },
  ratio: { type: 'string', arg: 'R', range: { integer: false, min: 0, max: 1, minOpen: true, maxOpen: true }, help: 'with --structured: fraction of the parameters to remove (experts: of each layer\'s experts)' },
  metric: { type: 'string', arg: 'NAME,..', defaultText: 'output,flap,bi', help: `with --structured: ranking per part (heads: ${HEAD_METRICS.join(', ')}; channels: ${CHANNEL_METRICS.join(', ')}; layers: ${LAYER_METRICS.join(', ')}; experts: reap, frequency; or random)` },
  remove: { type: 'string', arg: '"3.h2,3.h5,L4"', help: 'remove exactly these heads (layer.hN) and layers (LN); with --structured experts, these experts ("0.e3,1.e2": layer.eN)' },
} as const satisfies OptionTable;

/** --structured heads,channels --ratio 0.2 --metric output,flap: one metric per part, defaults for the rest. */
export function structuredTarget(values: Values<typeof STRUCTURED_OPTIONS & typeof CALIBRATION_OPTIONS>): StructuredTarget {
  const parts = (values.structured ?? '').split(',').map((p) => p.trim());
  const heads = parts.includes('heads');
  const channels = parts.includes('channels');
  const layers = parts.includes('layers');
  const unknown = parts.filter((p) => !['heads', 'channels', 'layers'].includes(p));
  if (unknown.length > 0 || parts.length === 0 || (layers && (heads || channels))) {
    throw new PruneLensError('usage', `--structured takes heads, channels, heads,channels or layers; got "${values.structured}"`);
  }
  const ratio = values.ratio;
  if (ratio === undefined) throw new PruneLensError('usage', '--structured needs --ratio R, the fraction of the parameters to remove');
  const metrics: StructuredTarget['metrics'] = { heads: 'output', channels: 'flap', layers: 'bi' };
  for (const name of (values.metric ?? '').split(',').map((m) => m.trim()).filter(Boolean)) {
    if (name === 'random') Object.assign(metrics, { heads: 'random', channels: 'random', layers: 'random' });
    else if ((HEAD_METRICS as readonly string[]).includes(name)) metrics.heads = name as StructuredTarget['metrics']['heads'];
    else if ((CHANNEL_METRICS as readonly string[]).includes(name)) metrics.channels = name as StructuredTarget['metrics']['channels'];
    else if ((LAYER_METRICS as readonly string[]).includes(name)) metrics.layers = name as StructuredTarget['metrics']['layers'];
    else throw new PruneLensError('usage', `unknown metric "${name}"; heads: ${HEAD_METRICS.join(', ')}; channels: ${CHANNEL_METRICS.join(', ')}; layers: ${LAYER_METRICS.join(', ')}`);
  }
  return { heads, channels, layers, ratio, metrics, seed: values.seed };
}
