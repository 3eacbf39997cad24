import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { hostname } from 'node:os';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { PruneLensError } from '../../../src/engine/errors';
import { OutputLock, lockPath } from '../../../src/engine/export/output-lock';
import { checkOutputPlacement, checkReplaceable, isSameOrInside, MANIFEST_FILE, realPath, sourcePlace } from '../../../src/engine/export/output-paths';
import { recoverOutput } from '../../../src/engine/export/output-recovery';
import { fingerprintDifferences, ResumeJournal } from '../../../src/engine/export/resume-journal';
import { tempDir } from '../../helpers/fixtures';

function output(dir: string, files: Record<string, string>): void {
  fs.mkdirSync(dir, { recursive: true });
  for (const [name, content] of Object.entries(files)) fs.writeFileSync(path.join(dir, name), content);
  const sizes: Record<string, number> = {};
  for (const name of fs.readdirSync(dir)) sizes[name] = fs.statSync(path.join(dir, name)).size;
  const text = (n: number) => JSON.stringify({ format: 'prunelens.manifest', version: 1, files: { ...sizes, [MANIFEST_FILE]: n } });
  let n = 0;
  while (Buffer.byteLength(text(n)) !== n) n = Buffer.byteLength(text(n));
  fs.writeFileSync(path.join(dir, MANIFEST_FILE), text(n));
}

const rejectsWith = (p: Promise<unknown>, re: RegExp) => assert.rejects(p, (e: unknown) => e instanceof PruneLensError && re.test(e.message));
const deadPid = (): number => Number(spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']).stdout.toString());

describe('output paths', () => {
  it('tells inside from a sibling whose name starts with the same characters or two dots', () => {
    assert.equal(isSameOrInside('/a/src', '/a/src'), true);
    assert.equal(isSameOrInside('/a/src/x', '/a/src'), true);
    assert.equal(isSameOrInside('/a/src/..pruned', '/a/src'), true);
    assert.equal(isSameOrInside('/a/src-pruned', '/a/src'), false);
    assert.equal(isSameOrInside('/a', '/a/src'), false);
  });

  it('resolves links in the existing part of a path and keeps the rest', async () => {
    const dir = tempDir();
    fs.mkdirSync(path.join(dir, 'real'));
    fs.symlinkSync(path.join(dir, 'real'), path.join(dir, 'link'));
    assert.equal(await realPath(path.join(dir, 'link', 'new', 'out')), path.join(fs.realpathSync(dir), 'real', 'new', 'out'));
  });

  it('refuses an output that would hold the files a snapshot links to', async () => {
    const dir = fs.realpathSync(tempDir());
    fs.mkdirSync(path.join(dir, 'blobs'));
    fs.mkdirSync(path.join(dir, 'snap'));
    fs.writeFileSync(path.join(dir, 'blobs', 'b1'), 'x');
    fs.symlinkSync('../blobs/b1', path.join(dir, 'snap', 'config.json'));
    const place = await sourcePlace(path.join(dir, 'snap'));
    assert.deepEqual(place, { dir: path.join(dir, 'snap'), linkedFiles: [path.join(dir, 'blobs', 'b1')] });
    assert.throws(() => checkOutputPlacement(path.join(dir, 'blobs'), place, []), /a file of the source checkpoint/);
    assert.throws(() => checkOutputPlacement(path.join(dir, 'snap', 'out'), place, []), /inside it/);
    assert.throws(() => checkOutputPlacement(dir, place, []), /contains the source/);
    assert.throws(() => checkOutputPlacement(path.join(dir, 'texts'), place, [path.join(dir, 'texts', 'c.txt')]), /which this run reads/);
    assert.doesNotThrow(() => checkOutputPlacement(path.join(dir, 'out'), place, []));
  });

  it('replaces only a folder of exactly the files the manifest lists, at their sizes', async () => {
    const dir = tempDir();
    const out = path.join(dir, 'out');
    output(out, { 'prunelens.json': '{}', 'config.json': '{}' });
    await checkReplaceable(out, true);
    await rejectsWith(checkReplaceable(out, false), /pass --overwrite/);
    fs.writeFileSync(path.join(out, 'config.json'), '{"edited":1}');
    await rejectsWith(checkReplaceable(out, true), /changed since PruneLens wrote it/);
    fs.writeFileSync(path.join(out, 'config.json'), '{}');
    fs.mkdirSync(path.join(out, 'sub'));
    await rejectsWith(checkReplaceable(out, true), /a folder PruneLens did not write/);
    fs.rmdirSync(path.join(out, 'sub'));
    fs.rmSync(path.join(out, MANIFEST_FILE));
    await rejectsWith(checkReplaceable(out, true), /has no prunelens-manifest\.json/);
    await checkReplaceable(path.join(dir, 'absent'), false);
  });
});

describe('output lock', () => {
  it('refuses a second holder and lets go on release', async () => {
    const out = path.join(tempDir(), 'out');
    const { lock } = await OutputLock.acquire(out);
    await rejectsWith(OutputLock.acquire(out), new RegExp(`in use by pid ${process.pid}`));
    await lock.release();
    assert.equal(fs.existsSync(lockPath(out)), false);
    const again = await OutputLock.acquire(out);
    await again.lock.release();
  });

  it('takes over the lock of a process that is gone and hands back its record', async () => {
    const out = path.join(tempDir(), 'out');
    const pid = deadPid();
    fs.writeFileSync(lockPath(out), JSON.stringify({ pid, host: hostname(), processStart: null, started: 'then' }));
    const { lock, stale } = await OutputLock.acquire(out);
    assert.equal(stale?.pid, pid);
    await lock.release();
  });
});

describe('recovery of an interrupted commit', () => {
  it('finishes a commit killed between its two renames', async () => {
    const dir = tempDir();
    const out = path.join(dir, 'out');
    const pid = deadPid();
    output(`${out}.previous-${pid}`, { 'prunelens.json': '{"old":1}' });
    output(`${out}.partial-${pid}`, { 'prunelens.json': '{"new":1}' });
    fs.writeFileSync(lockPath(out), JSON.stringify({ pid, host: hostname(), processStart: null, started: 'then', commit: { partial: `${out}.partial-${pid}`, previous: `${out}.previous-${pid}` } }));
    const result = await recoverOutput(out);
    assert.equal(result.state, 'none');
    assert.equal(fs.readFileSync(path.join(out, 'prunelens.json'), 'utf8'), '{"new":1}');
    assert.deepEqual(fs.readdirSync(dir), ['out']);
  });

  it('reports an unfinished output a resume can continue, and discards it when asked', async () => {
    const dir = tempDir();
    const out = path.join(dir, 'out');
    const partial = `${out}.partial-${deadPid()}`;
    fs.mkdirSync(partial);
    const journal = await ResumeJournal.start(partial, { spec: 1 });
    await journal.save({ blocksDone: 3, blocksTotal: 5 });
    const found = await recoverOutput(out);
    assert.deepEqual([found.state, found.blocksDone, found.blocksTotal, found.folders], ['resumable', 3, 5, [partial]]);
    const gone = await recoverOutput(out, { discard: true });
    assert.equal(gone.state, 'removed');
    assert.deepEqual(fs.readdirSync(dir), []);
  });
});

describe('resume journal', () => {
  it('keeps progress and arrays across a reopen and names differing fingerprint fields', async () => {
    const dir = tempDir();
    const journal = await ResumeJournal.start(dir, { spec: { s: 0.5 }, runtime: { threads: 2 } });
    await journal.saveArray('hidden-1', Float32Array.of(1.5, -2, 3e-8));
    await journal.save({ blocksDone: 1 });
    const read = (await ResumeJournal.read(dir))!;
    assert.equal(read.progress.blocksDone, 1);
    assert.deepEqual([...(await read.loadF32('hidden-1'))!], [1.5, -2, Math.fround(3e-8)]);
    assert.deepEqual(fingerprintDifferences(read.fingerprint, { spec: { s: 0.6 }, runtime: { threads: 2 } }), ['spec']);
    await read.remove();
    assert.deepEqual(fs.readdirSync(dir), []);
  });
});
