import { parseArgs, type ParseArgsConfig } from 'node:util';
import { EMBEDDED_MODEL } from '../engine/embedded';
import { PruneLensError } from '../engine/errors';
import type { RunControl } from '../engine/progress';
import { progressBar } from './progress-bar';

/** What every command gets from main: how to print, and the signal Ctrl-C aborts. */
export interface CliContext {
  json: boolean;
  signal: AbortSignal;
  log: NonNullable<RunControl['log']>;
}

export interface Command {
  usage: string;
  run(args: string[], ctx: CliContext): Promise<void>;
}

export const COMMON_OPTIONS = {
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const satisfies ParseArgsConfig['options'];

export const RUNTIME_OPTIONS = {
  provider: { type: 'string' },
  threads: { type: 'string' },
} as const satisfies ParseArgsConfig['options'];

export function parse<O extends ParseArgsConfig['options']>(args: string[], options: O) {
  return parseArgs({ args, options: { ...COMMON_OPTIONS, ...options }, allowPositionals: true, strict: true });
}

/** The one positional MODEL (or PLAN) argument, or the embedded model. */
export function singlePositional(positionals: string[], what: string, fallback: string | undefined = EMBEDDED_MODEL): string {
  if (positionals.length > 1) throw new PruneLensError('usage', `expected one ${what}, got ${positionals.length}: ${positionals.join(' ')}`);
  const value = positionals[0] ?? fallback;
  if (value === undefined) throw new PruneLensError('usage', `expected a ${what}`);
  return value;
}

export function print(ctx: CliContext, data: object, human: string): void {
  process.stdout.write(ctx.json ? `${JSON.stringify(data)}\n` : `${human}\n`);
}

/** Runs a long engine call with a progress bar on a terminal and Ctrl-C wired to cancel. */
export async function withProgress<T>(ctx: CliContext, job: (control: RunControl) => Promise<T>): Promise<T> {
  const bar = progressBar();
  try {
    return await job({ signal: ctx.signal, onProgress: bar.onProgress, log: ctx.log });
  } finally {
    bar.done();
  }
}

export function table(rows: [string, string][]): string {
  return rows.map(([k, v]) => `${k.padEnd(13)}${v}`).join('\n');
}
