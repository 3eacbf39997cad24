/**
 * The outside check of GGUF export (`npm run test:llama`): PruneLens makes the models the way a person
 * does (`prunelens prune`, `prunelens export`), and llama.cpp, through node-llama-cpp, must tokenize the
 * evaluation text into the same ids and score the same windows within 0.5% of PruneLens's perplexity,
 * at F32 and F16, for the dense embedded model, Wanda 50%, SparseGPT 2:4, an OWL plan and a model with
 * heads, MLP channels and a layer cut out. Slow (llama.cpp's per-position probabilities cost ~0.7 s
 * per 256-token window on one thread), so it scores the first WINDOWS windows of the protocol.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Llama } from 'node-llama-cpp';
import { TextTokenizer } from '../../src/engine/text/tokenizer';
import { llamaPerplexity, llamaTokenize, loadGguf, loadLlama } from '../../src/engine/llamacpp/llama-client';
import { FAMILY_CASES } from '../helpers/family-configs';
import { writeTinyCheckpoint } from '../helpers/tiny-checkpoint';

const SEQLEN = 256;
const WINDOWS = Number(process.env.PRUNELENS_LLAMA_WINDOWS ?? 32);
const MODEL = path.resolve('models', 'stories260K');
const TEXT = path.resolve('data', 'tinystories', 'eval.txt');

function cli(...args: string[]): Record<string, unknown> {
  const r = spawnSync(process.execPath, [path.resolve('dist', 'cli.js'), ...args, '--json'], { encoding: 'utf8' });
  assert.equal(r.status, 0, `prunelens ${args.join(' ')}: ${r.stdout}${r.stderr}`);
  return JSON.parse(r.stdout) as Record<string, unknown>;
}

describe(`GGUF export checked in llama.cpp (seqlen ${SEQLEN}, first ${WINDOWS} windows of eval.txt)`, () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'prunelens-gguf-'));
  let llama: Llama;
  let ids: number[];
  before(async () => {
    llama = await loadLlama();
    ids = Array.from((await TextTokenizer.load(MODEL)).encode(fs.readFileSync(TEXT, 'utf8')));
  });
  after(async () => {
    await llama?.dispose();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const common = ['--eval', TEXT, '--seqlen', String(SEQLEN), '--max-windows', String(WINDOWS)];
  const cases: { name: string; make: () => { folder: string; ppl: number } }[] = [
    { name: 'dense', make: () => ({ folder: MODEL, ppl: cli('eval', MODEL, '--text', TEXT, '--seqlen', String(SEQLEN), '--max-windows', String(WINDOWS)).ppl as number }) },
    { name: 'Wanda 50%', make: () => pruned('wanda50', '--method', 'wanda', '--sparsity', '0.5') },
    { name: 'SparseGPT 2:4', make: () => pruned('sparsegpt24', '--method', 'sparsegpt', '--nm', '2:4') },
    { name: 'OWL plan (Wanda 60%)', make: () => pruned('owl60', '--method', 'wanda', '--allocation', 'owl', '--sparsity', '0.6') },
    {
      name: 'structured: KV heads + MLP channels (20%), then layer 3',
      make: () => {
        const first = pruned('heads-channels', '--structured', 'heads,channels', '--ratio', '0.2');
        return pruned('heads-channels-layer', '--remove', 'L3', '--from', first.folder);
      },
    },
  ];

  function pruned(name: string, ...args: string[]): { folder: string; ppl: number } {
    const from = args.includes('--from') ? args[args.indexOf('--from') + 1]! : MODEL;
    const rest = args.filter((a, i) => a !== '--from' && args[i - 1] !== '--from');
    const out = path.join(dir, name);
    const result = cli('prune', from, ...rest, ...common, '--out', out);
    return { folder: out, ppl: result.ppl as number };
  }

  for (const c of cases) {
    it(`${c.name}: same token ids, perplexity within 0.5% at F32 and F16`, async () => {
      const { folder, ppl } = c.make();
      for (const type of ['f32', 'f16']) {
        const file = path.join(dir, `${path.basename(folder)}-${type}.gguf`);
        cli('export', folder, '--format', 'gguf', '--type', type, '--out', file);
        const model = await loadGguf(llama, file);
        try {
          assert.deepEqual(llamaTokenize(model, fs.readFileSync(TEXT, 'utf8')), ids, 'llama.cpp tokenizes the evaluation text differently');
          const result = await llamaPerplexity(model, ids, SEQLEN, WINDOWS);
          const gap = Math.abs(result.ppl / ppl - 1);
          console.log(`${c.name} ${type}: PruneLens ${ppl.toFixed(4)}, llama.cpp ${result.ppl.toFixed(4)} (${(gap * 100).toFixed(3)}%) over ${result.windows} windows`);
          assert.equal(result.windows, WINDOWS);
          assert.ok(gap < 0.005, `${type}: llama.cpp ${result.ppl} vs PruneLens ${ppl}`);
        } finally {
          await model.dispose();
        }
      }
    });
  }
});

/**
 * GPT-2 and GPT-NeoX in llama.cpp's `gpt2` and `gptneox` architectures: random-weight checkpoints of
 * each family's real config fields (with the embedded model's tokenizer), dense and Wanda 50%, scored
 * by both on the same windows.
 */
describe(`GGUF export of GPT-2 and GPT-NeoX checked in llama.cpp (seqlen ${SEQLEN}, first ${WINDOWS} windows)`, () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'prunelens-gguf-gpt-'));
  let llama: Llama;
  let ids: number[];
  before(async () => {
    llama = await loadLlama();
    ids = Array.from((await TextTokenizer.load(MODEL)).encode(fs.readFileSync(TEXT, 'utf8')));
  });
  after(async () => {
    await llama?.dispose();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  for (const family of ['gpt2 (transformer. prefix, exact gelu, 3 layers)', 'gpt_neox', 'gpt_neox (sequential residual, rotary_pct 0.5)']) {
    it(`${family}: dense and Wanda 50%, perplexity within 0.5% at F32 and F16`, async () => {
      const { config, renameTensor } = FAMILY_CASES[family]!;
      const source = path.join(dir, family.replace(/\W+/g, '-'));
      await writeTinyCheckpoint(source, { ...config, vocab_size: 512 }, 7, renameTensor);
      const dense = cli('eval', source, '--text', TEXT, '--seqlen', String(SEQLEN), '--max-windows', String(WINDOWS)).ppl as number;
      const out = `${source}-wanda50`;
      const wanda = cli('prune', source, '--method', 'wanda', '--sparsity', '0.5', '--eval', TEXT, '--seqlen', String(SEQLEN), '--max-windows', String(WINDOWS), '--out', out).ppl as number;
      for (const [folder, ppl] of [[source, dense], [out, wanda]] as const) {
        for (const type of ['f32', 'f16']) {
          const file = `${folder}-${type}.gguf`;
          cli('export', folder, '--format', 'gguf', '--type', type, '--out', file);
          const model = await loadGguf(llama, file);
          try {
            assert.deepEqual(llamaTokenize(model, fs.readFileSync(TEXT, 'utf8')), ids, 'llama.cpp tokenizes the evaluation text differently');
            const result = await llamaPerplexity(model, ids, SEQLEN, WINDOWS);
            const gap = Math.abs(result.ppl / ppl - 1);
            console.log(`${family} ${path.basename(folder)} ${type}: PruneLens ${ppl.toFixed(4)}, llama.cpp ${result.ppl.toFixed(4)} (${(gap * 100).toFixed(3)}%) over ${result.windows} windows`);
            assert.equal(result.windows, WINDOWS);
            assert.ok(gap < 0.005, `${type}: llama.cpp ${result.ppl} vs PruneLens ${ppl}`);
          } finally {
            await model.dispose();
          }
        }
      }
    });
  }
});
