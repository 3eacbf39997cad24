/**
 * `npm run bench`: evaluates and prunes the embedded model and random-weight stand-ins of real model
 * shapes, each run in its own CLI process so each row's peak memory is its own, and prints one
 * Markdown table for evaluation, one for pruning and one for what structured pruning buys in speed.
 */
import { existsSync, promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { Checkpoint } from '../src/engine/io/checkpoint';
import { parameterCount } from '../src/engine/model/config';
import { METHOD_NAMES as METHODS, type Method } from '../src/engine/prune/methods';
import { CALIB_TEXT, CLI, EMBEDDED, EVAL_TEXT, ROOT, formatCount, logTo, modelFolder as cachedModelFolder, modelName, runCli, type ModelSource } from './bench-common';
import { evalFlops, formatBound, measureGemmGflops, pruneFlops } from './matmul-bound';
import { MOE_ROWS, moeTable, runMoeRow, type MoeBenchFailure, type MoeBenchResult } from './moe-bench';
import { runPartialPrune, type PartialPruneResult } from './partial-prune';
import { runTokenizeBench, tokenizeTable, type TokenizeBenchResult } from './tokenize-bench';

const SHARED_DATA = path.resolve(ROOT, '..', 'shared', 'data');
/** `--only tokenize` runs just the tokenize table; `--only a,b` runs the rows named. */
const TOKENIZE = 'tokenize';
const PRUNE_SPARSITY = 0.5;
const log = logTo('bench');
const modelFolder = (source: ModelSource): Promise<string> => cachedModelFolder(source, log);

interface Row {
  name: string;
  model: ModelSource;
  seqlen: number;
  /**
   * Omitted: every window of the text. Large models are capped to about 10-30 s on 2 cores: on the
   * reference machine SmolLM ran ~650 tokens/s and TinyLlama ~40 tokens/s.
   */
  maxWindows?: number;
  /** Runs of tens of minutes to hours on 2 cores: only with --large or when --only names the row. */
  large?: boolean;
}

const ROWS: Row[] = [
  { name: 'stories260K', model: { embedded: EMBEDDED }, seqlen: 256 },
  { name: 'smollm-135m', model: { random: 'smollm-135m', dtype: 'BF16' }, seqlen: 256, maxWindows: 40 },
  { name: 'tinyllama-1.1b', model: { random: 'tinyllama-1.1b', dtype: 'BF16' }, seqlen: 256, maxWindows: 2 },
  { name: 'llama-3.2-1b', model: { random: 'llama-3.2-1b', dtype: 'BF16' }, seqlen: 256, maxWindows: 2 },
  { name: 'qwen3-0.6b', model: { random: 'qwen3-0.6b', dtype: 'BF16' }, seqlen: 256, maxWindows: 2 },
  { name: 'llama-3.1-8b', model: { random: 'llama-3.1-8b', dtype: 'BF16' }, seqlen: 256, maxWindows: 1, large: true },
];

/** `seqlen` serves calibration and evaluation alike, as the CLI takes only one. */
interface PruneRow extends Row {
  method: Method;
  nsamples: number;
}

const PRUNE_ROWS: PruneRow[] = [
  ...METHODS.map((method) => ({
    name: `prune:stories260K:${method}`,
    model: { embedded: EMBEDDED },
    method,
    nsamples: 128,
    seqlen: 256,
  })),
  // Sized so the slowest method (SparseGPT) takes about 2 minutes on 2 cores; a random model's
  // perplexity only shows that evaluation runs, so 4 windows suffice.
  ...METHODS.map((method) => ({
    name: `prune:smollm-135m:${method}`,
    model: { random: 'smollm-135m', dtype: 'BF16' } as const,
    method,
    nsamples: 16,
    seqlen: 512,
    maxWindows: 4,
  })),
  // Issue 14's sizes: Wanda and SparseGPT on the 1.1B shape and Wanda on Llama-3.2-1B's (16 x 512), Wanda on an 8B shape (8 x 512).
  ...(['wanda', 'sparsegpt'] as const).map((method) => ({
    name: `prune:tinyllama-1.1b:${method}`,
    model: { random: 'tinyllama-1.1b', dtype: 'BF16' } as const,
    method,
    nsamples: 16,
    seqlen: 512,
    maxWindows: 1,
    large: true,
  })),
  { name: 'prune:llama-3.2-1b:wanda', model: { random: 'llama-3.2-1b', dtype: 'BF16' }, method: 'wanda', nsamples: 16, seqlen: 512, maxWindows: 1, large: true },
  { name: 'prune:llama-3.1-8b:wanda', model: { random: 'llama-3.1-8b', dtype: 'BF16' }, method: 'wanda', nsamples: 8, seqlen: 512, maxWindows: 1, large: true },
];

/** A prune that takes hours here, timed over its first `blocks` decoder blocks, cancelled and projected. */
interface PartialRow extends PruneRow {
  blocks: number;
}

const PARTIAL_ROWS: PartialRow[] = [
  { name: 'prune:llama-3.1-8b:sparsegpt', model: { random: 'llama-3.1-8b', dtype: 'BF16' }, method: 'sparsegpt', nsamples: 8, seqlen: 512, maxWindows: 1, blocks: 2, large: true },
];

/** Structured pruning shrinks the model, so unlike unstructured sparsity it should run faster. */
interface StructuredRow {
  name: string;
  /** The --structured parts pruned away; none for the dense model the others are compared with. */
  structured?: 'heads,channels' | 'layers';
}

// Random weights make every metric's scores meaningless, so the cheapest (random, no calibration) is used.
const STRUCTURED_MODEL = { random: 'smollm-135m', dtype: 'BF16' } as const;
const STRUCTURED_RATIO = 0.2;
const STRUCTURED_ROWS: StructuredRow[] = [
  { name: 'structured:smollm-135m:dense' },
  { name: 'structured:smollm-135m:heads-channels', structured: 'heads,channels' },
  { name: 'structured:smollm-135m:layers', structured: 'layers' },
];
/** Windows of 256 tokens: about 10 s of scoring for the dense model on the reference machine's 2 cores. */
const STRUCTURED_EVAL_WINDOWS = 24;
const GENERATE_TOKENS = 32;

/** What `prunelens eval --json` prints (the fields the bench reads). */
interface EvalResult {
  ppl: number;
  nll: number;
  tokens: number;
  windows: number;
  seqlen: number;
  seconds: number;
  tokens_per_second: number;
  peak_rss_mb: number;
  predicted_peak_mb: number;
}

interface BenchResult {
  name: string;
  params: number;
  dtype: string;
  eval: EvalResult;
  /** The evaluation's FLOPs in matrix products (matmul-bound.ts); undefined where not counted. */
  flops?: number;
}

/** What `prunelens prune --json` prints (the fields the bench reads); perplexities are set as every row passes --eval. */
interface PruneResult {
  method: Method;
  sparsity: number;
  ppl_dense: number;
  ppl: number;
  seconds: number;
  prune_seconds: number;
  peak_rss_mb: number;
  predicted_peak_mb: number;
  /** Null for magnitude, which ignores calibration. */
  calibration: { nsamples: number; seqlen: number } | null;
}

interface PartialBenchResult {
  name: string;
  model: string;
  row: PartialRow;
  partial: PartialPruneResult;
  /** One block's FLOPs in matrix products (matmul-bound.ts). */
  blockFlops?: number;
}

interface PruneBenchResult {
  name: string;
  model: string;
  prune: PruneResult;
  /** The pruning's FLOPs in matrix products (matmul-bound.ts); undefined where not counted. */
  flops?: number;
}

/** What `prunelens prune --structured --json` prints (the fields the bench reads). */
interface StructuredPruneResult {
  params_before: number;
  params_after: number;
  params_removed: number;
  bytes_before: number;
  bytes_after: number;
}

/** What `prunelens generate --json` prints (the fields the bench reads). */
interface GenerateResult {
  new_tokens: number;
  seconds: number;
  tokens_per_second: number;
  peak_rss_mb: number;
}

interface StructuredBenchResult {
  name: string;
  structured: StructuredRow['structured'];
  params: number;
  bytes: number;
  eval: EvalResult;
  generate: GenerateResult;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      only: { type: 'string' },
      json: { type: 'boolean', default: false },
      'skip-eval': { type: 'boolean', default: false },
      'skip-prune': { type: 'boolean', default: false },
      'skip-structured': { type: 'boolean', default: false },
      'skip-tokenize': { type: 'boolean', default: false },
      'skip-moe': { type: 'boolean', default: false },
      'skip-partial': { type: 'boolean', default: false },
      large: { type: 'boolean', default: false },
    },
  });
  const only = values.only?.split(',');
  const tokenizeRun = !values['skip-tokenize'] && (only === undefined || only.includes(TOKENIZE));
  const pick = <T extends { name: string; large?: boolean }>(all: T[], skip: boolean): T[] =>
    skip ? [] : all.filter((r) => (only === undefined ? !r.large || values.large : only.includes(r.name)));
  const evalRows = pick(ROWS, values['skip-eval']);
  const pruneRows = pick(PRUNE_ROWS, values['skip-prune']);
  const structuredRows = pick(STRUCTURED_ROWS, values['skip-structured']);
  const moeRows = pick(MOE_ROWS, values['skip-moe']);
  const partialRows = pick(PARTIAL_ROWS, values['skip-partial']);
  if (evalRows.length + pruneRows.length + structuredRows.length + moeRows.length + partialRows.length === 0 && !tokenizeRun) {
    const names = [
      ...(values['skip-eval'] ? [] : ROWS),
      ...(values['skip-prune'] ? [] : PRUNE_ROWS),
      ...(values['skip-partial'] ? [] : PARTIAL_ROWS),
      ...(values['skip-structured'] ? [] : STRUCTURED_ROWS),
      ...(values['skip-moe'] ? [] : MOE_ROWS),
    ].map((r) => r.name);
    throw new Error(`no rows to run${values.only === undefined ? '' : ` for --only ${values.only}`}; rows: ${names.join(', ') || 'none'}`);
  }
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing; build it with npm run build`);

  // In this process (its workers are what is timed), before any CLI child runs.
  const tokenized: TokenizeBenchResult[] = tokenizeRun ? await runTokenizeBench(SHARED_DATA, EMBEDDED, log) : [];
  // Measured here, before any CLI child runs, on all cores as the CLI uses them.
  const gflops = evalRows.length + pruneRows.length + partialRows.length > 0 ? await measureGemmGflops() : 0;
  if (gflops > 0) log(`ORT Gemm (${os.cpus().length} cores): ${gflops.toFixed(1)} GFLOP/s, the rate behind the matmul-bound estimates`);

  const evals: BenchResult[] = [];
  for (const row of evalRows) {
    const dir = await modelFolder(row.model);
    const checkpoint = await Checkpoint.open(dir);
    const cfg = checkpoint.config;
    const dtype = checkpoint.dtype;
    await checkpoint.close();
    log(`${row.name}: evaluating ${row.maxWindows ?? 'all'} windows of ${row.seqlen}`);
    const e = await runEval(dir, row);
    evals.push({ name: row.name, params: parameterCount(cfg), dtype, eval: e, flops: evalFlops(cfg, e.windows, e.seqlen) });
    // Each result as it comes, so a bench stopped part-way still leaves what it measured.
    log(`${row.name}: ${JSON.stringify(e)}`);
  }

  const prunes: PruneBenchResult[] = [];
  const structured: StructuredBenchResult[] = [];
  const moes: (MoeBenchResult | MoeBenchFailure)[] = [];
  const partials: PartialBenchResult[] = [];
  if (pruneRows.length + structuredRows.length + moeRows.length + partialRows.length > 0) {
    // Pruned checkpoints are only written to be measured; none outlives the bench.
    const outRoot = await fsp.mkdtemp(path.join(os.tmpdir(), 'prunelens-bench-'));
    // ':' in row names is not allowed in Windows file names.
    const outFor = (row: { name: string }): string => path.join(outRoot, row.name.replaceAll(':', '-'));
    try {
      for (const row of pruneRows) {
        const dir = await modelFolder(row.model);
        log(`${row.name}: pruning to ${PRUNE_SPARSITY} with ${row.nsamples} x ${row.seqlen} calibration, evaluating ${row.maxWindows ?? 'all'} windows`);
        const checkpoint = await Checkpoint.open(dir);
        const cfg = checkpoint.config;
        await checkpoint.close();
        prunes.push({ name: row.name, model: modelName(row.model), prune: await runPrune(dir, outFor(row), row), flops: pruneFlops(cfg, row.method, row.nsamples, row.seqlen) });
        log(`${row.name}: ${JSON.stringify(prunes.at(-1)!.prune)}`);
      }
      if (structuredRows.length > 0) {
        const dense = await modelFolder(STRUCTURED_MODEL);
        for (const row of structuredRows) structured.push(await runStructured(dense, outFor(row), row));
      }
      for (const row of moeRows) moes.push(await runMoeRow(row, outRoot, log));
      for (const row of partialRows) {
        const dir = await modelFolder(row.model);
        log(`${row.name}: pruning to ${PRUNE_SPARSITY} with ${row.nsamples} x ${row.seqlen} calibration, timing ${row.blocks} blocks, then cancelling`);
        const checkpoint = await Checkpoint.open(dir);
        const cfg = checkpoint.config;
        await checkpoint.close();
        const flops = pruneFlops(cfg, row.method, row.nsamples, row.seqlen);
        const partial = await runPartialPrune(row.name, pruneArgs(dir, row), outFor(row), row.blocks, log);
        partials.push({ name: row.name, model: modelName(row.model), row, partial, blockFlops: flops === undefined ? undefined : flops / cfg.numLayers });
        log(`${row.name}: ${JSON.stringify(partial)}`);
      }
    } finally {
      await fsp.rm(outRoot, { recursive: true, force: true });
    }
  }

  if (values.json) {
    process.stdout.write(JSON.stringify({ tokenize: tokenized, gemm_gflops: gflops, eval: evals, prune: prunes, partial: partials, structured, moe: moes }, null, 2) + '\n');
    return;
  }
  const tables = [
    ...(tokenized.length > 0 ? [tokenizeTable(tokenized)] : []),
    ...(evals.length > 0 ? [evalTable(evals, gflops)] : []),
    ...(prunes.length > 0 ? [pruneTable(prunes, gflops)] : []),
    ...(partials.length > 0 ? [partialTable(partials, gflops)] : []),
    ...(structured.length > 0 ? [structuredTable(structured)] : []),
    ...(moes.length > 0 ? [moeTable(moes)] : []),
  ];
  process.stdout.write(tables.join('\n'));
}

function runEval(dir: string, row: Row): Promise<EvalResult> {
  const args = ['eval', dir, '--text', EVAL_TEXT, '--seqlen', String(row.seqlen), '--json'];
  if (row.maxWindows !== undefined) args.push('--max-windows', String(row.maxWindows));
  return runCli<EvalResult>(row.name, args);
}

function runPrune(dir: string, out: string, row: PruneRow): Promise<PruneResult> {
  return runCli<PruneResult>(row.name, [...pruneArgs(dir, row), '--out', out, '--overwrite', '--json']);
}

function pruneArgs(dir: string, row: PruneRow): string[] {
  const args = [
    'prune', dir,
    '--method', row.method,
    '--sparsity', String(PRUNE_SPARSITY),
    '--calib', CALIB_TEXT,
    '--nsamples', String(row.nsamples),
    '--seqlen', String(row.seqlen),
    '--eval', EVAL_TEXT,
  ];
  if (row.maxWindows !== undefined) args.push('--max-windows', String(row.maxWindows));
  return args;
}

/** Prunes the dense model into `out` (unless the row is the dense one), then scores and generates with the result. */
async function runStructured(dense: string, out: string, row: StructuredRow): Promise<StructuredBenchResult> {
  let dir = dense;
  let size: { params: number; bytes: number };
  if (row.structured === undefined) {
    const checkpoint = await Checkpoint.open(dense);
    size = { params: parameterCount(checkpoint.config), bytes: checkpoint.bytesOnDisk };
    await checkpoint.close();
  } else {
    dir = out;
    log(`${row.name}: removing ${row.structured} for ${STRUCTURED_RATIO} of the parameters (random metric)`);
    const pruned = await runCli<StructuredPruneResult>(row.name, [
      'prune', dense,
      '--structured', row.structured,
      '--ratio', String(STRUCTURED_RATIO),
      '--metric', 'random',
      '--max-windows', '2',
      '--out', out,
      '--json',
    ]);
    size = { params: pruned.params_after, bytes: pruned.bytes_after };
  }
  log(`${row.name}: scoring ${STRUCTURED_EVAL_WINDOWS} windows, generating ${GENERATE_TOKENS} tokens`);
  const evalResult = await runCli<EvalResult>(row.name, ['eval', dir, '--text', EVAL_TEXT, '--max-windows', String(STRUCTURED_EVAL_WINDOWS), '--json']);
  const generated = await runCli<GenerateResult>(row.name, ['generate', dir, '--tokens', String(GENERATE_TOKENS), '--json']);
  return { name: row.name, structured: row.structured, ...size, eval: evalResult, generate: generated };
}

function evalTable(results: BenchResult[], gflops: number): string {
  const lines = [
    `| model | params | dtype | windows x seqlen | eval tokens/s | seconds | matmul bound at ${gflops.toFixed(0)} GFLOP/s (measured / bound) | peak RSS (MB) | predicted (MB) | ppl |`,
    '| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
  ];
  for (const { name, params, dtype, eval: e, flops } of results) {
    const cells = [
      name,
      formatCount(params),
      dtype,
      `${e.windows} x ${e.seqlen}`,
      e.tokens_per_second.toFixed(0),
      e.seconds.toFixed(1),
      formatBound(flops, gflops, e.seconds),
      e.peak_rss_mb.toFixed(0),
      e.predicted_peak_mb.toFixed(0),
      e.ppl.toPrecision(5),
    ];
    lines.push(`| ${cells.join(' | ')} |`);
  }
  return lines.join('\n') + '\n';
}

function pruneTable(results: PruneBenchResult[], gflops: number): string {
  const lines = [
    `| model | method | calibration (windows x seqlen) | prune seconds | matmul bound at ${gflops.toFixed(0)} GFLOP/s (measured / bound) | vs sparsegpt | whole run seconds | peak RSS (MB) | predicted (MB) | ppl dense | ppl pruned | measured sparsity |`,
    '| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
  ];
  // The goal for ALPS (issue 13): at most 3x SparseGPT's pruning time on the same model.
  const sparsegptSeconds = new Map(results.filter((r) => r.prune.method === 'sparsegpt').map((r) => [r.model, r.prune.prune_seconds]));
  for (const { model, prune: p, flops } of results) {
    const base = sparsegptSeconds.get(model);
    const cells = [
      model,
      p.method,
      p.calibration === null ? '-' : `${p.calibration.nsamples} x ${p.calibration.seqlen}`,
      p.prune_seconds.toFixed(1),
      formatBound(flops, gflops, p.prune_seconds),
      base === undefined ? '-' : `${(p.prune_seconds / base).toFixed(2)}x`,
      p.seconds.toFixed(1),
      p.peak_rss_mb.toFixed(0),
      p.predicted_peak_mb.toFixed(0),
      p.ppl_dense.toPrecision(5),
      p.ppl.toPrecision(5),
      `${(100 * p.sparsity).toFixed(2)}%`,
    ];
    lines.push(`| ${cells.join(' | ')} |`);
  }
  return lines.join('\n') + '\n';
}

function partialTable(results: PartialBenchResult[], gflops: number): string {
  const lines = [
    `| model | method | calibration (windows x seqlen) | blocks timed | seconds per block | matmul bound per block at ${gflops.toFixed(0)} GFLOP/s (measured / bound) | blocks per minute | seconds before the blocks | projected whole run | peak RSS so far (MB) | predicted (MB) |`,
    '| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
  ];
  for (const { model, row, partial: p, blockFlops } of results) {
    const perBlock = 60 / p.blocksPerMinute;
    const cells = [
      model,
      row.method,
      `${row.nsamples} x ${row.seqlen}`,
      `${p.blockSeconds.length} of ${p.blocksTotal}`,
      p.blockSeconds.map((s) => s.toFixed(1)).join(', '),
      formatBound(blockFlops, gflops, perBlock),
      p.blocksPerMinute.toFixed(3),
      p.secondsBeforeBlocks.toFixed(0),
      `${(p.projectedSeconds / 3600).toFixed(2)} h`,
      p.peakRssMb.toFixed(0),
      p.predictedPeakMb === undefined ? '-' : p.predictedPeakMb.toFixed(0),
    ];
    lines.push(`| ${cells.join(' | ')} |`);
  }
  return lines.join('\n') + '\n';
}

/** Speed-ups are against the dense row, so they show "-" when --only left it out. */
function structuredTable(results: StructuredBenchResult[]): string {
  const lines = [
    '| model | params | bytes on disk | scoring tokens/s | speed-up | generation tokens/s | speed-up | peak RSS (MB) |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
  ];
  const dense = results.find((r) => r.structured === undefined);
  const speedUp = (v: number, base: number | undefined): string => (base === undefined ? '-' : `${(v / base).toFixed(2)}x`);
  for (const r of results) {
    const cells = [
      r.structured === undefined ? `${STRUCTURED_MODEL.random} dense` : `${STRUCTURED_MODEL.random} ${r.structured} ${STRUCTURED_RATIO}`,
      formatCount(r.params),
      `${(r.bytes / 2 ** 20).toFixed(1)} MiB`,
      r.eval.tokens_per_second.toFixed(0),
      speedUp(r.eval.tokens_per_second, dense?.eval.tokens_per_second),
      r.generate.tokens_per_second.toFixed(1),
      speedUp(r.generate.tokens_per_second, dense?.generate.tokens_per_second),
      // Scoring and generation run in separate processes; the larger peak is what the model needs.
      Math.max(r.eval.peak_rss_mb, r.generate.peak_rss_mb).toFixed(0),
    ];
    lines.push(`| ${cells.join(' | ')} |`);
  }
  return lines.join('\n') + '\n';
}

main().catch((err: unknown) => {
  log(err instanceof Error ? err.message : String(err));
  process.exitCode = 1;
});
