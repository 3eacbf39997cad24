import { parseArgs, type ParseArgsConfig } from 'node:util';
import { EMBEDDED_MODEL, SAMPLE_EVALUATION_TEXT } from '../engine/embedded';
import { PruneLensError } from '../engine/errors';
import type { Logger } from '../engine/progress';
import { positiveInt, provider } from './args';
import { evalJson, evaluate, formatEval } from './commands/eval';
import { formatInfo, info } from './commands/info';
import { progressBar } from './progress-bar';

const USAGE = `PruneLens: prune language-model checkpoints and measure what it costs.

Usage:
  prunelens info [MODEL] [--json]
  prunelens eval [MODEL] [--text FILE] [--seqlen N] [--max-windows K]
                 [--provider cpu|webgpu|cuda] [--threads N] [--json]

MODEL is a Hugging Face folder (config.json + safetensors + tokenizer.json) or a file in it;
the embedded stories260K model by default. --text defaults to the bundled TinyStories
evaluation text. --json prints one JSON object on stdout, also for errors.
`;

const COMMON = {
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const satisfies ParseArgsConfig['options'];

const EVAL_OPTIONS = {
  ...COMMON,
  text: { type: 'string' },
  seqlen: { type: 'string' },
  'max-windows': { type: 'string' },
  provider: { type: 'string' },
  threads: { type: 'string' },
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
              runtime: { provider: provider(values.provider), threads: positiveInt(values.threads, '--threads') },
            },
            { signal: abort.signal, onProgress: bar.onProgress, log },
          );
        } finally {
          bar.done();
        }
        print(json, evalJson(result), formatEval(result));
        return 0;
      }
      case undefined:
      case 'help':
      case '--help':
      case '-h':
        return usage();
      default:
        throw new PruneLensError('usage', `unknown command "${command}"; commands: info, eval`);
    }
  } catch (err) {
    return fail(err, json);
  } finally {
    process.off('SIGINT', onSigint);
  }
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
