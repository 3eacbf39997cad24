/**
 * The mixture-of-experts rows of `npm run bench`: random stand-ins of Qwen3-30B-A3B and Mixtral-8x7B
 * with their published shapes but only their first layers (scripts/model-shapes.ts), each measured
 * for evaluation, expert statistics (`prunelens experts`) and removing half the experts by REAP, with
 * peak memory predicted and measured. Times are extrapolated to the published depth, as said in the
 * table; memory is not, as blocks stream one at a time (the prediction for the published config is
 * shown beside it).
 */
import * as path from 'node:path';
import { predictPeakMemory, type MemoryJob } from '../src/engine/memory-plan';
import { parameterCount, parseModelConfig, type ModelConfig } from '../src/engine/model/config';
import { DTYPE_BYTES } from '../src/engine/io/dtype';
import { CALIB_TEXT, EVAL_TEXT, formatCount, markdownTable, modelFolder, runCli } from './bench-common';
import { FULL_DEPTH, MODEL_SHAPES, type ModelShapeName } from './model-shapes';

export interface MoeRow {
  name: string;
  shape: ModelShapeName;
  seqlen: number;
  /** Evaluation windows; each costs every expert of every layer on each of its tokens. */
  evalWindows: number;
  /** Calibration windows of the expert statistics and of the removal's REAP scores. */
  calibWindows: number;
  /** Each stand-in is 6-12 GB and takes tens of minutes on 2 cores: only with --large or --only. */
  large: true;
}

/** One window of 128 tokens each: every expert runs on every token (E/k times a routed forward), so this is minutes per job on 2 busy cores. */
export const MOE_ROWS: MoeRow[] = [
  { name: 'moe:qwen3-30b-a3b-4l', shape: 'qwen3-30b-a3b-4l', seqlen: 128, evalWindows: 1, calibWindows: 1, large: true },
  { name: 'moe:mixtral-8x7b-2l', shape: 'mixtral-8x7b-2l', seqlen: 128, evalWindows: 1, calibWindows: 1, large: true },
];
const REMOVE_RATIO = 0.5;

interface Measured {
  seconds: number;
  peak_rss_mb: number;
  predicted_peak_mb: number;
}

interface MoeJob extends Measured {
  /** The same job's prediction for the published, full-depth config. */
  predictedFullMb: number;
}

export interface MoeBenchResult {
  name: string;
  shape: ModelShapeName;
  layers: number;
  fullLayers: number;
  params: number;
  fullParams: number;
  /** Time at full depth = time x depthFactor (see depthFactor). */
  depthFactor: number;
  eval: MoeJob & { tokens: number; tokens_per_second: number };
  experts: MoeJob;
  removal: MoeJob;
}

/** A row whose runs could not complete (a run refused for memory, most likely) stays in the table with the reason. */
export interface MoeBenchFailure {
  name: string;
  shape: ModelShapeName;
  error: string;
}

export async function runMoeRow(row: MoeRow, outDir: string, log: (message: string) => void): Promise<MoeBenchResult | MoeBenchFailure> {
  try {
    return await measureMoeRow(row, outDir, log);
  } catch (err) {
    const error = err instanceof Error ? err.message : String(err);
    log(`${row.name}: ${error}`);
    return { name: row.name, shape: row.shape, error };
  }
}

async function measureMoeRow(row: MoeRow, outDir: string, log: (message: string) => void): Promise<MoeBenchResult> {
  const dir = await modelFolder({ random: row.shape, dtype: 'BF16' }, log);
  const cfg = parseModelConfig(MODEL_SHAPES[row.shape], 'config.json');
  const full = parseModelConfig(FULL_DEPTH[row.shape]!, 'config.json');
  const moe = cfg.arch.moe!;
  const predictedFull = (job: MemoryJob): number => predictPeakMemory(full, DTYPE_BYTES.BF16, job).peakBytes / 2 ** 20;
  const calib = ['--calib', CALIB_TEXT, '--nsamples', String(row.calibWindows), '--seqlen', String(row.seqlen)];

  log(`${row.name}: evaluating ${row.evalWindows} windows of ${row.seqlen}`);
  const evaluated = await runCli<Measured & { tokens: number; tokens_per_second: number }>(row.name, [
    'eval', dir, '--text', EVAL_TEXT, '--seqlen', String(row.seqlen), '--max-windows', String(row.evalWindows), '--json',
  ]);
  log(`${row.name}: expert statistics on ${row.calibWindows} x ${row.seqlen} calibration tokens`);
  logMeasured(log, `${row.name} eval`, evaluated);
  const experts = await runCli<Measured>(row.name, ['experts', dir, ...calib, '--json']);
  logMeasured(log, `${row.name} experts`, experts);
  log(`${row.name}: removing ${REMOVE_RATIO * 100}% of the experts by REAP`);
  const removal = await runCli<Measured>(row.name, [
    'prune', dir, '--structured', 'experts', '--ratio', String(REMOVE_RATIO), '--metric', 'reap', ...calib,
    // The same windows as the eval row, evaluated before and after (without --max-windows it would be the whole text).
    '--eval', EVAL_TEXT, '--max-windows', String(row.evalWindows),
    '--out', path.join(outDir, row.name.replaceAll(':', '-')), '--overwrite', '--json',
  ]);
  logMeasured(log, `${row.name} removal`, removal);
  const statistics = { nsamples: row.calibWindows, seqlen: row.seqlen };
  const evaluation = { evalWindows: row.evalWindows, evalSeqlen: row.seqlen };
  const kept = moe.experts - Math.round(moe.experts * REMOVE_RATIO);
  return {
    name: row.name,
    shape: row.shape,
    layers: cfg.numLayers,
    fullLayers: full.numLayers,
    params: parameterCount(cfg),
    fullParams: parameterCount(full),
    depthFactor: depthFactor(cfg, full),
    eval: { ...evaluated, predictedFullMb: predictedFull(evaluation) },
    experts: { ...experts, predictedFullMb: predictedFull({ evalWindows: 0, evalSeqlen: 0, experts: statistics }) },
    removal: { ...removal, predictedFullMb: predictedFull({ ...evaluation, experts: statistics, keptExperts: kept }) },
  };
}

/** Each job as it completes, so a bench cut short still says what it measured. */
function logMeasured(log: (message: string) => void, what: string, m: Measured): void {
  log(`${what}: ${m.seconds.toFixed(1)} s, peak ${m.peak_rss_mb.toFixed(0)} MB, predicted ${m.predicted_peak_mb.toFixed(0)} MB`);
}

/**
 * How much longer the published depth takes: the ratio of the parameters, as every expert runs on
 * every token, so a block's work (and its bytes read and written) is proportional to its parameters.
 * Loading the runtime and tokenizing are scaled as if they grew too, so the extrapolation errs long.
 */
function depthFactor(cut: ModelConfig, full: ModelConfig): number {
  return parameterCount(full) / parameterCount(cut);
}

export function moeTable(results: (MoeBenchResult | MoeBenchFailure)[]): string {
  const mb = (v: number) => v.toFixed(0);
  const rows = results.map((r) => {
    if ('error' in r) return [r.shape, `not measured: ${r.error.replaceAll('|', '/')}`, '', '', '', '', '', '', ''];
    const x = r.depthFactor;
    return [
      `${r.shape} (${r.layers} of ${r.fullLayers} layers)`,
      `${formatCount(r.params)} of ${formatCount(r.fullParams)}`,
      `${r.eval.tokens_per_second.toFixed(1)} (${(r.eval.tokens_per_second / x).toFixed(2)})`,
      `${r.eval.seconds.toFixed(1)} (${(r.eval.seconds * x).toFixed(0)})`,
      `${r.experts.seconds.toFixed(1)} (${(r.experts.seconds * x).toFixed(0)})`,
      `${r.removal.seconds.toFixed(1)} (${(r.removal.seconds * x).toFixed(0)})`,
      `${mb(r.eval.peak_rss_mb)} / ${mb(r.eval.predicted_peak_mb)} / ${mb(r.eval.predictedFullMb)}`,
      `${mb(r.experts.peak_rss_mb)} / ${mb(r.experts.predicted_peak_mb)} / ${mb(r.experts.predictedFullMb)}`,
      `${mb(r.removal.peak_rss_mb)} / ${mb(r.removal.predicted_peak_mb)} / ${mb(r.removal.predictedFullMb)}`,
    ];
  });
  const note =
    'Times in parentheses are extrapolated to the published depth (x the ratio of parameters, embeddings and LM head counted once), not measured. ' +
    'Memory: measured / predicted for the stand-in / predicted for the published config (MB); blocks stream one at a time, so depth adds no memory. ' +
    `Expert removal: ${REMOVE_RATIO * 100}% of each layer's experts by REAP, its statistics included, the smaller model written, both models evaluated on the eval row's windows.`;
  return (
    markdownTable(
      ['MoE model', 'params', 'eval tokens/s', 'eval s', 'experts s', 'remove 50% s', 'eval peak MB', 'experts peak MB', 'remove peak MB'],
      ['l', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r'],
      rows,
    ) + `\n${note}\n`
  );
}
