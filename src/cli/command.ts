import { parseArgs } from 'node:util';
import { EMBEDDED_MODEL } from '../engine/embedded';
import { PruneLensError } from '../engine/errors';
import type { RunControl } from '../engine/progress';
import { inRange, rangeText, type NumberRange } from '../engine/range';
import { progressBar } from './progress-bar';

/** What every command gets from main: how to print, and the signal Ctrl-C aborts. */
export interface CliContext {
  json: boolean;
  signal: AbortSignal;
  log: NonNullable<RunControl['log']>;
}

/**
 * One option of one command. The parser, the validation of numbers and the command's --help are all
 * derived from these, so help and parsing cannot disagree.
 */
export interface OptionSpec {
  readonly type: 'string' | 'boolean';
  readonly short?: string;
  /** The value's placeholder in help (FILE, N, S). */
  readonly arg?: string;
  readonly help: string;
  /** Numeric options: parsed to a number and checked against this range. */
  readonly range?: NumberRange;
  /** The value used when the option is absent; numbers for ranged options. */
  readonly default?: string | number;
  /** Shown instead of `default` in help when the default is computed (a bundled file, the plan's). */
  readonly defaultText?: string;
}

export type OptionTable = Readonly<Record<string, OptionSpec>>;

type ValueOf<S extends OptionSpec> = S extends { type: 'boolean' }
  ? boolean
  : S extends { range: NumberRange }
    ? S extends { default: number }
      ? number
      : number | undefined
    : S extends { default: string }
      ? string
      : string | undefined;

export type Values<T extends OptionTable> = { -readonly [K in keyof T]: ValueOf<T[K]> };

export interface Parsed<T extends OptionTable> {
  values: Values<T>;
  positionals: string[];
  /** Options given on the command line (defaults not counted), to refuse conflicting ones. */
  given: ReadonlySet<string>;
}

export interface Command<T extends OptionTable = OptionTable> {
  /** What follows `prunelens NAME` in usage lines; one line per form. */
  synopsis: string[];
  /** One line for `prunelens --help`. */
  summary: string;
  /** Paragraphs after the usage in `prunelens NAME --help`. */
  details?: string;
  options: T;
  run(parsed: Parsed<T>, ctx: CliContext): Promise<void>;
}

/** Keeps a command's option types through the command table, where every command is a `Command`. */
export function defineCommand<T extends OptionTable>(command: Command<T>): Command {
  return command as unknown as Command;
}

export const COMMON_OPTIONS = {
  json: { type: 'boolean', help: 'print one JSON object on stdout, errors included' },
  help: { type: 'boolean', short: 'h', help: 'show this help' },
} as const satisfies OptionTable;

export const RUNTIME_OPTIONS = {
  provider: { type: 'string', arg: 'cpu|webgpu|cuda', default: 'cpu', help: "ONNX Runtime's execution provider" },
  threads: { type: 'string', arg: 'N', range: { integer: true, min: 1, max: 1024 }, defaultText: 'every core', help: 'CPU threads for ONNX Runtime' },
} as const satisfies OptionTable;

/** The number an option's text stands for, or a usage error that states the option's range. */
export function checkNumber(text: string, option: string, r: NumberRange): number {
  const n = Number(text);
  if (text.trim() === '' || !inRange(n, r)) {
    throw new PruneLensError('usage', `--${option} must be ${r.integer ? 'an integer' : 'a number'} in ${rangeText(r)}, got "${text}"`);
  }
  return n;
}

/**
 * Parses a command's arguments against its option table (plus --json and --help). Unlike parseArgs'
 * strict mode it takes a negative number as an option's value (`--seed -1` is then refused by its
 * range, which says what is allowed), and it suggests the option a typo was meant to be.
 */
export function parse<T extends OptionTable>(args: string[], table: T): Parsed<T> {
  const all: OptionTable = { ...COMMON_OPTIONS, ...table };
  const { tokens } = parseArgs({
    args,
    options: Object.fromEntries(Object.entries(all).map(([name, o]) => [name, o.short ? { type: o.type, short: o.short } : { type: o.type }])),
    allowPositionals: true,
    strict: false,
    tokens: true,
  });
  const raw = new Map<string, string | boolean>();
  const positionals: string[] = [];
  for (const token of tokens) {
    if (token.kind === 'positional') positionals.push(token.value);
    if (token.kind !== 'option') continue;
    const spec = all[token.name];
    if (spec === undefined) {
      const guess = suggest(token.name, Object.keys(all));
      throw new PruneLensError('usage', `unknown option ${token.rawName}${guess ? `; did you mean --${guess}?` : ''}`);
    }
    const option = `--${token.name}`;
    if (spec.type === 'boolean') {
      if (token.value !== undefined) throw new PruneLensError('usage', `${option} takes no value, got "${token.value}"`);
      raw.set(token.name, true);
      continue;
    }
    // A following option is not a value: `--calib --seed 1` forgot the file.
    if (token.value === undefined || (!token.inlineValue && token.value.startsWith('-') && !Number.isFinite(Number(token.value)))) {
      throw new PruneLensError('usage', `${option} needs a value (${spec.arg ?? 'VALUE'})${token.value !== undefined ? `; to give one that starts with "-", write ${option}=${token.value}` : ''}`);
    }
    raw.set(token.name, token.value);
  }
  const values: Record<string, unknown> = {};
  for (const [name, spec] of Object.entries(all)) {
    const value = raw.get(name);
    if (spec.type === 'boolean') values[name] = value === true;
    else if (typeof value === 'string') values[name] = spec.range ? checkNumber(value, name, spec.range) : value;
    else values[name] = spec.default;
  }
  return { values: values as Values<T>, positionals, given: new Set(raw.keys()) };
}

/** The closest candidate by edit distance (adjacent swaps count one), if it is close enough to be a typo. */
export function suggest(word: string, candidates: string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const c of candidates) {
    const d = editDistance(word, c);
    if (d < bestDistance) [best, bestDistance] = [c, d];
  }
  return bestDistance <= Math.max(1, Math.floor(word.length / 3)) ? best : undefined;
}

/** Optimal string alignment distance: insertions, deletions, substitutions and adjacent transpositions. */
export function editDistance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      d[i]![j] = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d[i]![j] = Math.min(d[i]![j]!, d[i - 2]![j - 2]! + 1);
    }
  }
  return d[a.length]![b.length]!;
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

/** Wall-clock seconds of a whole job (loading and tokenizing included), as a person waiting sees it. */
export async function timed<T>(work: () => Promise<T>): Promise<{ result: T; seconds: number }> {
  const start = performance.now();
  const result = await work();
  return { result, seconds: (performance.now() - start) / 1000 };
}

export function table(rows: [string, string][]): string {
  return rows.map(([k, v]) => `${k.padEnd(13)}${v}`).join('\n');
}
