import * as path from 'node:path';
import { PruneLensError } from '../../engine/errors';
import { pruneExperts, type ExpertRecord } from '../../engine/experts/expert-prune';
import { formatExpertList, parseExpertList } from '../../engine/experts/expert-list';
import { EXPERT_METRICS, type ExpertMetric } from '../../engine/experts/expert-stats';
import { checkGgufExportable } from '../../engine/export/gguf/export-gguf';
import { expertListOutputName, expertsOutputName, modelFolderOf } from '../../engine/export/output-name';
import { calibrationRequest, evaluationRequest, runtime, type CALIBRATION_OPTIONS, type STRUCTURED_OPTIONS } from '../args';
import { print, singlePositional, table, withProgress, type CliContext, type Values } from '../command';
import { exportAfterPrune, type pruneFormats } from './export';

type ExpertValues = Values<typeof STRUCTURED_OPTIONS & typeof CALIBRATION_OPTIONS> & Parameters<typeof evaluationRequest>[0] & Parameters<typeof runtime>[0] & { out?: string; overwrite?: boolean };

/** `prune --structured experts --ratio R [--metric reap|frequency|random]`: see engine/experts/expert-prune.ts. */
export async function runExpertRemoval(values: ExpertValues, positionals: string[], ctx: CliContext, formats: ReturnType<typeof pruneFormats>): Promise<void> {
  if ((values.ratio === undefined) === (values.remove === undefined)) {
    throw new PruneLensError('usage', '--structured experts needs either --ratio R (the fraction of each layer\'s experts to remove) or --remove "0.e3,0.e5,1.e2" (the experts to remove)');
  }
  const metric = (values.metric ?? 'reap') as ExpertMetric;
  if (!(EXPERT_METRICS as readonly string[]).includes(metric)) throw new PruneLensError('usage', `unknown expert metric "${values.metric}"; one of ${EXPERT_METRICS.join(', ')}`);
  const model = singlePositional(positionals, 'MODEL');
  // Removing or masking experts changes only their count and weights, so a source llama.cpp can run gives an output it can run.
  if (formats.gguf) await checkGgufExportable(model, false);
  const target = values.ratio !== undefined ? { ratio: values.ratio, metric, seed: values.seed } : undefined;
  const explicit = values.remove !== undefined ? { experts: expertRecord(parseExpertList(values.remove)), metric, seed: values.seed } : undefined;
  const options = {
    model,
    out: values.out ?? path.join(path.dirname(modelFolderOf(model)), target ? expertsOutputName(model, target.ratio) : expertListOutputName(model, formatExpertList(explicit!.experts))),
    overwrite: values.overwrite,
    target,
    explicit,
    calibration: calibrationRequest(values),
    evaluation: evaluationRequest(values),
    runtime: runtime(values),
  };
  const record = await withProgress(ctx, (control) => pruneExperts({ ...options, ...control }));
  const gguf = await exportAfterPrune(formats, record.output, ctx);
  print(ctx, { ...expertJson(record), ...gguf.json }, formatExperts(record) + gguf.human);
}

function expertJson(r: ExpertRecord): Record<string, unknown> {
  return {
    out: r.output,
    structured: { experts: true, ...(r.experts.target ?? { remove: formatExpertList(r.experts.explicit!.experts), metric: r.experts.explicit!.metric, seed: r.experts.explicit!.seed }) },
    removed: r.experts.removed,
    masked: r.experts.masked,
    masked_routing: r.experts.maskedRouting,
    config: { ...r.config, experts: r.experts.count, topK: r.experts.topK, expertsBefore: r.experts.countBefore, topKBefore: r.experts.topKBefore },
    params_before: r.parameters.before,
    params_after: r.parameters.after,
    params_removed: r.parameters.removedFraction,
    bytes_before: r.bytes.before,
    bytes_after: r.bytes.after,
    ppl_dense: r.perplexity.dense,
    ppl: r.perplexity.pruned,
    windows: r.evaluation?.windows ?? null,
    seqlen: r.evaluation?.seqlen ?? null,
    eval: r.evaluation,
    calibration: r.calibration,
    seconds: r.seconds.total,
    peak_rss_mb: r.peakRssMb,
    predicted_peak_mb: r.predictedPeakMb,
  };
}

function formatExperts(r: ExpertRecord): string {
  const ppl = (v: number | null): string => (v === null ? '-' : v.toFixed(4));
  return table([
    ['output', r.output],
    ['removed', `${r.experts.countBefore - r.experts.count} of ${r.experts.countBefore} experts per layer${r.experts.target ? ` by ${r.experts.target.metric}` : ''}: ${Object.entries(r.experts.removed).map(([l, e]) => `${l}: ${e.join(',')}`).join('; ')}`],
    ...(r.experts.maskedRouting ? [['masked', maskedLine(r)] as [string, string]] : []),
    ['experts', `${r.experts.count}, top-${r.experts.topK}`],
    ['parameters', `${r.parameters.before.toLocaleString('en-US')} -> ${r.parameters.after.toLocaleString('en-US')} (${(100 * r.parameters.removedFraction).toFixed(2)}% removed)`],
    ['bytes', `${r.bytes.before.toLocaleString('en-US')} -> ${r.bytes.after.toLocaleString('en-US')}`],
    ['', `${'dense'.padEnd(10)}pruned`],
    ['perplexity', `${ppl(r.perplexity.dense).padEnd(10)}${ppl(r.perplexity.pruned)}${r.evaluation ? `   (${r.evaluation.windows} windows of ${r.evaluation.seqlen})` : ''}`],
    ['time', `${r.seconds.total.toFixed(1)} s in all (loading and tokenizing included), peak memory ${r.peakRssMb.toFixed(0)} MiB (${r.predictedPeakMb.toFixed(0)} MiB predicted)`],
  ]);
}

/** "0: 3,5 (0.000% of routings); 2: 1 (0.195%)": masked experts with the routing measured on the written model. */
function maskedLine(r: ExpertRecord): string {
  return Object.entries(r.experts.masked)
    .map(([l, e]) => `${l}: ${e.join(',')} (${(100 * r.experts.maskedRouting![l]!).toFixed(3)}% routings per token)`)
    .join('; ');
}

function expertRecord(pairs: [number, number][]): Record<string, number[]> {
  const out: Record<string, number[]> = {};
  for (const [l, e] of pairs) (out[String(l)] ??= []).push(e);
  return out;
}
