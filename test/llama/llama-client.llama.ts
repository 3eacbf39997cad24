/**
 * The engine's llama.cpp client (src/engine/llamacpp) against GGUF files PruneLens exported, checked by
 * independent means: llama.cpp's greedy continuation equals PruneLens's own (ONNX Runtime) greedy
 * continuation id for id at F32, for the dense model and a structured run; Try It gives both; the
 * savings of a measured export are the files' sizes on disk, land once in the run's report and leave
 * the folder one PruneLens can still replace. Run by `npm run test:llama` (node-llama-cpp is optional).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Llama } from 'node-llama-cpp';
import { generateFromModel } from '../../src/engine/evaluate/generate-model';
import { checkReplaceable } from '../../src/engine/export/output-paths';
import { exportRunGguf } from '../../src/engine/llamacpp/export-run-gguf';
import { cachedGguf } from '../../src/engine/llamacpp/gguf-cache';
import { llamaGenerate, llamaInstalled, loadGguf, loadLlama } from '../../src/engine/llamacpp/llama-client';
import { tryRun } from '../../src/engine/llamacpp/try-run';

const MODEL = path.resolve('models', 'stories260K');
const PROMPT = 'Once upon a time, there was a little';
const TOKENS = 48;
// The bundle runs from out/llama, where the engine's bundled-text paths do not reach.
const TEXT = path.resolve('data', 'tinystories', 'eval.txt');

function cli(...args: string[]): Record<string, unknown> {
  const r = spawnSync(process.execPath, [path.resolve('dist', 'cli.js'), ...args, '--json'], { encoding: 'utf8', env: process.env });
  assert.equal(r.status, 0, `prunelens ${args.join(' ')}: ${r.stdout}${r.stderr}`);
  return JSON.parse(r.stdout) as Record<string, unknown>;
}

/** PruneLens's own greedy continuation (ONNX Runtime, f32): the generated ids. */
async function ours(model: string): Promise<number[]> {
  const r = await generateFromModel({ model, prompt: PROMPT, newTokens: TOKENS, runtime: { provider: 'cpu', threads: 1 } });
  return Array.from(r.ids.slice(r.promptTokens));
}

describe('the engine\'s llama.cpp client on exported GGUF files', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'prunelens-llama-client-'));
  const run = path.join(dir, 'structured-20');
  let llama: Llama;
  before(async () => {
    // Everything the cache exports goes under this test's folder, never the user's cache.
    process.env.PRUNELENS_CACHE = path.join(dir, 'cache');
    llama = await loadLlama();
    cli('prune', MODEL, '--structured', 'heads,channels', '--ratio', '0.2', '--max-windows', '1', '--out', run);
  });
  after(async () => {
    await llama?.dispose();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('finds node-llama-cpp, which this checkout installs as an optional dependency', () => {
    assert.equal(llamaInstalled(), true);
  });

  for (const [name, folder] of [['dense', MODEL], ['structured 20%', run]] as const) {
    it(`${name}: llama.cpp's greedy continuation of an F32 export equals PruneLens's, id for id`, async () => {
      const { file } = await cachedGguf(folder, 'f32');
      const model = await loadGguf(llama, file);
      try {
        const theirs = await llamaGenerate(model, PROMPT, TOKENS);
        const expected = await ours(folder);
        assert.ok(theirs.tokens > 8, `llama.cpp stopped after ${theirs.tokens} tokens`);
        // llama.cpp stops at the end-of-text token; PruneLens generates on through it.
        assert.deepEqual(theirs.ids, expected.slice(0, theirs.tokens));
        assert.equal(theirs.promptTokens, 10);
      } finally {
        await model.dispose();
      }
    });
  }

  it('Try It: the dense and the pruned continuation, each the model\'s own, from cached GGUF files exported once', async () => {
    const first = await tryRun({ model: run, prompt: PROMPT, maxTokens: TOKENS, type: 'f32' });
    assert.equal(first.dense.model, MODEL);
    assert.equal(first.pruned.model, run);
    assert.deepEqual(first.dense.ids, (await ours(MODEL)).slice(0, first.dense.tokens));
    assert.deepEqual(first.pruned.ids, (await ours(run)).slice(0, first.pruned.tokens));
    assert.notDeepEqual(first.dense.ids, first.pruned.ids, 'pruning 20% of the parameters changed nothing');
    const stamps = [first.dense.file, first.pruned.file].map((f) => fs.statSync(f).mtimeMs);
    const again = await tryRun({ model: run, prompt: PROMPT, maxTokens: TOKENS, type: 'f32' });
    assert.deepEqual([again.dense.file, again.pruned.file].map((f) => fs.statSync(f).mtimeMs), stamps, 'the cached files were written again');
    assert.deepEqual(again.pruned.ids, first.pruned.ids);
  });

  it('a measured export records file sizes as on disk, once in the report, and keeps the run replaceable', async () => {
    const out = path.join(dir, 'structured-20-f16.gguf');
    for (let i = 0; i < 2; i++) await exportRunGguf({ model: run, type: 'f16', out, overwrite: true, measure: true, textFile: TEXT });
    const record = JSON.parse(fs.readFileSync(path.join(run, 'prunelens.json'), 'utf8')) as { gguf: { file: string; savings: { dense: { file: string; bytes: number; generateTokensPerSecond: number }; pruned: { bytes: number } } } };
    const s = record.gguf.savings;
    assert.equal(record.gguf.file, out);
    assert.equal(s.pruned.bytes, fs.statSync(out).size);
    assert.equal(s.dense.bytes, fs.statSync(s.dense.file).size);
    assert.equal(s.dense.file, (await cachedGguf(MODEL, 'f16')).file);
    assert.ok(s.pruned.bytes < 0.9 * s.dense.bytes, `the structured GGUF is not smaller: ${s.pruned.bytes} vs ${s.dense.bytes}`);
    assert.ok(s.dense.generateTokensPerSecond > 0);
    const report = fs.readFileSync(path.join(run, 'prunelens-report.md'), 'utf8');
    assert.equal(report.split('## In llama.cpp (GGUF)').length, 2, 'the savings section is in the report exactly once');
    assert.match(report, /\| GGUF file \| 0\.\d MiB \| 0\.\d MiB \| −\d+% \|/);
    await checkReplaceable(run, true);
  });

  it('refuses a folder that is not a PruneLens run before writing anything', async () => {
    const out = path.join(dir, 'dense.gguf');
    await assert.rejects(exportRunGguf({ model: MODEL, type: 'f16', out, measure: true }), /not a PruneLens run/);
    assert.equal(fs.existsSync(out), false);
  });
});
