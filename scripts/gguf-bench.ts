/**
 * What structured pruning saves where people run models: a random-weight checkpoint with a real model's
 * shapes (scripts/model-shapes.ts), dense and with 20% of its parameters removed by `prunelens prune
 * --structured`, both exported with `prunelens export --format gguf`, then measured in llama.cpp
 * (node-llama-cpp's prebuilt CPU build): file size, resident memory after loading, prompt-processing
 * and generation tokens/s. Each measurement runs in its own process so memory figures do not mix.
 *
 *   npm run bench:gguf [-- smollm-135m|tinyllama-1.1b ...] [-- --type f16|q8_0|...]
 *
 * Speeds are on one thread (see src/engine/llamacpp/llama-client.ts); on a machine of one's own more threads are faster for both.
 */
import { spawnSync } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Token } from 'node-llama-cpp';
import { MODEL_SHAPES, type ModelShapeName } from './model-shapes';
import { randomCheckpointConfigText, writeRandomCheckpoint } from './random-checkpoint';
import { loadGguf, loadLlama } from '../src/engine/llamacpp/llama-client';

const ROOT = path.resolve(__dirname, '..');
const CLI = path.join(ROOT, 'dist', 'cli.js');
const CACHE = path.join(ROOT, '.cache', 'bench-models');
const OUT = path.join(ROOT, '.cache', 'gguf-bench');
const EMBEDDED = path.join(ROOT, 'models', 'stories260K');
const SEED = 1234;
const RATIO = 0.2;
const PROMPT_TOKENS = 256;
const GENERATE_TOKENS = 64;
const REPEATS = 2;
const ROUNDS = 3;

interface Measurement {
  fileBytes: number;
  rssAfterLoadMb: number;
  rssLoadDeltaMb: number;
  promptTokensPerSecond: number;
  generateTokensPerSecond: number;
}

function cli(args: string[]): Record<string, unknown> {
  const r = spawnSync(process.execPath, [CLI, ...args, '--json'], { encoding: 'utf8', maxBuffer: 1 << 26 });
  if (r.status !== 0) throw new Error(`prunelens ${args.join(' ')} failed: ${r.stdout}${r.stderr}`);
  return JSON.parse(r.stdout) as Record<string, unknown>;
}

async function denseCheckpoint(shape: ModelShapeName): Promise<string> {
  const dir = path.join(CACHE, shape);
  const cached = await fsp.readFile(path.join(dir, 'config.json'), 'utf8').catch(() => undefined);
  if (cached !== randomCheckpointConfigText(MODEL_SHAPES[shape], 'BF16')) {
    console.error(`${shape}: generating random BF16 weights into ${path.relative(ROOT, dir)}`);
    await writeRandomCheckpoint(dir, MODEL_SHAPES[shape], { dtype: 'BF16', seed: SEED, tokenizerFrom: EMBEDDED });
  }
  return dir;
}

/** One GGUF file measured in this (fresh) process; printed as JSON for the parent. */
async function measure(file: string): Promise<Measurement> {
  const llama = await loadLlama();
  const before = process.memoryUsage().rss;
  const model = await loadGguf(llama, file);
  const after = process.memoryUsage().rss;
  const context = await model.createContext({ contextSize: PROMPT_TOKENS + GENERATE_TOKENS, batchSize: PROMPT_TOKENS, sequences: 1, threads: 1 });
  const sequence = context.getSequence();
  // Ids of the embedded tokenizer (every shape here copies it), cycled: speed does not depend on the text.
  const prompt = Array.from({ length: PROMPT_TOKENS }, (_, i) => (3 + ((i * 37) % 500)) as Token);
  let promptBest = 0;
  let generateBest = 0;
  for (let r = 0; r < REPEATS; r++) {
    await sequence.clearHistory();
    let t = performance.now();
    await sequence.evaluateWithoutGeneratingNewTokens(prompt);
    promptBest = Math.max(promptBest, PROMPT_TOKENS / ((performance.now() - t) / 1000));
    t = performance.now();
    let n = 0;
    // Greedy decoding from the prompt's end, one token per step, until GENERATE_TOKENS came out.
    for await (const token of sequence.evaluate([prompt[prompt.length - 1]!], { temperature: 0 })) {
      void token;
      if (++n >= GENERATE_TOKENS) break;
    }
    generateBest = Math.max(generateBest, n / ((performance.now() - t) / 1000));
  }
  await context.dispose();
  await model.dispose();
  await llama.dispose();
  const { size } = await fsp.stat(file);
  return { fileBytes: size, rssAfterLoadMb: after / 2 ** 20, rssLoadDeltaMb: (after - before) / 2 ** 20, promptTokensPerSecond: promptBest, generateTokensPerSecond: generateBest };
}

function measureInChild(file: string): Measurement {
  const r = spawnSync(process.execPath, [__filename, '--measure', file], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`measuring ${file} failed: ${r.stdout}${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as Measurement;
}

async function main(argv: string[]): Promise<void> {
  if (argv[0] === '--measure') {
    process.stdout.write(`${JSON.stringify(await measure(argv[1]!))}\n`);
    return;
  }
  const typeAt = argv.indexOf('--type');
  const type = typeAt >= 0 ? argv[typeAt + 1]! : 'f16';
  const shapes = argv.filter((a, i) => !a.startsWith('--') && argv[i - 1] !== '--type') as ModelShapeName[];
  await fsp.mkdir(OUT, { recursive: true });
  const lines = [
    `llama.cpp (node-llama-cpp 3.21.1, prebuilt CPU, 1 thread), GGUF ${type}, random weights with real shapes, ${RATIO * 100}% of parameters removed by \`prune --structured heads,channels --metric random\`; speeds best of ${ROUNDS} alternating rounds of ${REPEATS}, load average ${os.loadavg()[0]!.toFixed(1)} on ${os.cpus().length} cores at the start`,
    '',
    '| model | parameters | GGUF size | RSS after load | load delta | prompt tok/s | generation tok/s |',
    '|---|---|---|---|---|---|---|',
  ];
  for (const shape of shapes.length > 0 ? shapes : (['smollm-135m'] as ModelShapeName[])) {
    const dense = await denseCheckpoint(shape);
    const pruned = path.join(CACHE, `${shape}-structured-20`);
    const prune = cli(['prune', dense, '--structured', 'heads,channels', '--ratio', String(RATIO), '--metric', 'random', '--max-windows', '1', '--out', pruned, '--overwrite']);
    const rows = [
      { label: 'dense', folder: dense, params: Number(prune.params_before), best: undefined as Measurement | undefined },
      { label: `${RATIO * 100}% removed`, folder: pruned, params: Number(prune.params_after), best: undefined as Measurement | undefined },
    ];
    const files = rows.map((row) => {
      const file = path.join(OUT, `${shape}-${row.label.replace(/\W+/g, '-')}-${type}.gguf`);
      cli(['export', row.folder, '--format', 'gguf', '--type', type, '--out', file, '--overwrite']);
      return file;
    });
    // Dense and pruned alternate, best of ROUNDS each, so a busy spell on a shared machine hits both alike.
    for (let round = 0; round < ROUNDS; round++) {
      rows.forEach((row, i) => {
        const m = measureInChild(files[i]!);
        console.error(`${shape} ${row.label} round ${round + 1}: ${JSON.stringify(m)}`);
        row.best = !row.best
          ? m
          : { ...m, rssAfterLoadMb: Math.min(row.best.rssAfterLoadMb, m.rssAfterLoadMb), rssLoadDeltaMb: Math.min(row.best.rssLoadDeltaMb, m.rssLoadDeltaMb), promptTokensPerSecond: Math.max(row.best.promptTokensPerSecond, m.promptTokensPerSecond), generateTokensPerSecond: Math.max(row.best.generateTokensPerSecond, m.generateTokensPerSecond) };
      });
    }
    for (const { label, params, best: m } of rows) {
      lines.push(
        `| ${shape} ${label} | ${(params / 1e6).toFixed(1)} M | ${(m!.fileBytes / 2 ** 20).toFixed(1)} MiB | ${m!.rssAfterLoadMb.toFixed(0)} MiB | ${m!.rssLoadDeltaMb.toFixed(0)} MiB | ${m!.promptTokensPerSecond.toFixed(0)} | ${m!.generateTokensPerSecond.toFixed(1)} |`,
      );
    }
  }
  process.stdout.write(`${lines.join('\n')}\n`);
}

main(process.argv.slice(2)).catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
