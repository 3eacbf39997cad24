/**
 * What every bench script shares: where the model and texts are, random stand-ins of real model
 * shapes generated once and cached, and running one CLI command in its own process (so each
 * measured row's peak memory is its own) and reading what its --json printed.
 */
import { spawn } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { parameterCount, parseModelConfig } from '../src/engine/model/config';
import { MODEL_SHAPES, type ModelShapeName } from './model-shapes';
import { randomCheckpointConfigText, writeRandomCheckpoint, type RandomDType } from './random-checkpoint';

export const ROOT = path.resolve(__dirname, '..');
export const CLI = path.join(ROOT, 'dist', 'cli.js');
export const EMBEDDED = path.join(ROOT, 'models', 'stories260K');
/** The bundled copies (byte-identical to ../shared/data/tinystories, which the tests check), so a bench runs from the repository alone. */
export const EVAL_TEXT = path.join(ROOT, 'data', 'tinystories', 'eval.txt');
export const CALIB_TEXT = path.join(ROOT, 'data', 'tinystories', 'calibration.txt');
const CACHE = path.join(ROOT, '.cache', 'bench-models');
const SEED = 1234;

export type ModelSource = { embedded: string } | { random: ModelShapeName; dtype: RandomDType };

/** The checkpoint folder for a model, generating a random one on first use or when its shape changed. */
export async function modelFolder(source: ModelSource, log: (message: string) => void): Promise<string> {
  if ('embedded' in source) return source.embedded;
  const dir = path.join(CACHE, source.random);
  const cachedConfig = await fsp.readFile(path.join(dir, 'config.json'), 'utf8').catch(() => undefined);
  // The folder only appears once complete (see writeRandomCheckpoint), so a matching config means a usable cache.
  if (cachedConfig === randomCheckpointConfigText(MODEL_SHAPES[source.random], source.dtype)) return dir;
  log(`${source.random}: generating random ${source.dtype} weights into ${path.relative(ROOT, dir)}`);
  const start = performance.now();
  await writeRandomCheckpoint(dir, MODEL_SHAPES[source.random], { dtype: source.dtype, seed: SEED, tokenizerFrom: EMBEDDED });
  const { size } = await fsp.stat(path.join(dir, 'model.safetensors'));
  const seconds = (performance.now() - start) / 1000;
  const params = parameterCount(parseModelConfig(MODEL_SHAPES[source.random], dir));
  log(`${source.random}: generated ${(size / 2 ** 20).toFixed(0)} MB in ${seconds.toFixed(1)} s (${(params / seconds / 1e6).toFixed(1)} M parameters/s)`);
  // The CLI children are what is measured; the generation buffers should not crowd them.
  globalThis.gc?.();
  return dir;
}

export function modelName(source: ModelSource): string {
  return 'embedded' in source ? path.basename(source.embedded) : source.random;
}

export interface CliOptions {
  env?: NodeJS.ProcessEnv;
  /** Receives each line the command writes to stderr; without it stderr passes through. */
  onStderrLine?: (line: string) => void;
}

/** Runs one CLI command in a child process and returns the object its --json printed. */
export function runCli<T extends object>(name: string, cliArgs: string[], options: CliOptions = {}): Promise<T> {
  const args = [CLI, ...cliArgs];
  return new Promise((resolve, reject) => {
    // By default stderr passes through so the CLI's own progress and errors show as they happen.
    const stderr = options.onStderrLine ? 'pipe' : 'inherit';
    const child = spawn(process.execPath, args, { cwd: ROOT, env: options.env ?? process.env, stdio: ['ignore', 'pipe', stderr] });
    const chunks: Buffer[] = [];
    child.stdout!.on('data', (chunk: Buffer) => chunks.push(chunk));
    if (options.onStderrLine && child.stderr) forEachLine(child.stderr, options.onStderrLine);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      const stdout = Buffer.concat(chunks).toString('utf8');
      let printed: (T & { error?: undefined }) | { error: { message: string } } | undefined;
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
      reject(new Error(`${name}: node ${args.join(' ')} exited with ${signal ?? code}: ${why}`));
    });
  });
}

function forEachLine(stream: NodeJS.ReadableStream, each: (line: string) => void): void {
  let rest = '';
  stream.setEncoding('utf8');
  stream.on('data', (chunk: string) => {
    const lines = (rest + chunk).split('\n');
    rest = lines.pop()!;
    lines.forEach(each);
  });
  stream.on('end', () => {
    if (rest) each(rest);
  });
}

/** A Markdown table: a header row, the alignment row ('l' or 'r' per column) and one line per row of cells. */
export function markdownTable(header: string[], align: ('l' | 'r')[], rows: string[][]): string {
  const line = (cells: string[]) => `| ${cells.join(' | ')} |`;
  return [line(header), line(align.map((a) => (a === 'r' ? '---:' : '---'))), ...rows.map(line)].join('\n') + '\n';
}

export function formatCount(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)}B`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(1)}M`;
  return `${(n / 1e3).toFixed(0)}K`;
}

export function logTo(prefix: string): (message: string) => void {
  return (message) => process.stderr.write(`[${prefix}] ${message}\n`);
}
