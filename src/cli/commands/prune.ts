import * as path from 'node:path';
import { blocksFingerprint, readPlan } from '../../engine/allocate/plan-file';
import { PruneLensError } from '../../engine/errors';
import { modelFolderOf, planLabel, pruneOutputName, removalOutputName, structuredOutputName } from '../../engine/export/output-name';
import type { PruneRecord } from '../../engine/export/record';
import { checkGgufExportable } from '../../engine/export/gguf/export-gguf';
import { Checkpoint } from '../../engine/io/checkpoint';
import { pruneModel } from '../../engine/prune/prune-model';
import { METHOD_LABELS, METHOD_NAMES, UPDATE_NAMES } from '../../engine/prune/methods/catalog';
import { SETTINGS, type PruneSpec } from '../../engine/prune/spec';
import { allocationRequest, calibrationRequest, evaluationRequest, EVALUATION_OPTIONS, pruneSpec, PRUNING_OPTIONS, runtime, STRUCTURED_OPTIONS, structuredTarget } from '../args';
import { defineCommand, print, singlePositional, table, withProgress, type CliContext, type Parsed } from '../command';
import { parseRemoval, structuredPrune, type StructuredRecord } from '../../engine/structured/structured-prune';
import { exportAfterPrune, pruneFormats } from './export';
import { runExpertRemoval } from './prune-experts';

const PRUNE_OPTIONS = {
  ...PRUNING_OPTIONS,
  plan: { type: 'string', arg: 'FILE', help: 'prune by a plan file (from "prunelens plan", edited or not) instead of --allocation/--sparsity' },
  ...EVALUATION_OPTIONS,
  out: { type: 'string', arg: 'DIR', defaultText: 'beside the model, named for what was done', help: 'the new model folder' },
  overwrite: { type: 'boolean', help: 'replace an earlier PruneLens output that holds nothing else of yours, never anything else' },
  resume: { type: 'boolean', help: 'continue a killed run of the same command from its last completed decoder block' },
  format: { type: 'string', arg: 'hf|hf,gguf', default: 'hf', help: 'hf,gguf also writes <out>-f16.gguf beside the folder, for llama.cpp' },
  ...STRUCTURED_OPTIONS,
} as const;

export const prune = defineCommand({
  synopsis: [
    `[MODEL] [--method ${METHOD_NAMES.join('|')}] [--update ${UPDATE_NAMES.join('|')}] [--sparsity S | --nm N:M]
                 [--allocation uniform|owl|besa] [--owl-m 5] [--owl-lambda 0.08] [--plan FILE]
                 [--calib FILE] [--nsamples 128] [--seqlen 256] [--seed 0]
                 [--eval FILE] [--max-windows K] [--out DIR] [--overwrite] [--resume] [--format hf|hf,gguf]
                 [--include GLOB,..] [--exclude GLOB,..] [--blocksize ${SETTINGS.blocksize.default}] [--percdamp ${SETTINGS.percdamp.default}]
                 [--provider cpu|webgpu|cuda] [--threads N] [--json]`,
    `[MODEL] --structured heads,channels|heads|channels|layers --ratio R
                 [--metric output|similarity|flap|wanda-sp|bi|ppl|random,..] [--calib FILE] [--nsamples N]
                 [--seqlen N] [--seed 0] [--eval FILE] [--out DIR] [--overwrite] [--format hf|hf,gguf] [--json]`,
    `[MODEL] --remove "3.h2,3.h5,L4" [--eval FILE] [--out DIR] [--json]`,
    `[MODEL] --structured experts --ratio R [--metric reap|frequency|random] [--calib FILE] [--nsamples N]
                 [--seqlen N] [--seed 0] [--eval FILE] [--out DIR] [--overwrite] [--format hf|hf,gguf] [--json]`,
    `[MODEL] --structured experts --remove "0.e3,0.e5,1.e2" [--metric reap|frequency|random] [--calib FILE]
                 [--nsamples N] [--seqlen N] [--eval FILE] [--out DIR] [--overwrite] [--format hf|hf,gguf] [--json]`,
  ],
  summary: 'Prune a checkpoint into a new folder and report dense and pruned perplexity.',
  details: `Unstructured (--sparsity, by an --allocation or a --plan file) or N:M (--nm) with one of the methods
(${Object.values(METHOD_LABELS).join(', ')}); or structured (--structured, --remove), which removes whole heads, MLP channels or layers
(or, in a mixture-of-experts model, a --ratio of each layer's experts, lowest REAP first, or the experts --remove names:
the count every layer names is cut out, the rest masked, lowest --metric cut first) and writes a smaller model. The source is never modified: the output is built under a temporary
name and renamed into place when complete. The default output name says what was done, including
--include/--exclude and the plan's fingerprint, so differently pruned models never share a folder.`,
  options: PRUNE_OPTIONS,
  async run(parsed, ctx) {
    const { values, positionals, given } = parsed;
    const formats = pruneFormats(values.format, values.overwrite);
    if (values.structured !== undefined || values.remove !== undefined) {
      if (values.resume) throw new PruneLensError('usage', '--resume continues unstructured pruning only; a structured prune is rerun from the start');
      if (values.structured === 'experts') return runExpertRemoval(values, positionals, ctx, formats);
      return runStructured(values, positionals, ctx, formats);
    }
    const withPlan = ['allocation', 'sparsity', 'owl-m', 'owl-lambda'].filter((o) => given.has(o));
    if (values.plan !== undefined && withPlan.length > 0) {
      throw new PruneLensError('usage', `--plan gives every ratio; it cannot be combined with ${withPlan.map((o) => `--${o}`).join(', ')}`);
    }
    const model = singlePositional(positionals, 'MODEL');
    if (formats.gguf) await checkGgufExportable(model, false);
    const spec = pruneSpec(parsed);
    const allocation = values.plan !== undefined ? { kind: 'plan' as const, file: values.plan } : allocationRequest(parsed);
    const options = {
      model,
      out: values.out ?? (await defaultOutput(model, spec, allocation)),
      overwrite: values.overwrite,
      resume: values.resume,
      spec,
      allocation,
      calibration: calibrationRequest(values),
      evaluation: evaluationRequest(values),
      runtime: runtime(values),
    };
    const record = await withProgress(ctx, (control) => pruneModel({ ...options, ...control }));
    const gguf = await exportAfterPrune(formats, record.output, ctx);
    print(ctx, { ...pruneJson(record), ...gguf.json }, formatPrune(record) + gguf.human);
  },
});

async function runStructured(values: Parsed<typeof PRUNE_OPTIONS>['values'], positionals: string[], ctx: CliContext, formats: ReturnType<typeof pruneFormats>): Promise<void> {
  const model = singlePositional(positionals, 'MODEL');
  const target = values.structured !== undefined ? structuredTarget(values) : undefined;
  if (values.remove !== undefined && target) throw new PruneLensError('usage', '--remove names what to remove; it cannot be combined with --structured');
  const explicit = values.remove !== undefined ? parseRemoval(values.remove) : undefined;
  if (formats.gguf) await checkGgufExportable(model, target?.heads === true || (explicit?.heads.length ?? 0) > 0);
  const name = target ? structuredOutputName(model, target) : removalOutputName(model, explicit!);
  const options = {
    model,
    out: values.out ?? path.join(path.dirname(modelFolderOf(model)), name),
    overwrite: values.overwrite,
    target,
    explicit,
    calibration: calibrationRequest(values),
    evaluation: evaluationRequest(values),
    runtime: runtime(values),
  };
  const record = await withProgress(ctx, (control) => structuredPrune({ ...options, ...control }));
  const gguf = await exportAfterPrune(formats, record.output, ctx);
  print(ctx, { ...structuredJson(record), ...gguf.json }, formatStructured(record) + gguf.human);
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
    windows: r.evaluation?.windows ?? null,
    seqlen: r.evaluation?.seqlen ?? null,
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
    ['perplexity', `${ppl(r.perplexity.dense).padEnd(10)}${ppl(r.perplexity.pruned)}${r.evaluation ? `   (${r.evaluation.windows} windows of ${r.evaluation.seqlen})` : ''}`],
    ['time', `${r.seconds.total.toFixed(1)} s in all (loading and tokenizing included), peak memory ${r.peakRssMb.toFixed(0)} MiB`],
  ]);
}

/** The default output: a folder beside the source named for what was done to it (the engine's naming). */
async function defaultOutput(model: string, spec: PruneSpec, allocation: { kind: string; file?: string }): Promise<string> {
  const target = spec.nm ? { kind: 'nm' as const, nm: spec.nm } : { kind: 'sparsity' as const, sparsity: spec.sparsity };
  let label = allocation.kind;
  let amount = target;
  if (allocation.file !== undefined) {
    // A plan is named for its ratios, so two different plans never share a folder; reading it here
    // also refuses a bad plan before any work. The engine reads it again, as it does for --out.
    const checkpoint = await Checkpoint.open(model);
    const plan = await readPlan(allocation.file, checkpoint.config).finally(() => checkpoint.close());
    label = planLabel(blocksFingerprint(plan.blocks));
    amount = { kind: 'sparsity', sparsity: plan.target };
  }
  return path.join(path.dirname(modelFolderOf(model)), pruneOutputName(model, spec.update ? `${spec.method}-${spec.update}` : spec.method, amount, label, spec));
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
    windows: r.evaluation?.windows ?? null,
    seqlen: r.evaluation?.seqlen ?? null,
    eval: r.evaluation,
    calibration: r.calibration,
    seconds: r.seconds.total,
    prune_seconds: r.seconds.prune,
    peak_rss_mb: r.peakRssMb,
    predicted_peak_mb: r.predictedPeakMb ?? null,
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
    ['time', `pruning ${r.seconds.prune.toFixed(1)} s, whole run ${r.seconds.total.toFixed(1)} s (loading and tokenizing included)`],
    ['peak memory', `${r.peakRssMb.toFixed(0)} MiB resident${r.predictedPeakMb === undefined ? '' : `, ${r.predictedPeakMb.toFixed(0)} MiB predicted`}`],
  ]);
}
