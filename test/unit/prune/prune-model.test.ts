import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { PruneLensError } from '../../../src/engine/errors';
import { evaluateModel } from '../../../src/engine/evaluate/evaluate-model';
import type { PruneRecord } from '../../../src/engine/export/record';
import { readTokenLosses, TOKEN_LOSSES_FILE } from '../../../src/engine/export/token-losses';
import { encodeFromF32 } from '../../../src/engine/io/dtype';
import { SafetensorsReader } from '../../../src/engine/io/safetensors-reader';
import { writeSafetensors } from '../../../src/engine/io/safetensors-writer';
import { pruneModel, type PruneModelOptions } from '../../../src/engine/prune/prune-model';
import type { PruneSpec } from '../../../src/engine/prune/spec';
import { TextTokenizer } from '../../../src/engine/text/tokenizer';
import { loadF32Tensors } from '../../reference/safetensors-minimal';
import { copyOfFixture, EVAL_TEXT, FIXTURE_MODEL, SHARED_DATA, tempDir } from '../../helpers/fixtures';

const CALIB = path.join(SHARED_DATA, 'tinystories', 'calibration.txt');

function spec(method: PruneSpec['method'], extra: Partial<PruneSpec> = {}): PruneSpec {
  return { method, sparsity: 0.5, include: [], exclude: [], blocksize: 128, percdamp: 0.01, ...extra };
}

function options(out: string, s: PruneSpec, full: boolean, extra: Partial<PruneModelOptions> = {}): PruneModelOptions {
  return {
    model: FIXTURE_MODEL,
    out,
    spec: s,
    calibration: { file: CALIB, nsamples: full ? 128 : 8, seqlen: full ? 256 : 64, seed: 0 },
    evaluation: { file: EVAL_TEXT, seqlen: full ? 256 : 64, maxWindows: full ? undefined : 4 },
    runtime: { provider: 'cpu' },
    ...extra,
  };
}

function folderHash(dir: string): string {
  const hash = createHash('sha256');
  for (const f of fs.readdirSync(dir).sort()) hash.update(f).update(fs.readFileSync(path.join(dir, f)));
  return hash.digest('hex');
}

/** The written weights, read with the independent test parser (another loader, not ours). */
function written(out: string): Map<string, { shape: number[]; data: Float64Array }> {
  return loadF32Tensors(path.join(out, 'model.safetensors'));
}

function zeroCount(data: ArrayLike<number>, from: number, to: number): number {
  let n = 0;
  for (let i = from; i < to; i++) if (data[i] === 0) n++;
  return n;
}

describe('pruneModel on the embedded model, with the reference protocol (128 x 256 calibration, 595 eval windows)', () => {
  const sourceHash = folderHash(FIXTURE_MODEL);

  it('magnitude 50%: one threshold per matrix, perplexity 40.52 (reference) within 0.5%', async () => {
    const out = path.join(tempDir(), 'magnitude');
    const record = await pruneModel(options(out, spec('magnitude'), true));
    assert.ok(Math.abs(record.perplexity.dense! / 4.6482 - 1) < 1e-3);
    assert.ok(Math.abs(record.perplexity.pruned! / 40.52 - 1) < 0.005, `ppl ${record.perplexity.pruned}`);
    assert.equal(record.calibration, null);
    for (const [name, t] of written(out)) {
      if (!name.endsWith('_proj.weight')) continue;
      assert.equal(zeroCount(t.data, 0, t.data.length), Math.floor(t.data.length / 2), name);
    }
  });

  it('Wanda 50%: half of every row, perplexity 18.84 (reference)', async () => {
    const out = path.join(tempDir(), 'wanda');
    const record = await pruneModel(options(out, spec('wanda'), true));
    assert.ok(Math.abs(record.perplexity.pruned! / 18.84 - 1) < 0.005, `ppl ${record.perplexity.pruned}`);
    for (const [name, t] of written(out)) {
      if (!name.endsWith('_proj.weight')) continue;
      const [rows, cols] = t.shape as [number, number];
      for (let r = 0; r < rows; r++) assert.equal(zeroCount(t.data, r * cols, (r + 1) * cols), Math.floor(cols / 2), `${name} row ${r}`);
    }
    assert.equal(record.measured.sparsity, 0.5);
    assert.equal(folderHash(FIXTURE_MODEL), sourceHash, 'the source checkpoint changed');
  });

  it('SparseGPT 2:4: two zeros in every group of four, perplexity 30.76 (reference)', async () => {
    const out = path.join(tempDir(), 'sparsegpt');
    const record = await pruneModel(options(out, spec('sparsegpt', { nm: { n: 2, m: 4 } }), true));
    assert.ok(Math.abs(record.perplexity.pruned! / 30.76 - 1) < 0.005, `ppl ${record.perplexity.pruned}`);
    assert.equal(record.nm, '2:4');
    for (const [name, t] of written(out)) {
      if (!name.endsWith('_proj.weight')) continue;
      for (let g = 0; g < t.data.length; g += 4) assert.equal(zeroCount(t.data, g, g + 4), 2, `${name} group ${g / 4}`);
    }
  });
});

describe('pruneModel output', () => {
  it('writes a Hugging Face folder that loads where the source loads, with the record and report', async () => {
    const out = path.join(tempDir(), 'wanda-small');
    const record = await pruneModel(options(out, spec('wanda'), false));
    assert.deepEqual(fs.readdirSync(out).sort(), ['SOURCE.md', 'config.json', 'model.safetensors', 'prunelens-block-error.svg', 'prunelens-loss-histogram.svg', 'prunelens-manifest.json', 'prunelens-report.md', 'prunelens-sparsity.svg', 'prunelens-tokens.safetensors', 'prunelens.json', 'tokenizer.json', 'tokenizer_config.json']);
    for (const f of ['config.json', 'tokenizer.json', 'tokenizer_config.json']) {
      assert.deepEqual(fs.readFileSync(path.join(out, f)), fs.readFileSync(path.join(FIXTURE_MODEL, f)), f);
    }
    const saved = JSON.parse(fs.readFileSync(path.join(out, 'prunelens.json'), 'utf8')) as PruneRecord;
    assert.deepEqual(saved, JSON.parse(JSON.stringify(record)));
    assert.equal(saved.calibration!.nsamples, 8);
    assert.equal(saved.calibration!.sha256, createHash('sha256').update(fs.readFileSync(CALIB)).digest('hex'));
    assert.equal(Object.values(saved.tensors).filter((t) => t.targeted).length, 35);
    assert.equal(saved.layers.length, 5);
    const source = written(FIXTURE_MODEL);
    for (const [name, t] of written(out)) {
      if (!name.endsWith('_proj.weight')) assert.deepEqual(t.data, source.get(name)!.data, `${name} changed`);
    }
    const report = fs.readFileSync(path.join(out, 'prunelens-report.md'), 'utf8');
    assert.match(report, /\| pruned \| \d+\.\d{2} \(x\d+\.\d{3}\) \|/);
    assert.match(report, /\| 4 \| 50\.0% \| 50\.0% \| 50\.0% \| 50\.0% \| 50\.0% \| 50\.0% \| 50\.0% \| 50\.0% \|/);
    assert.equal(fs.readdirSync(path.dirname(out)).length, 1, 'no partial folder left beside the output');

    const losses = await readTokenLosses(path.join(out, TOKEN_LOSSES_FILE));
    assert.deepEqual([losses.textFile, losses.seqlen, losses.windows], [EVAL_TEXT, 64, 4]);
    const mean = (a: Float32Array): number => a.reduce((sum, x) => sum + x, 0) / a.length;
    for (const [values, ppl] of [[losses.dense, record.perplexity.dense!], [losses.pruned, record.perplexity.pruned!]] as const) {
      assert.equal(values.length, 4 * 63);
      assert.ok(Math.abs(mean(values) / Math.log(ppl) - 1) < 1e-6, `mean ${mean(values)}, log ppl ${Math.log(ppl)}`);
    }
    const tokenizer = await TextTokenizer.load(FIXTURE_MODEL);
    const text = fs.readFileSync(EVAL_TEXT, 'utf8');
    const ids = tokenizer.encode(text);
    for (const w of [0, 3]) {
      for (let t = 0; t < 10; t++) {
        // decode drops the space a lone `▁word` token starts with.
        const k = w * 63 + t;
        const slice = text.slice(losses.starts[k], losses.ends[k]);
        assert.equal(slice.replace(/^ /, ''), tokenizer.decode([ids[w * 64 + t + 1]!]), `window ${w} target ${t}`);
      }
    }
  });

  it('prunes only the linears the patterns select', async () => {
    const out = path.join(tempDir(), 'mlp-only');
    const record = await pruneModel(options(out, spec('sparsegpt', { include: ['model.layers.*.mlp.*'], exclude: ['model.layers.4.**'] }), false));
    const source = written(FIXTURE_MODEL);
    for (const [name, t] of written(out)) {
      const pruned = /^model\.layers\.[0-3]\.mlp\./.test(name);
      assert.equal(record.tensors[name]?.targeted ?? false, pruned, name);
      if (!pruned) assert.deepEqual(t.data, source.get(name)!.data, `${name} changed`);
      else assert.ok(zeroCount(t.data, 0, t.data.length) >= t.data.length / 2, name);
    }
  });

  it('keeps the source dtype and stores zeros as +0.0', async () => {
    const dir = copyOfFixture();
    const file = path.join(dir, 'model.safetensors');
    const reader = await SafetensorsReader.open(file);
    const specs = [...reader.entries.values()].map(({ name, shape }) => ({ name, shape, dtype: 'BF16' as const }));
    const values = new Map<string, Float32Array>();
    for (const s of specs) values.set(s.name, await reader.readF32(s.name));
    await reader.close();
    await writeSafetensors(file, specs, (s) => encodeFromF32('BF16', values.get(s.name)!, s.name));
    const out = path.join(tempDir(), 'bf16');
    await pruneModel({ ...options(out, spec('sparsegpt'), false), model: dir });
    const result = await SafetensorsReader.open(path.join(out, 'model.safetensors'));
    try {
      for (const entry of result.entries.values()) assert.equal(entry.dtype, 'BF16', entry.name);
      const bytes = await result.readBytes('model.layers.2.mlp.down_proj.weight');
      let zeros = 0;
      for (let i = 0; i < bytes.length; i += 2) {
        const bits = bytes[i]! | (bytes[i + 1]! << 8);
        assert.notEqual(bits, 0x8000, 'a -0.0 was stored');
        if (bits === 0) zeros++;
      }
      assert.ok(zeros >= bytes.length / 4, `only ${zeros} zeros`);
    } finally {
      await result.close();
    }
  });

  it('leaves nothing behind when cancelled, and the source unchanged', async () => {
    const parent = tempDir();
    const out = path.join(parent, 'cancelled');
    const abort = new AbortController();
    const before = fs.readdirSync(FIXTURE_MODEL).map((f) => fs.statSync(path.join(FIXTURE_MODEL, f)).mtimeMs);
    await assert.rejects(
      pruneModel({
        ...options(out, spec('wanda'), false),
        signal: abort.signal,
        onProgress: (e) => e.type === 'stage' && e.stage === 'prune' && e.done === 2 && abort.abort(),
      }),
      (err: unknown) => err instanceof PruneLensError && err.kind === 'cancelled',
    );
    assert.deepEqual(fs.readdirSync(parent), []);
    assert.deepEqual(fs.readdirSync(FIXTURE_MODEL).map((f) => fs.statSync(path.join(FIXTURE_MODEL, f)).mtimeMs), before);
  });

  it('refuses to write into the source, over a folder it did not make, or over its own without --overwrite', async () => {
    await assert.rejects(pruneModel(options(path.join(FIXTURE_MODEL, 'pruned'), spec('magnitude'), false)), /must not be the source checkpoint or inside it/);
    const parent = tempDir();
    const foreign = path.join(parent, 'foreign');
    fs.mkdirSync(foreign);
    fs.writeFileSync(path.join(foreign, 'notes.txt'), 'keep me');
    await assert.rejects(pruneModel(options(foreign, spec('magnitude'), false, { overwrite: true })), /already exists and is not a PruneLens output/);
    assert.equal(fs.readFileSync(path.join(foreign, 'notes.txt'), 'utf8'), 'keep me');
    const ours = path.join(parent, 'ours');
    await pruneModel(options(ours, spec('magnitude'), false));
    await assert.rejects(pruneModel(options(ours, spec('magnitude'), false)), /already exists \(an earlier PruneLens output\); pass --overwrite/);
    const again = await pruneModel(options(ours, spec('magnitude', { sparsity: 0.3 }), false, { overwrite: true }));
    assert.equal((JSON.parse(fs.readFileSync(path.join(ours, 'prunelens.json'), 'utf8')) as PruneRecord).sparsity, 0.3);
    assert.equal(again.sparsity, 0.3);
    assert.deepEqual(fs.readdirSync(parent).sort(), ['foreign', 'ours']);
  });

  it('asks for calibration text for the methods that need it', async () => {
    await assert.rejects(
      pruneModel({ ...options(path.join(tempDir(), 'x'), spec('wanda'), false), calibration: undefined }),
      /wanda needs calibration text \(--calib FILE\)/,
    );
  });
});


describe('pruneModel with a dense evaluation made earlier', () => {
  it('uses it instead of evaluating the dense model again, and refuses one of another text or seqlen', async () => {
    const dense = await evaluateModel({ model: FIXTURE_MODEL, textFile: EVAL_TEXT, seqlen: 64, maxWindows: 4, runtime: { provider: 'cpu' } });
    const stages: string[] = [];
    const given = await pruneModel(
      options(path.join(tempDir(), 'given'), spec('magnitude'), false, { calibration: undefined, dense, onProgress: (e) => void (e.type === 'stage' && stages.push(e.stage)) }),
    );
    assert.ok(!stages.includes('evaluate dense'), 'the dense model is not evaluated again');
    assert.equal(given.perplexity.dense, dense.ppl);
    const evaluated = await pruneModel(options(path.join(tempDir(), 'evaluated'), spec('magnitude'), false, { calibration: undefined }));
    assert.ok(Math.abs(evaluated.perplexity.dense! - dense.ppl) < 1e-9 * dense.ppl, `${evaluated.perplexity.dense} vs ${dense.ppl}`);
    assert.equal(given.perplexity.pruned, evaluated.perplexity.pruned);
    const losses = await readTokenLosses(path.join(given.output, TOKEN_LOSSES_FILE));
    assert.deepEqual(Array.from(losses.dense), Array.from(dense.tokenNll));
    const wrong = await evaluateModel({ model: FIXTURE_MODEL, textFile: EVAL_TEXT, seqlen: 32, maxWindows: 8, runtime: { provider: 'cpu' } });
    const out = path.join(tempDir(), 'refused');
    await assert.rejects(pruneModel(options(out, spec('magnitude'), false, { calibration: undefined, dense: wrong })), /is not one of this text \(4 windows of 64/);
    assert.equal(fs.existsSync(out), false, 'nothing is left behind');
  });
});
