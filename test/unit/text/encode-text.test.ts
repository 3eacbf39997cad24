import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { before, describe, it } from 'node:test';
import { PruneLensError } from '../../../src/engine/errors';
import type { EngineEvent } from '../../../src/engine/progress';
import { encodeDocuments, encodeText } from '../../../src/engine/text/encode-text';
import { TextTokenizer } from '../../../src/engine/text/tokenizer';
import { copyOfFixture, editJson, EVAL_TEXT, FIXTURE_MODEL, tempDir } from '../../helpers/fixtures';

const CLI = path.resolve('dist', 'cli.js');
const BACKTRACKING = '^([a-z ]+)+$';
/** Starts with a long run of [a-z ] and ends in a character outside it: the pattern above backtracks without end. */
const RUN_THEN_STOP = 'once upon a time there was a little girl who liked to play outside in the sun all day long!\n';

function stages(events: EngineEvent[]): Extract<EngineEvent, { type: 'stage' }>[] {
  return events.filter((e): e is Extract<EngineEvent, { type: 'stage' }> => e.type === 'stage');
}

/** A copy of the embedded model whose normalizer first runs a backtracking pattern over the text. */
function backtrackingModel(): string {
  const dir = copyOfFixture();
  editJson(path.join(dir, 'tokenizer.json'), (json) => {
    const normalizer = json['normalizer'] as { normalizers: unknown[] };
    normalizer.normalizers.unshift({ type: 'Replace', pattern: { Regex: BACKTRACKING }, content: 'x' });
  });
  return dir;
}

describe('encodeText: this thread or a worker, the token cache, progress, cancellation and the time budget', () => {
  let tokenizer: TextTokenizer;
  let text: string;
  before(async () => {
    tokenizer = await TextTokenizer.load(FIXTURE_MODEL);
    text = fs.readFileSync(EVAL_TEXT, 'utf8');
  });

  it('gives the ids of TextTokenizer.encode, reports the stage, then reads them from the cache', async () => {
    const cacheDir = tempDir();
    const events: EngineEvent[] = [];
    const ids = await encodeText(tokenizer, text, { source: EVAL_TEXT, cacheDir, onProgress: (e) => events.push(e) });
    assert.deepEqual(ids, tokenizer.encode(text));
    const first = stages(events);
    assert.ok(first.every((e) => e.stage === 'tokenize eval.txt' && e.total === text.length));
    assert.deepEqual([first[0]!.done, first.at(-1)!.done], [0, text.length]);
    assert.ok(first.every((e, i) => i === 0 || e.done >= first[i - 1]!.done), 'progress never goes back');
    assert.equal(first.at(-1)!.detail, undefined);
    const entries = fs.readdirSync(path.join(cacheDir, 'tokens'));
    assert.equal(entries.length, 1, `one entry, no temporary files left: ${entries}`);

    events.length = 0;
    const again = await encodeText(tokenizer, text, { source: EVAL_TEXT, cacheDir, onProgress: (e) => events.push(e) });
    assert.deepEqual(again, ids);
    assert.equal(stages(events).at(-1)!.detail, 'cached');
  });

  it('gives the same ids in a worker: for a tokenizer with a pattern of its own, and for a text over 2 MB', async () => {
    const dir = copyOfFixture();
    // A pattern that changes nothing, but could backtrack as far as the encoder knows.
    editJson(path.join(dir, 'tokenizer.json'), (json) => (json['normalizer'] as { normalizers: unknown[] }).normalizers.unshift({ type: 'Replace', pattern: { Regex: '\u0000' }, content: '\u0000' }));
    const patterned = await TextTokenizer.load(dir);
    assert.equal(tokenizer.linear, true);
    assert.equal(patterned.linear, false);
    const events: EngineEvent[] = [];
    assert.deepEqual(await encodeText(patterned, text, { source: EVAL_TEXT, cacheDir: tempDir(), onProgress: (e) => events.push(e) }), tokenizer.encode(text));
    assert.deepEqual([stages(events)[0]!.done, stages(events).at(-1)!.done], [0, text.length]);
    const long = text.repeat(Math.ceil(2.1e6 / Buffer.byteLength(text)));
    assert.deepEqual(await encodeText(tokenizer, long, { source: EVAL_TEXT, cacheDir: tempDir() }), tokenizer.encode(long));
  });

  it('keys the cache on the text and on the tokenizer files', async () => {
    const cacheDir = tempDir();
    await encodeText(tokenizer, text, { source: EVAL_TEXT, cacheDir });
    const events: EngineEvent[] = [];
    await encodeText(tokenizer, `${text} `, { source: EVAL_TEXT, cacheDir, onProgress: (e) => events.push(e) });
    const dir = copyOfFixture();
    editJson(path.join(dir, 'tokenizer_config.json'), (json) => (json['model_max_length'] = 1024));
    await encodeText(await TextTokenizer.load(dir), text, { source: EVAL_TEXT, cacheDir, onProgress: (e) => events.push(e) });
    assert.ok(stages(events).every((e) => e.detail !== 'cached'));
    assert.equal(fs.readdirSync(path.join(cacheDir, 'tokens')).length, 3);
  });

  it('ignores a damaged cache entry (truncated, a flipped byte, garbage) and writes it again', async () => {
    const cacheDir = tempDir();
    const ids = await encodeText(tokenizer, text, { source: EVAL_TEXT, cacheDir });
    const [name] = fs.readdirSync(path.join(cacheDir, 'tokens'));
    const file = path.join(cacheDir, 'tokens', name!);
    const good = fs.readFileSync(file);
    const damaged = [good.subarray(0, good.length - 7), Buffer.concat([good, Buffer.of(0)]), Buffer.from(good).fill(0x41, 5000, 5001), Buffer.from('not a cache entry')];
    for (const bytes of damaged) {
      fs.writeFileSync(file, bytes);
      const events: EngineEvent[] = [];
      const again = await encodeText(tokenizer, text, { source: EVAL_TEXT, cacheDir, onProgress: (e) => events.push(e) });
      assert.deepEqual(again, ids);
      assert.notEqual(stages(events).at(-1)!.detail, 'cached');
      assert.ok(fs.readFileSync(file).equals(good), 'the entry is written again');
    }
  });

  it('never puts the cache inside the checkpoint', async () => {
    const dir = copyOfFixture();
    const local = await TextTokenizer.load(dir);
    const events: EngineEvent[] = [];
    const before = fs.readdirSync(dir).sort();
    await encodeText(local, 'Once upon a time.', { source: 'x.txt', cacheDir: path.join(dir, 'cache'), onProgress: (e) => events.push(e) });
    assert.deepEqual(fs.readdirSync(dir).sort(), before);
    assert.ok(events.some((e) => e.type === 'warning' && /inside the checkpoint/.test(e.message)));
  });

  it('encodes documents one by one, as TextTokenizer.encode does', async () => {
    const docs = ['One day, Tom went out.', '', 'The end.\n\n<s> ok'];
    const ids = await encodeDocuments(tokenizer, docs, { source: 'docs.jsonl', cacheDir: tempDir() });
    assert.deepEqual(ids, docs.map((d) => tokenizer.encode(d)));
  });

  it('stops a tokenizer.json pattern that backtracks without end at the time budget, naming it, the text and the tokenizer', async () => {
    const dir = backtrackingModel();
    const slow = await TextTokenizer.load(dir);
    const budget = { seconds: 2, secondsPerMb: 0 };
    const started = performance.now();
    await assert.rejects(encodeText(slow, RUN_THEN_STOP, { source: '/data/story.txt', cacheDir: tempDir(), budget }), (err: unknown) => {
      assert.ok(err instanceof PruneLensError, String(err));
      assert.equal(err.kind, 'text');
      assert.equal(err.where, path.join(dir, 'tokenizer.json'));
      assert.match(err.message, /took longer than 2 s/);
      assert.ok(err.message.includes(`tokenizer.json normalizer.normalizers[0] (Replace, Regex ${JSON.stringify(BACKTRACKING)})`), err.message);
      assert.ok(err.message.includes('/data/story.txt'), err.message);
      return true;
    });
    // Settled only after the worker stopped; the budget, not the pattern, decided when.
    assert.ok(performance.now() - started < 60_000);
  });

  it('stops at once when cancelled, even inside a backtracking pattern', async () => {
    const slow = await TextTokenizer.load(backtrackingModel());
    const abort = new AbortController();
    const events: EngineEvent[] = [];
    const running = encodeText(slow, RUN_THEN_STOP, { source: 'story.txt', cacheDir: tempDir(), signal: abort.signal, onProgress: (e) => events.push(e) });
    setTimeout(() => abort.abort(), 300);
    await assert.rejects(running, (err: unknown) => err instanceof PruneLensError && err.kind === 'cancelled');
    assert.ok(stages(events).length >= 1);
  });

  it('refuses to start when already cancelled', async () => {
    const abort = new AbortController();
    abort.abort();
    await assert.rejects(encodeText(tokenizer, text, { source: 'eval.txt', signal: abort.signal }), (err: unknown) => err instanceof PruneLensError && err.kind === 'cancelled');
  });
});

describe('Ctrl-C while the CLI tokenizes', () => {
  it('ends the run with exit code 130 and no stack trace, however long the pattern would run', async () => {
    const model = backtrackingModel();
    const textFile = path.join(tempDir(), 'story.txt');
    fs.writeFileSync(textFile, RUN_THEN_STOP.repeat(3));
    const child = spawn(process.execPath, [CLI, 'eval', model, '--text', textFile], { env: { ...process.env, PRUNELENS_CACHE: tempDir() }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<{ code: number | null; at: number }>((resolve) => child.on('exit', (code) => resolve({ code, at: performance.now() })));
    // The worker is inside the pattern once the process has run a moment; give it time to get there under load.
    await new Promise((r) => setTimeout(r, 3000));
    const sent = performance.now();
    child.kill('SIGINT');
    const guard = setTimeout(() => child.kill('SIGKILL'), 30_000);
    const { code, at } = await exited;
    clearTimeout(guard);
    assert.equal(code, 130, stderr);
    assert.doesNotMatch(stderr, /\n\s+at /, 'no stack trace');
    // Reported, not asserted tightly: a loaded machine delays process exit itself.
    assert.ok(at - sent < 10_000, `exited ${(at - sent).toFixed(0)} ms after SIGINT`);
  });
});
