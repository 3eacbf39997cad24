import { parseArgs, type ParseArgsConfig } from 'node:util';
import { EMBEDDED_MODEL, SAMPLE_CALIBRATION_TEXT, SAMPLE_EVALUATION_TEXT } from '../engine/embedded';
import type { RuntimeSettings } from '../engine/graph/session';
import { PruneLensError } from '../engine/errors';
import type { Logger } from '../engine/progress';
import { nonNegativeInt, positiveInt, provider, pruneSpec } from './args';
import { defaultOutput, formatPrune, prune, pruneJson } from './commands/prune';
import { evalJson, evaluate, formatEval } from './commands/eval';
import { formatInfo, info } from './commands/info';
import { progressBar } from './progress-bar';

const USAGE = `PruneLens: prune language-model checkpoints and measure what it costs.

Usage:
  prunelens info [MODEL] [--json]
  prunelens eval [MODEL] [--text FILE] [--seqlen N] [--max-windows K]
                 [--provider cpu|webgpu|cuda] [--threads N] [--json]
  prunelens prune [MODEL] --method magnitude|wanda|sparsegpt [--sparsity S | --nm N:M]
                 [--calib FILE] [--nsamples 128] [--seqlen N] [--seed 0]
                 [--eval FILE] [--max-windows K] [--out DIR] [--overwrite]
                 [--include GLOB,..] [--exclude GLOB,..] [--blocksize 128] [--percdamp 0.01]
                 [--provider cpu|webgpu|cuda] [--threads N] [--json]

MODEL is a Hugging Face folder (config.json + safetensors + tokenizer.json) or a file in it;
the embedded stories260K model by default. --text and --eval default to the bundled TinyStories
evaluation text, --calib to the bundled calibration text. seqlen is 256 by default, for both
calibration and evaluation. prune writes a new folder (default: beside the source, named for the
method) and never touches the source; --include/--exclude take globs over module names such as
"model.layers.*.mlp.*". --json prints one JSON object on stdout, also for errors.
`;

const COMMON = {
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const satisfies ParseArgsConfig['options'];

const RUNTIME = {
  provider: { type: 'string' },
  threads: { type: 'string' },
} as const satisfies ParseArgsConfig['options'];

const EVAL_OPTIONS = {
  ...COMMON,
  ...RUNTIME,
  text: { type: 'string' },
  seqlen: { type: 'string' },
  'max-windows': { type: 'string' },
} as const satisfies ParseArgsConfig['options'];

const PRUNE_OPTIONS = {
  ...COMMON,
  ...RUNTIME,
  method: { type: 'string' },
  sparsity: { type: 'string' },
  nm: { type: 'string' },
  calib: { type: 'string' },
  nsamples: { type: 'string' },
  seqlen: { type: 'string' },
  seed: { type: 'string' },
  eval: { type: 'string' },
  'max-windows': { type: 'string' },
  out: { type: 'string' },
  overwrite: { type: 'boolean' },
  include: { type: 'string' },
  exclude: { type: 'string' },
  blocksize: { type: 'string' },
  percdamp: { type: 'string' },
} as const satisfies ParseArgsConfig['options'];

/** Runs one CLI invocation and returns its exit code: 0 done, 1 failed, 2 bad usage, 130 cancelled. */
export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  const json = rest.includes('--json');
  const abort = new AbortController();
  const onSigint = (): void => abort.abort();
  process.once('SIGINT', onSigint);
  const log: Logger = {
    info: () => {},
    warn: (message) => process.stderr.write(`warning: ${message}\n`),
  };
  try {
    switch (command) {
      case 'info': {
        const { values, positionals } = parseArgs({ args: rest, options: COMMON, allowPositionals: true, strict: true });
        if (values.help) return usage();
        const summary = await info(modelArg(positionals));
        print(json, summary, formatInfo(summary));
        return 0;
      }
      case 'eval': {
        const { values, positionals } = parseArgs({ args: rest, options: EVAL_OPTIONS, allowPositionals: true, strict: true });
        if (values.help) return usage();
        const bar = progressBar();
        let result;
        try {
          result = await evaluate(
            {
              model: modelArg(positionals),
              textFile: values.text ?? SAMPLE_EVALUATION_TEXT,
              seqlen: positiveInt(values.seqlen, '--seqlen') ?? 256,
              maxWindows: positiveInt(values['max-windows'], '--max-windows'),
              runtime: runtime(values),
            },
            { signal: abort.signal, onProgress: bar.onProgress, log },
          );
        } finally {
          bar.done();
        }
        print(json, evalJson(result), formatEval(result));
        return 0;
      }
      case 'prune': {
        const { values, positionals } = parseArgs({ args: rest, options: PRUNE_OPTIONS, allowPositionals: true, strict: true });
        if (values.help) return usage();
        const model = modelArg(positionals);
        const spec = pruneSpec(values);
        const seqlen = positiveInt(values.seqlen, '--seqlen') ?? 256;
        const bar = progressBar();
        let record;
        try {
          record = await prune(
            {
              model,
              out: values.out ?? defaultOutput(model, spec),
              overwrite: values.overwrite ?? false,
              spec,
              calibration: {
                file: values.calib ?? SAMPLE_CALIBRATION_TEXT,
                nsamples: positiveInt(values.nsamples, '--nsamples') ?? 128,
                seqlen,
                seed: nonNegativeInt(values.seed, '--seed') ?? 0,
              },
              evaluation: { file: values.eval ?? SAMPLE_EVALUATION_TEXT, seqlen, maxWindows: positiveInt(values['max-windows'], '--max-windows') },
              runtime: runtime(values),
            },
            { signal: abort.signal, onProgress: bar.onProgress, log },
          );
        } finally {
          bar.done();
        }
        print(json, pruneJson(record), formatPrune(record));
        return 0;
      }
      case undefined:
      case 'help':
      case '--help':
      case '-h':
        return usage();
      default:
        throw new PruneLensError('usage', `unknown command "${command}"; commands: info, eval, prune`);
    }
  } catch (err) {
    return fail(err, json);
  } finally {
    process.off('SIGINT', onSigint);
  }
}

function runtime(values: { provider?: string; threads?: string }): RuntimeSettings {
  return { provider: provider(values.provider), threads: positiveInt(values.threads, '--threads') };
}

function modelArg(positionals: string[]): string {
  if (positionals.length > 1) throw new PruneLensError('usage', `expected one MODEL, got ${positionals.length}: ${positionals.join(' ')}`);
  return positionals[0] ?? EMBEDDED_MODEL;
}

function print(json: boolean, data: object, human: string): void {
  process.stdout.write(json ? `${JSON.stringify(data)}\n` : `${human}\n`);
}

function usage(): number {
  process.stdout.write(USAGE);
  return 0;
}

function fail(err: unknown, json: boolean): number {
  const known = err instanceof PruneLensError;
  // parseArgs reports unknown options with this code; it is a usage error like ours.
  const isParseError = (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS') === true;
  const kind = known ? err.kind : isParseError ? 'usage' : 'internal';
  const message = (err as Error).message;
  if (json) {
    process.stdout.write(`${JSON.stringify({ error: { kind, message, where: known ? err.where : undefined } })}\n`);
  } else {
    process.stderr.write(`prunelens: ${message}\n`);
    if (kind === 'usage') process.stderr.write(`Run "prunelens --help" for usage.\n`);
    if (kind === 'internal') process.stderr.write(`${(err as Error).stack ?? ''}\nThis is a bug in PruneLens; please report it with the command you ran.\n`);
  }
  return kind === 'cancelled' ? 130 : kind === 'usage' ? 2 : 1;
}
