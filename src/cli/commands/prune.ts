import * as path from 'node:path';
import type { PruneRecord } from '../../engine/export/record';
import { pruneModel, type PruneModelOptions } from '../../engine/prune/prune-model';
import type { PruneSpec } from '../../engine/prune/spec';
import type { RunControl } from '../../engine/progress';

export function prune(options: Omit<PruneModelOptions, keyof RunControl>, control: RunControl): Promise<PruneRecord> {
  return pruneModel({ ...options, ...control });
}

/** The default output: a folder beside the source named for what was done to it. */
export function defaultOutput(model: string, spec: PruneSpec): string {
  const dir = path.resolve(model.endsWith('.json') || model.endsWith('.safetensors') ? path.dirname(model) : model);
  const target = spec.nm ? `${spec.nm.n}of${spec.nm.m}` : `${Math.round(spec.sparsity * 100)}`;
  return `${dir}-${spec.method}-${target}`;
}

export function pruneJson(r: PruneRecord): Record<string, unknown> {
  return {
    out: r.output,
    method: r.method,
    nm: r.nm,
    sparsity_requested: r.sparsity,
    sparsity: r.measured.sparsity,
    model_sparsity: r.measured.modelSparsity,
    ppl_dense: r.perplexity.dense,
    ppl: r.perplexity.pruned,
    eval: r.evaluation,
    calibration: r.calibration,
    seconds: r.seconds.total,
    prune_seconds: r.seconds.prune,
    peak_rss_mb: r.peakRssMb,
  };
}

export function formatPrune(r: PruneRecord): string {
  const pct = (v: number): string => `${(100 * v).toFixed(2)}%`;
  const ppl = (v: number | null): string => (v === null ? '-' : v.toFixed(4));
  const rows = [
    ['output', r.output],
    ['method', `${r.method}, ${r.nm ? `${r.nm} N:M` : `${pct(r.sparsity)} unstructured`}`],
    ...(r.calibration ? [['calibration', `${r.calibration.nsamples} x ${r.calibration.seqlen} tokens from ${r.calibration.file}, seed ${r.calibration.seed}`]] : []),
    ['', `${'dense'.padEnd(10)}pruned`],
    ['perplexity', `${ppl(r.perplexity.dense).padEnd(10)}${ppl(r.perplexity.pruned)}${r.evaluation ? `   (${r.evaluation.windows} windows of ${r.evaluation.seqlen})` : ''}`],
    ['sparsity', `${pct(r.measured.sparsity)} of the pruned linears, ${pct(r.measured.modelSparsity)} of all parameters`],
    ['time', `pruning ${r.seconds.prune.toFixed(1)} s, whole run ${r.seconds.total.toFixed(1)} s`],
    ['peak memory', `${r.peakRssMb.toFixed(0)} MiB resident`],
  ];
  return rows.map(([k, v]) => `${k!.padEnd(13)}${v}`).join('\n');
}
