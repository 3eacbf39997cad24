import { PruneLensError } from '../engine/errors';
import type { CliContext, Command } from './command';
import { estimate } from './commands/estimate';
import { evaluate } from './commands/eval';
import { exportModel } from './commands/export';
import { generate } from './commands/generate';
import { info } from './commands/info';
import { plan } from './commands/plan';
import { prune } from './commands/prune';
import { scores } from './commands/scores';

const COMMANDS: Record<string, Command> = { info, eval: evaluate, generate, prune, plan, estimate, scores, export: exportModel };

const USAGE = `PruneLens: prune language-model checkpoints and measure what it costs.

Usage:
${Object.values(COMMANDS)
  .map((c) => `  ${c.usage}`)
  .join('\n')}

MODEL is a Hugging Face folder (config.json + safetensors + tokenizer.json) or a file in it;
the embedded stories260K model by default. --text and --eval default to the bundled TinyStories
evaluation text, --calib to the bundled calibration text. seqlen is 256 by default, for both
calibration and evaluation. prune writes a new folder (default: beside the source, named for the
method) and never touches the source; --include/--exclude take globs over module names such as
"model.layers.*.mlp.*". --json prints one JSON object on stdout, also for errors.
`;

/** Runs one CLI invocation and returns its exit code: 0 done, 1 failed, 2 bad usage, 130 cancelled. */
export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  const abort = new AbortController();
  const onSigint = (): void => abort.abort();
  process.once('SIGINT', onSigint);
  const ctx: CliContext = {
    json: rest.includes('--json'),
    signal: abort.signal,
    log: { info: () => {}, warn: (message) => process.stderr.write(`warning: ${message}\n`) },
  };
  try {
    if (name === undefined || name === 'help' || name === '--help' || name === '-h' || rest.includes('--help') || rest.includes('-h')) {
      process.stdout.write(USAGE);
      return 0;
    }
    const command = COMMANDS[name];
    if (!command) throw new PruneLensError('usage', `unknown command "${name}"; commands: ${Object.keys(COMMANDS).join(', ')}`);
    await command.run(rest, ctx);
    return 0;
  } catch (err) {
    return fail(err, ctx.json);
  } finally {
    process.off('SIGINT', onSigint);
  }
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
