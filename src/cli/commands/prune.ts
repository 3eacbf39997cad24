import * as path from 'node:path';
import { SAMPLE_EVALUATION_TEXT } from '../../engine/embedded';
import { PruneLensError } from '../../engine/errors';
import type { PruneRecord } from '../../engine/export/record';
import { pruneModel } from '../../engine/prune/prune-model';
import type { PruneSpec } from '../../engine/prune/spec';
import { allocationRequest, calibrationRequest, positiveInt, pruneSpec, PRUNING_OPTIONS, runtime, seqlenOf, structuredTarget } from '../args';
import { parse, print, singlePositional, table, withProgress, type CliContext, type Command } from '../command';
import { parseRemoval, structuredPrune, type StructuredRecord } from '../../engine/structured/structured-prune';

export const prune: Command = {
  usage: `prunelens prune [MODEL] [--method magnitude|wanda|sparsegpt|alps] [--update admm] [--sparsity S | --nm N:M]
                 [--allocation uniform|owl|besa] [--owl-m 5] [--owl-lambda 0.08] [--plan FILE]
                 [--calib FILE] [--nsamples 128] [--seqlen 256] [--seed 0]
                 [--eval FILE] [--max-windows K] [--out DIR] [--overwrite]
                 [--include GLOB,..] [--exclude GLOB,..] [--blocksize 128] [--percdamp 0.01]
                 [--provider cpu|webgpu|cuda] [--threads N] [--json]
  prunelens prune [MODEL] --structured heads,channels|heads|channels|layers --ratio R
                 [--metric output|similarity|flap|wanda-sp|bi|ppl|random,..] [--calib FILE] [--nsamples N]
                 [--seqlen N] [--seed 0] [--eval FILE] [--out DIR] [--overwrite] [--json]
  prunelens prune [MODEL] --remove "3.h2,3.h5,L4" [--eval FILE] [--out DIR] [--json]`,
  async run(args, ctx) {
    const { values, positionals } = parse(args, {
      ...PRUNING_OPTIONS,
      plan: { type: 'string' },
      eval: { type: 'string' },
      'max-windows': { type: 'string' },
      out: { type: 'string' },
      overwrite: { type: 'boolean' },
      structured: { type: 'string' },
      ratio: { type: 'string' },
      metric: { type: 'string' },
      remove: { type: 'string' },
    });
    if (values.structured !== undefined || values.remove !== undefined) return runStructured(values, positionals, ctx);
    if (values.plan !== undefined && (values.allocation !== undefined || values.sparsity !== undefined)) {
      throw new PruneLensError('usage', '--plan gives every ratio; it cannot be combined with --allocation or --sparsity');
    }
    const model = singlePositional(positionals, 'MODEL');
    const spec = pruneSpec(values);
    const allocation = values.plan !== undefined ? { kind: 'plan' as const, file: values.plan } : allocationRequest(values);
    const options = {
      model,
      out: values.out ?? defaultOutput(model, spec, values.plan !== undefined ? 'plan' : allocation.kind),
      overwrite: values.overwrite ?? false,
      spec,
      allocation,
      calibration: calibrationRequest(values),
      evaluation: { file: values.eval ?? SAMPLE_EVALUATION_TEXT, seqlen: seqlenOf(values), maxWindows: positiveInt(values['max-windows'], '--max-windows') },
      runtime: runtime(values),
    };
    const record = await withProgress(ctx, (control) => pruneModel({ ...options, ...control }));
    print(ctx, pruneJson(record), formatPrune(record));
  },
};

async function runStructured(values: StructuredValues, positionals: string[], ctx: CliContext): Promise<void> {
  const model = singlePositional(positionals, 'MODEL');
  const target = values.structured !== undefined ? structuredTarget(values) : undefined;
  if (values.remove !== undefined && target) throw new PruneLensError('usage', '--remove names what to remove; it cannot be combined with --structured');
  const explicit = values.remove !== undefined ? parseRemoval(values.remove) : undefined;
  const name = target ? `${[target.heads && 'heads', target.channels && 'channels', target.layers && 'layers'].filter(Boolean).join('-')}-${Math.round(target.ratio * 100)}` : 'removed';
  const options = {
    model,
    out: values.out ?? `${modelFolder(model)}-${name}`,
    overwrite: values.overwrite ?? false,
    target,
    explicit,
    calibration: calibrationRequest(values),
    evaluation: { file: values.eval ?? SAMPLE_EVALUATION_TEXT, seqlen: seqlenOf(values), maxWindows: positiveInt(values['max-windows'], '--max-windows') },
    runtime: runtime(values),
  };
  const record = await withProgress(ctx, (control) => structuredPrune({ ...options, ...control }));
  print(ctx, structuredJson(record), formatStructured(record));
}

function structuredJson(r: StructuredRecord): Record<string, unknown> {
  return {
    out: r.output,
    structured: r.target ? { heads: r.target.heads, channels: r.target.channels, layers: r.target.layers, ratio: r.target.ratio, metrics: r.target.metrics } : null,
    removed: r.removed,
    config: r.config,
    params_before: r.parameters.before,
    params_after: r.parameters.after,
    params_removed: r.parameters.removedFraction,
    bytes_before: r.bytes.before,
    bytes_after: r.bytes.after,
    ppl_dense: r.perplexity.dense,
    ppl: r.perplexity.pruned,
    eval: r.evaluation,
    calibration: r.calibration,
    seconds: r.seconds.total,
    peak_rss_mb: r.peakRssMb,
  };
}

function formatStructured(r: StructuredRecord): string {
  const pct = (v: number): string => `${(100 * v).toFixed(2)}%`;
  const ppl = (v: number | null): string => (v === null ? '-' : v.toFixed(4));
  const heads = Object.entries(r.removed.kvHeads).filter(([, k]) => k.length > 0);
  return table([
    ['output', r.output],
    ['removed', [
      r.removed.layers.length ? `layers ${r.removed.layers.join(', ')}` : '',
      heads.length ? `${heads[0]![1].length} key/value group(s) per layer` : '',
      r.removed.channelsPerLayer ? `${r.removed.channelsPerLayer} MLP channels per layer` : '',
      r.removed.maskedHeads.length ? `heads ${r.removed.maskedHeads.map(([l, h]) => `${l}.h${h}`).join(', ')} zeroed` : '',
    ].filter(Boolean).join('; ')],
    ['shape', `${r.config.numLayers} layers, ${r.config.numHeads} heads (${r.config.numKvHeads} key/value), MLP ${r.config.intermediateSize}`],
    ['parameters', `${r.parameters.before.toLocaleString('en-US')} -> ${r.parameters.after.toLocaleString('en-US')} (${pct(r.parameters.removedFraction)} removed)`],
    ['bytes', `${r.bytes.before.toLocaleString('en-US')} -> ${r.bytes.after.toLocaleString('en-US')}`],
    ['', `${'dense'.padEnd(10)}pruned`],
    ['perplexity', `${ppl(r.perplexity.dense).padEnd(10)}${ppl(r.perplexity.pruned)}`],
    ['time', `${r.seconds.total.toFixed(1)} s, peak memory ${r.peakRssMb.toFixed(0)} MiB`],
  ]);
}

type StructuredValues = Parameters<typeof calibrationRequest>[0] & {
  structured?: string;
  ratio?: string;
  metric?: string;
  remove?: string;
  out?: string;
  overwrite?: boolean;
  eval?: string;
  'max-windows'?: string;
};

function modelFolder(model: string): string {
  return path.resolve(model.endsWith('.json') || model.endsWith('.safetensors') ? path.dirname(model) : model);
}

/** The default output: a folder beside the source named for what was done to it. */
function defaultOutput(model: string, spec: PruneSpec, allocation: string): string {
  const dir = modelFolder(model);
  const target = spec.nm ? `${spec.nm.n}of${spec.nm.m}` : allocation === 'plan' ? 'plan' : `${Math.round(spec.sparsity * 100)}`;
  return `${dir}-${spec.method}${spec.update ? `-${spec.update}` : ''}${allocation === 'uniform' || allocation === 'plan' ? '' : `-${allocation}`}-${target}`;
}

function pruneJson(r: PruneRecord): Record<string, unknown> {
  return {
    out: r.output,
    method: r.method,
    update: r.settings.update,
    nm: r.nm,
    allocation: r.plan.allocation,
    sparsity_requested: r.sparsity,
    sparsity: r.measured.sparsity,
    model_sparsity: r.measured.modelSparsity,
    layer_sparsity: r.layers.map((l) => l.sparsity),
    ppl_dense: r.perplexity.dense,
    ppl: r.perplexity.pruned,
    eval: r.evaluation,
    calibration: r.calibration,
    seconds: r.seconds.total,
    prune_seconds: r.seconds.prune,
    peak_rss_mb: r.peakRssMb,
  };
}

function formatPrune(r: PruneRecord): string {
  const pct = (v: number): string => `${(100 * v).toFixed(2)}%`;
  const ppl = (v: number | null): string => (v === null ? '-' : v.toFixed(4));
  return table([
    ['output', r.output],
    ['method', `${r.method}${r.settings.update ? ` + ${r.settings.update} update` : ''}, ${r.nm ? `${r.nm} N:M` : `${pct(r.sparsity)} unstructured`}, ${r.plan.allocation} allocation`],
    ...(r.calibration ? [['calibration', `${r.calibration.nsamples} x ${r.calibration.seqlen} tokens from ${r.calibration.file}, seed ${r.calibration.seed}`] as [string, string]] : []),
    ['', `${'dense'.padEnd(10)}pruned`],
    ['perplexity', `${ppl(r.perplexity.dense).padEnd(10)}${ppl(r.perplexity.pruned)}${r.evaluation ? `   (${r.evaluation.windows} windows of ${r.evaluation.seqlen})` : ''}`],
    ['sparsity', `${pct(r.measured.sparsity)} of the pruned linears, ${pct(r.measured.modelSparsity)} of all parameters`],
    ['per block', r.layers.map((l) => pct(l.sparsity)).join(' ')],
    ['time', `pruning ${r.seconds.prune.toFixed(1)} s, whole run ${r.seconds.total.toFixed(1)} s`],
    ['peak memory', `${r.peakRssMb.toFixed(0)} MiB resident`],
  ]);
}
