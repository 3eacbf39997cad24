/**
 * `npm run bench:gpu`: the same evaluation and prunes on ORT's CPU provider and on each GPU provider,
 * so a GPU run is judged against the CPU's answer, not only timed. For every model and step (eval,
 * Wanda 50%, SparseGPT 50%) the providers run one after the other; each GPU row gives its perplexity
 * against the CPU's, the share of weights whose pruned/kept state differs from the CPU's mask, its
 * times, and the operators ORT placed on the CPU instead of the GPU (read from ORT's node-placement
 * log). Rows are also appended to --jsonl as they finish, so a run cut short keeps what it measured.
 */
import { appendFileSync, promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { Checkpoint } from '../src/engine/io/checkpoint';
import { PROVIDERS, isProvider, type Provider } from '../src/engine/graph/session';
import { CALIB_TEXT, EMBEDDED, EVAL_TEXT, logTo, modelFolder, runCli, type ModelSource } from './bench-common';

const log = logTo('bench:gpu');

interface ModelRow {
  source: ModelSource;
  /** Calibration windows for the prunes. */
  nsamples: number;
  /** Serves calibration and evaluation alike, as the CLI takes only one. */
  seqlen: number;
  /** Omitted: every window of the evaluation text. */
  maxWindows?: number;
}

/** The two sizes: the embedded model with the published protocol, and TinyLlama-1.1B's shapes with 16 x 512 calibration. */
const MODELS: Record<string, ModelRow> = {
  stories260K: { source: { embedded: EMBEDDED }, nsamples: 128, seqlen: 256 },
  'tinyllama-1.1b': { source: { random: 'tinyllama-1.1b', dtype: 'BF16' }, nsamples: 16, seqlen: 512, maxWindows: 8 },
  // Small enough to try the whole script on 2 CPU cores before spending GPU time.
  'smollm-135m': { source: { random: 'smollm-135m', dtype: 'BF16' }, nsamples: 16, seqlen: 512, maxWindows: 4 },
};

const STEPS = ['eval', 'wanda', 'sparsegpt'] as const;
/** `start` only names the row of a provider that did not start. */
type Step = (typeof STEPS)[number] | 'start';
const SPARSITY = 0.5;

interface Measured {
  model: string;
  step: Step;
  provider: Provider;
  ppl?: number;
  /** Evaluation: forward seconds; prunes: pruning seconds (calibration forward passes included). */
  seconds?: number;
  /** The whole CLI run: loading, tokenizing, dense and pruned evaluation included. */
  wallSeconds?: number;
  tokensPerSecond?: number;
  /** |ppl - cpu ppl| / cpu ppl. */
  pplDiff?: number;
  /** Weights pruned on one provider and kept on the CPU, or the reverse, over all weights. */
  maskDiff?: number;
  /** Operator types ORT placed on the CPU provider in this provider's sessions. */
  cpuOps?: string[];
  error?: string;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      providers: { type: 'string', default: PROVIDERS.join(',') },
      models: { type: 'string', default: 'stories260K,tinyllama-1.1b' },
      jsonl: { type: 'string' },
    },
  });
  const providers = values.providers.split(',');
  const bad = providers.filter((p) => !isProvider(p));
  if (bad.length > 0 || providers[0] !== 'cpu') throw new Error(`--providers must start with cpu (the reference) and list only ${PROVIDERS.join(', ')}; got ${values.providers}`);
  const models = values.models.split(',');
  const unknown = models.filter((m) => !(m in MODELS));
  if (unknown.length > 0) throw new Error(`unknown --models ${unknown.join(', ')}; known: ${Object.keys(MODELS).join(', ')}`);

  // A GPU provider that cannot start must not cost the CPU's share of a long run: each is tried on
  // one window of the embedded model first, and the bench stops when none starts.
  const rows: Measured[] = [];
  const started: Provider[] = ['cpu'];
  for (const provider of providers.slice(1) as Provider[]) {
    const probe = await measure('stories260K', { ...MODELS.stories260K!, maxWindows: 1 }, EMBEDDED, 'eval', provider, '', undefined);
    if (probe.error) {
      rows.push({ ...probe, step: 'start' });
      log(`${provider} does not start: ${probe.error}`);
    } else started.push(provider);
  }
  if (started.length === 1) {
    process.stdout.write(table(rows));
    throw new Error('no GPU provider started; nothing to compare with the CPU');
  }

  const outRoot = await fsp.mkdtemp(path.join(os.tmpdir(), 'prunelens-bench-gpu-'));
  try {
    for (const name of models) {
      const row = MODELS[name]!;
      const dir = await modelFolder(row.source, log);
      for (const step of STEPS) {
        let cpu: Measured | undefined;
        for (const provider of started) {
          const measured = await measure(name, row, dir, step, provider, outRoot, cpu);
          if (provider === 'cpu') cpu = measured;
          rows.push(measured);
          if (values.jsonl) appendFileSync(values.jsonl, JSON.stringify(measured) + '\n');
          log(summary(measured));
        }
        if (step !== 'eval') await removeOutputs(outRoot, name, step);
      }
    }
  } finally {
    await fsp.rm(outRoot, { recursive: true, force: true });
  }
  process.stdout.write(table(rows));
}

async function measure(model: string, row: ModelRow, dir: string, step: Step, provider: Provider, outRoot: string, cpu: Measured | undefined): Promise<Measured> {
  const cpuOps = new Set<string>();
  const placement = placementReader(cpuOps);
  const env = provider === 'cpu' ? process.env : { ...process.env, PRUNELENS_ORT_LOG: 'verbose' };
  const windows = row.maxWindows === undefined ? [] : ['--max-windows', String(row.maxWindows)];
  const common = ['--provider', provider, '--seqlen', String(row.seqlen), ...windows, '--json'];
  const base: Measured = { model, step, provider };
  try {
    let measured: Measured;
    if (step === 'eval') {
      const r = await runCli<{ ppl: number; seconds: number; tokens_per_second: number }>(`${model} eval ${provider}`, ['eval', dir, '--text', EVAL_TEXT, ...common], { env, onStderrLine: placement });
      measured = { ...base, ppl: r.ppl, seconds: r.seconds, tokensPerSecond: r.tokens_per_second };
    } else {
      const start = performance.now();
      const out = outputFolder(outRoot, model, step, provider);
      const r = await runCli<{ ppl: number; prune_seconds: number }>(
        `${model} ${step} ${provider}`,
        ['prune', dir, '--method', step, '--sparsity', String(SPARSITY), '--calib', CALIB_TEXT, '--nsamples', String(row.nsamples), '--eval', EVAL_TEXT, '--out', out, '--overwrite', ...common],
        { env, onStderrLine: placement },
      );
      measured = { ...base, ppl: r.ppl, seconds: r.prune_seconds, wallSeconds: (performance.now() - start) / 1000 };
      if (provider !== 'cpu' && cpu?.ppl !== undefined) measured.maskDiff = await maskDifference(outputFolder(outRoot, model, step, 'cpu'), out);
    }
    if (provider !== 'cpu' && cpu?.ppl !== undefined && measured.ppl !== undefined) measured.pplDiff = Math.abs(measured.ppl - cpu.ppl) / cpu.ppl;
    if (provider !== 'cpu') measured.cpuOps = [...cpuOps].sort();
    return measured;
  } catch (err) {
    // runCli's message repeats the whole command line before the CLI's own message.
    const message = err instanceof Error ? err.message : String(err);
    return { ...base, error: message.replace(/^[^]*? exited with \S+: /, '') };
  }
}

function outputFolder(outRoot: string, model: string, step: Step, provider: Provider): string {
  return path.join(outRoot, `${model}-${step}-${provider}`);
}

async function removeOutputs(outRoot: string, model: string, step: Step): Promise<void> {
  // A 1.1B output is gigabytes; only the CPU's and one provider's are needed at a time.
  for (const provider of PROVIDERS) await fsp.rm(outputFolder(outRoot, model, step, provider), { recursive: true, force: true });
}

/**
 * Reads ORT's verbose node-placement lines ("Node(s) placed on [CPUExecutionProvider]. Number of
 * nodes: N" followed by one "OpType (node name)" line per node) and drops the rest of the verbose
 * log; every other line (the CLI's progress, ORT's warnings) passes through.
 */
function placementReader(cpuOps: Set<string>): (line: string) => void {
  let onCpu = false;
  return (line) => {
    if (line.includes('VerifyEachNodeIsAssignedToAnEp]')) {
      const ep = /placed on \[(\w+)\]/.exec(line);
      if (ep) onCpu = ep[1] === 'CPUExecutionProvider';
      else if (onCpu) {
        const op = /\]\s+(\w+) \(/.exec(line);
        if (op) cpuOps.add(op[1]!);
      }
      return;
    }
    if (/\[[VI]:onnxruntime/.test(line)) return;
    process.stderr.write(line + '\n');
  };
}

/** Over every tensor, the share of weights zero in one checkpoint and non-zero in the other. */
async function maskDifference(a: string, b: string): Promise<number> {
  const left = await Checkpoint.open(a);
  const right = await Checkpoint.open(b);
  try {
    let differ = 0;
    let total = 0;
    for (const name of left.tensorNames()) {
      const x = await left.readF32(name);
      const y = await right.readF32(name);
      for (let i = 0; i < x.length; i++) if ((x[i] === 0) !== (y[i] === 0)) differ++;
      total += x.length;
    }
    return differ / total;
  } finally {
    await left.close();
    await right.close();
  }
}

function summary(m: Measured): string {
  if (m.error) return `${m.model} ${m.step} ${m.provider}: ${m.error}`;
  return `${m.model} ${m.step} ${m.provider}: ppl ${m.ppl?.toPrecision(6)} in ${m.seconds?.toFixed(1)} s`;
}

function table(rows: Measured[]): string {
  const lines = [
    '| model | step | provider | ppl | vs cpu | mask differs | seconds | whole run s | eval tokens/s | ops on CPU |',
    '| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |',
  ];
  for (const m of rows) {
    if (m.error) {
      lines.push(`| ${m.model} | ${m.step} | ${m.provider} | ${m.error.replaceAll('|', '/').replaceAll('\n', ' ').slice(0, 300)} | | | | | | |`);
      continue;
    }
    const cells = [
      m.model,
      m.step,
      m.provider,
      m.ppl!.toPrecision(6),
      m.pplDiff === undefined ? '-' : `${(100 * m.pplDiff).toFixed(3)}%`,
      m.maskDiff === undefined ? '-' : `${(100 * m.maskDiff).toFixed(4)}%`,
      m.seconds!.toFixed(1),
      m.wallSeconds === undefined ? '-' : m.wallSeconds.toFixed(1),
      m.tokensPerSecond === undefined ? '-' : m.tokensPerSecond.toFixed(0),
      m.cpuOps === undefined ? '-' : m.cpuOps.join(', ') || 'none',
    ];
    lines.push(`| ${cells.join(' | ')} |`);
  }
  return lines.join('\n') + '\n';
}

main().catch((err: unknown) => {
  log(err instanceof Error ? err.message : String(err));
  process.exitCode = 1;
});

