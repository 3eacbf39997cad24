/**
 * `npm run bench`: evaluates the embedded model and random-weight stand-ins of real model shapes, each
 * in its own CLI process so each row's peak memory is its own, and prints one Markdown table.
 */
import { spawn } from 'node:child_process';
import { existsSync, promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { Checkpoint } from '../src/engine/io/checkpoint';
import { parameterCount } from '../src/engine/model/config';
import { MODEL_SHAPES, type ModelShapeName } from './model-shapes';
import { randomCheckpointConfigText, writeRandomCheckpoint, type RandomDType } from './random-checkpoint';

const ROOT = path.resolve(__dirname, '..');
const CLI = path.join(ROOT, 'dist', 'cli.js');
const EMBEDDED = path.join(ROOT, 'models', 'stories260K');
const EVAL_TEXT = path.resolve(ROOT, '..', 'shared', 'data', 'tinystories', 'eval.txt');
const CACHE = path.join(ROOT, '.cache', 'bench-models');
const SEED = 1234;

type ModelSource = { embedded: string } | { random: ModelShapeName; dtype: RandomDType };

interface Row {
  name: string;
  model: ModelSource;
  seqlen: number;
  /**
   * Omitted: every window of the text. Large models are capped to about 10-30 s on 2 cores: on the
   * reference machine SmolLM ran ~650 tokens/s and TinyLlama ~40 tokens/s.
   */
  maxWindows?: number;
}

const ROWS: Row[] = [
  { name: 'stories260K', model: { embedded: EMBEDDED }, seqlen: 256 },
  { name: 'smollm-135m', model: { random: 'smollm-135m', dtype: 'BF16' }, seqlen: 256, maxWindows: 40 },
  { name: 'tinyllama-1.1b', model: { random: 'tinyllama-1.1b', dtype: 'BF16' }, seqlen: 256, maxWindows: 2 },
];

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
}

interface BenchResult {
  name: string;
  params: number;
  dtype: string;
  eval: EvalResult;
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { only: { type: 'string' }, json: { type: 'boolean', default: false } } });
  const rows = values.only === undefined ? ROWS : ROWS.filter((r) => r.name === values.only);
  if (rows.length === 0) {
    throw new Error(`--only ${values.only}: no such row; rows: ${ROWS.map((r) => r.name).join(', ')}`);
  }
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing; build it with npm run build`);

  const results: BenchResult[] = [];
  for (const row of rows) {
    const dir = await modelFolder(row.model);
    const checkpoint = await Checkpoint.open(dir);
    const params = parameterCount(checkpoint.config);
    const dtype = checkpoint.dtype;
    await checkpoint.close();
    log(`${row.name}: evaluating ${row.maxWindows ?? 'all'} windows of ${row.seqlen}`);
    results.push({ name: row.name, params, dtype, eval: await runEval(dir, row) });
  }
  process.stdout.write(values.json ? JSON.stringify(results, null, 2) + '\n' : markdownTable(results));
}

/** The checkpoint folder for a row, generating a random one on first use or when its shape changed. */
async function modelFolder(source: ModelSource): Promise<string> {
  if ('embedded' in source) return source.embedded;
  const dir = path.join(CACHE, source.random);
  const cachedConfig = await fsp.readFile(path.join(dir, 'config.json'), 'utf8').catch(() => undefined);
  // The folder only appears once complete (see writeRandomCheckpoint), so a matching config means a usable cache.
  if (cachedConfig === randomCheckpointConfigText(MODEL_SHAPES[source.random], source.dtype)) return dir;
  log(`${source.random}: generating random ${source.dtype} weights into ${path.relative(ROOT, dir)}`);
  const start = performance.now();
  await writeRandomCheckpoint(dir, MODEL_SHAPES[source.random], { dtype: source.dtype, seed: SEED, tokenizerFrom: EMBEDDED });
  const { size } = await fsp.stat(path.join(dir, 'model.safetensors'));
  log(`${source.random}: generated ${(size / 2 ** 20).toFixed(0)} MB in ${((performance.now() - start) / 1000).toFixed(1)} s`);
  // The eval children are what is measured; the generation buffers should not crowd them.
  globalThis.gc?.();
  return dir;
}

function runEval(dir: string, row: Row): Promise<EvalResult> {
  const args = [CLI, 'eval', dir, '--text', EVAL_TEXT, '--seqlen', String(row.seqlen), '--json'];
  if (row.maxWindows !== undefined) args.push('--max-windows', String(row.maxWindows));
  return new Promise((resolve, reject) => {
    // stderr passes through so the CLI's own progress and errors show as they happen.
    const child = spawn(process.execPath, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
    const chunks: Buffer[] = [];
    child.stdout.on('data', (chunk: Buffer) => chunks.push(chunk));
    child.on('error', reject);
    child.on('close', (code, signal) => {
      const stdout = Buffer.concat(chunks).toString('utf8');
      let printed: (EvalResult & { error?: undefined }) | { error: { message: string } } | undefined;
      try {
        printed = JSON.parse(stdout) as typeof printed;
      } catch {
        printed = undefined;
      }
      if (code === 0 && printed && printed.error === undefined) {
        resolve(printed);
        return;
      }
      // With --json the CLI reports its errors on stdout, not stderr.
      const why = printed?.error?.message ?? (stdout.trim().slice(0, 500) || 'no output');
      reject(new Error(`${row.name}: node ${args.join(' ')} exited with ${signal ?? code}: ${why}`));
    });
  });
}

function markdownTable(results: BenchResult[]): string {
  const lines = [
    '| model | params | dtype | windows x seqlen | eval tokens/s | seconds | peak RSS (MB) | ppl |',
    '| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: |',
  ];
  for (const { name, params, dtype, eval: e } of results) {
    const cells = [
      name,
      formatCount(params),
      dtype,
      `${e.windows} x ${e.seqlen}`,
      e.tokens_per_second.toFixed(0),
      e.seconds.toFixed(1),
      e.peak_rss_mb.toFixed(0),
      e.ppl.toPrecision(5),
    ];
    lines.push(`| ${cells.join(' | ')} |`);
  }
  return lines.join('\n') + '\n';
}

function formatCount(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)}B`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(1)}M`;
  return `${(n / 1e3).toFixed(0)}K`;
}

function log(message: string): void {
  process.stderr.write(`[bench] ${message}\n`);
}

main().catch((err: unknown) => {
  log(err instanceof Error ? err.message : String(err));
  process.exitCode = 1;
});
