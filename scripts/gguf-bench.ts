/**
 * What structured pruning saves where people run models: a random-weight checkpoint with a real model's
 * shapes (scripts/model-shapes.ts), dense and with 20% of its parameters removed by `prunelens prune
 * --structured`, both exported with `prunelens export --format gguf`, then measured in llama.cpp
 * (node-llama-cpp's prebuilt CPU build) by the engine's own `llamaSpeed`, the code behind a run's
 * savings report: file size, resident memory after loading, prompt-processing and generation tokens/s.
 * Each measurement runs in its own process so memory figures do not mix.
 *
 *   npm run bench:gguf [-- smollm-135m|tinyllama-1.1b ...] [-- --type f16|q8_0|...]
 *
 * Speeds are on one thread (see src/engine/llamacpp/llama-client.ts); on a machine of one's own more threads are faster for both.
 */
import { spawnSync } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { EVAL_TEXT, ROOT, logTo, modelFolder, runCli } from './bench-common';
import type { ModelShapeName } from './model-shapes';
import { bestSpeed, llamaSpeed, loadLlama, type LlamaSpeed } from '../src/engine/llamacpp/llama-client';

const OUT = path.join(ROOT, '.cache', 'gguf-bench');
const RATIO = 0.2;
const PROMPT_TOKENS = 256;
const GENERATE_TOKENS = 64;
const REPEATS = 2;
const ROUNDS = 3;
const log = logTo('gguf-bench');

/** One GGUF file measured in this (fresh) process; printed as JSON for the parent. */
async function measure(file: string): Promise<LlamaSpeed> {
  const llama = await loadLlama();
  try {
    const text = await fsp.readFile(EVAL_TEXT, 'utf8');
    return await llamaSpeed(llama, file, { text, promptTokens: PROMPT_TOKENS, generateTokens: GENERATE_TOKENS, repeats: REPEATS });
  } finally {
    await llama.dispose();
  }
}

function measureInChild(file: string): LlamaSpeed {
  const r = spawnSync(process.execPath, [__filename, '--measure', file], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`measuring ${file} failed: ${r.stdout}${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as LlamaSpeed;
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
    const dense = await modelFolder({ random: shape, dtype: 'BF16' }, log);
    const pruned = path.join(ROOT, '.cache', 'bench-models', `${shape}-structured-20`);
    const prune = await runCli<{ params_before: number; params_after: number }>(`prune ${shape}`, ['prune', dense, '--structured', 'heads,channels', '--ratio', String(RATIO), '--metric', 'random', '--max-windows', '1', '--out', pruned, '--overwrite', '--json']);
    const rows = [
      { label: 'dense', folder: dense, params: prune.params_before, best: undefined as LlamaSpeed | undefined, file: '' },
      { label: `${RATIO * 100}% removed`, folder: pruned, params: prune.params_after, best: undefined as LlamaSpeed | undefined, file: '' },
    ];
    for (const row of rows) {
      row.file = path.join(OUT, `${shape}-${row.label.replace(/\W+/g, '-')}-${type}.gguf`);
      await runCli(`export ${row.label}`, ['export', row.folder, '--format', 'gguf', '--type', type, '--out', row.file, '--overwrite', '--json']);
    }
    // Dense and pruned alternate, best of ROUNDS each, so a busy spell on a shared machine hits both alike.
    for (let round = 0; round < ROUNDS; round++) {
      for (const row of rows) {
        const m = measureInChild(row.file);
        log(`${shape} ${row.label} round ${round + 1}: ${JSON.stringify(m)}`);
        row.best = row.best ? bestSpeed(row.best, m) : m;
      }
    }
    for (const { label, params, best, file } of rows) {
      const { size } = await fsp.stat(file);
      lines.push(
        `| ${shape} ${label} | ${(params / 1e6).toFixed(1)} M | ${(size / 2 ** 20).toFixed(1)} MiB | ${best!.residentMiB.toFixed(0)} MiB | ${best!.loadMiB.toFixed(0)} MiB | ${best!.promptTokensPerSecond.toFixed(0)} | ${best!.generateTokensPerSecond.toFixed(1)} |`,
      );
    }
  }
  process.stdout.write(`${lines.join('\n')}\n`);
}

main(process.argv.slice(2)).catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
