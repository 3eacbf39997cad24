import * as path from 'node:path';
import { SAMPLE_EVALUATION_TEXT } from '../../engine/embedded';
import { PruneLensError } from '../../engine/errors';
import type { PruneRecord } from '../../engine/export/record';
import { pruneModel } from '../../engine/prune/prune-model';
import type { PruneSpec } from '../../engine/prune/spec';
import { allocationRequest, calibrationRequest, positiveInt, pruneSpec, PRUNING_OPTIONS, runtime, seqlenOf } from '../args';
import { parse, print, singlePositional, table, withProgress, type Command } from '../command';

export const prune: Command = {
  usage: `prunelens prune [MODEL] [--method magnitude|wanda|sparsegpt] [--sparsity S | --nm N:M]
                 [--allocation uniform|owl|besa] [--owl-m 5] [--owl-lambda 0.08] [--plan FILE]
                 [--calib FILE] [--nsamples 128] [--seqlen 256] [--seed 0]
                 [--eval FILE] [--max-windows K] [--out DIR] [--overwrite]
                 [--include GLOB,..] [--exclude GLOB,..] [--blocksize 128] [--percdamp 0.01]
                 [--provider cpu|webgpu|cuda] [--threads N] [--json]`,
  async run(args, ctx) {
    const { values, positionals } = parse(args, {
      ...PRUNING_OPTIONS,
      plan: { type: 'string' },
      eval: { type: 'string' },
      'max-windows': { type: 'string' },
      out: { type: 'string' },
      overwrite: { type: 'boolean' },
    });
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

/** The default output: a folder beside the source named for what was done to it. */
function defaultOutput(model: string, spec: PruneSpec, allocation: string): string {
  const dir = path.resolve(model.endsWith('.json') || model.endsWith('.safetensors') ? path.dirname(model) : model);
  const target = spec.nm ? `${spec.nm.n}of${spec.nm.m}` : allocation === 'plan' ? 'plan' : `${Math.round(spec.sparsity * 100)}`;
  return `${dir}-${spec.method}${allocation === 'uniform' || allocation === 'plan' ? '' : `-${allocation}`}-${target}`;
}

function pruneJson(r: PruneRecord): Record<string, unknown> {
  return {
    out: r.output,
    method: r.method,
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
    ['method', `${r.method}, ${r.nm ? `${r.nm} N:M` : `${pct(r.sparsity)} unstructured`}, ${r.plan.allocation} allocation`],
    ...(r.calibration ? [['calibration', `${r.calibration.nsamples} x ${r.calibration.seqlen} tokens from ${r.calibration.file}, seed ${r.calibration.seed}`] as [string, string]] : []),
    ['', `${'dense'.padEnd(10)}pruned`],
    ['perplexity', `${ppl(r.perplexity.dense).padEnd(10)}${ppl(r.perplexity.pruned)}${r.evaluation ? `   (${r.evaluation.windows} windows of ${r.evaluation.seqlen})` : ''}`],
    ['sparsity', `${pct(r.measured.sparsity)} of the pruned linears, ${pct(r.measured.modelSparsity)} of all parameters`],
    ['per block', r.layers.map((l) => pct(l.sparsity)).join(' ')],
    ['time', `pruning ${r.seconds.prune.toFixed(1)} s, whole run ${r.seconds.total.toFixed(1)} s`],
    ['peak memory', `${r.peakRssMb.toFixed(0)} MiB resident`],
  ]);
}
