import { version } from '../../package.json';
import { PruneLensError } from '../engine/errors';
import { COMMON_OPTIONS, parse, suggest, type CliContext, type Command, type OptionSpec, type OptionTable } from './command';
import { estimate } from './commands/estimate';
import { evaluate } from './commands/eval';
import { exportModel } from './commands/export';
import { tryCommand } from './commands/try';
import { generate } from './commands/generate';
import { info } from './commands/info';
import { plan } from './commands/plan';
import { prune } from './commands/prune';
import { scores } from './commands/scores';
import { experts } from './commands/experts';
import { rangeText } from '../engine/range';
import { cancelOnSignals } from './signals';

/** Every command, in the order `prunelens --help` lists them; adding a command is one entry here. */
export const COMMANDS: Record<string, Command> = { info, eval: evaluate, generate, prune, plan, estimate, scores, experts, export: exportModel, try: tryCommand };

const OVERVIEW = `MODEL is a Hugging Face folder (config.json + safetensors + tokenizer.json) or a file in it;
the embedded stories260K model by default. Texts default to the bundled TinyStories samples.
prune writes a new folder and never touches the source. --json prints one JSON object on stdout,
also for errors. Exit codes: 0 done, 1 failed, 2 bad usage, 130 cancelled.`;

export function globalHelp(): string {
  const width = Math.max(...Object.keys(COMMANDS).map((n) => n.length)) + 2;
  return `PruneLens ${version}: prune language-model checkpoints and measure what it costs.

Usage: prunelens <command> [options]        prunelens <command> --help for its options

Commands:
${Object.entries(COMMANDS)
  .map(([name, c]) => `  ${name.padEnd(width)}${c.summary}`)
  .join('\n')}

${OVERVIEW}

  --version     print the version
  -h, --help    show this help
`;
}

/** A command's help, written from the same option table its arguments are parsed with. */
export function commandHelp(name: string, command: Command): string {
  const options: OptionTable = { ...command.options, ...COMMON_OPTIONS };
  const lefts = Object.entries(options).map(([option, spec]) => `${spec.short ? `-${spec.short}, ` : ''}--${option}${spec.arg ? ` ${spec.arg}` : ''}`);
  const width = Math.min(Math.max(...lefts.map((l) => l.length)) + 2, 40);
  const lines = Object.values(options).map((spec, i) => {
    const left = lefts[i]!;
    const text = `${spec.help}${describeValue(spec)}`;
    return left.length + 2 > width ? `  ${left}\n  ${' '.repeat(width)}${text}` : `  ${left.padEnd(width)}${text}`;
  });
  return `Usage:
${command.synopsis.map((s) => `  prunelens ${name} ${s}`).join('\n')}

${command.summary}${command.details ? `\n\n${command.details}` : ''}

Options:
${lines.join('\n')}
`;
}

function describeValue(spec: OptionSpec): string {
  const parts: string[] = [];
  if (spec.range) parts.push(`${spec.range.integer ? 'integer' : 'number'} in ${rangeText(spec.range)}`);
  const shown = spec.defaultText ?? (spec.default !== undefined ? String(spec.default) : undefined);
  if (shown !== undefined) parts.push(`default ${shown}`);
  return parts.length > 0 ? ` (${parts.join('; ')})` : '';
}

/** Runs one CLI invocation and returns its exit code: 0 done, 1 failed, 2 bad usage, 130 cancelled. */
export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  const abort = new AbortController();
  const signals = cancelOnSignals(abort);
  const ctx: CliContext = {
    json: rest.includes('--json'),
    signal: abort.signal,
    log: { info: () => {}, warn: (message) => process.stderr.write(`warning: ${message}\n`) },
  };
  try {
    if (name === undefined || name === '--help' || name === '-h') {
      process.stdout.write(globalHelp());
      return 0;
    }
    if (name === '--version') {
      process.stdout.write(`${version}\n`);
      return 0;
    }
    if (name === 'help') {
      const topic = rest[0];
      process.stdout.write(topic !== undefined && COMMANDS[topic] ? commandHelp(topic, COMMANDS[topic]) : globalHelp());
      return 0;
    }
    const command = COMMANDS[name];
    if (!command) {
      const guess = suggest(name, Object.keys(COMMANDS));
      throw new PruneLensError('usage', `unknown command "${name}"${guess ? ` (did you mean ${guess}?)` : ''}; commands: ${Object.keys(COMMANDS).join(', ')}`);
    }
    // --help wins over every other check, so a half-written command line still gets its help.
    if (rest.includes('--help') || rest.includes('-h')) {
      process.stdout.write(commandHelp(name, command));
      return 0;
    }
    await command.run(parse(rest, command.options), ctx);
    return 0;
  } catch (err) {
    return fail(err, ctx.json, name);
  } finally {
    signals.settle();
  }
}

function fail(err: unknown, json: boolean, command: string | undefined): number {
  const known = err instanceof PruneLensError;
  // parseArgs reports a missing option value with this code; it is a usage error like ours.
  const isParseError = (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS') === true;
  const kind = known ? err.kind : isParseError ? 'usage' : 'internal';
  const message = (err as Error).message;
  if (json) {
    process.stdout.write(`${JSON.stringify({ error: { kind, message, where: known ? err.where : undefined } })}\n`);
  } else {
    process.stderr.write(`prunelens: ${message}\n`);
    const help = command !== undefined && COMMANDS[command] ? `prunelens ${command} --help` : 'prunelens --help';
    if (kind === 'usage') process.stderr.write(`Run "${help}" for usage.\n`);
    if (kind === 'internal') process.stderr.write(`${(err as Error).stack ?? ''}\nThis is a bug in PruneLens; please report it with the command you ran.\n`);
  }
  return kind === 'cancelled' ? 130 : kind === 'usage' ? 2 : 1;
}
