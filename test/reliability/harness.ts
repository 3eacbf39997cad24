import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

/**
 * Drives the built CLI (dist/cli.js) as a user does, in a fresh folder per case, and checks what a
 * user relies on: the exit code, a message that names what went wrong and where, no stack trace, and
 * that nothing in the folder changed except what the case allows (so the source is byte for byte
 * what it was, and no partial output, lock or moved-aside folder is left behind).
 */
export const CLI = path.resolve('dist', 'cli.js');
export const FIXTURE_MODEL = path.resolve('models', 'stories260K');
export const EVAL_TEXT = path.resolve('data', 'tinystories', 'eval.txt');
export const CALIB_TEXT = path.resolve('data', 'tinystories', 'calibration.txt');

export interface Work {
  dir: string;
  /** A private copy of the embedded model. */
  model: string;
  /** Where a case's output goes unless it says otherwise. */
  out: string;
  /** Short texts (tokenized in well under a second). */
  evalText: string;
  calibText: string;
  at(...parts: string[]): string;
}

export interface Outcome {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  seconds: number;
}

export interface Expectation {
  args: string[];
  code: number;
  /** What went wrong, matched against the error message (or stderr when the run succeeds). */
  message?: RegExp;
  /** Where: a path or option the message must name. */
  where?: string;
  /** Paths (relative to the case folder) the run may create, change or delete; everything else must be unchanged. */
  changes?: string[];
  /** Runs beside the child: interrupts it, races it. */
  during?(child: ChildProcess, work: Work): Promise<void>;
  check?(outcome: Outcome, work: Work): void | Promise<void>;
}

export interface Case {
  name: string;
  /** The numbered item of the issue this case reproduces. */
  issue?: string;
  /** Part of the quick subset that `npm test` runs. */
  fast?: boolean;
  /** Mounts a file system (read-only, full disk): needs root; skipped otherwise. */
  mounts?: boolean;
  prepare(work: Work): Promise<Expectation> | Expectation;
}

export function makeWork(root: string, name: string): Work {
  const dir = path.join(root, name.replace(/[^a-z0-9]+/gi, '-').slice(0, 60));
  fs.mkdirSync(dir, { recursive: true });
  const model = path.join(dir, 'model');
  fs.cpSync(FIXTURE_MODEL, model, { recursive: true });
  for (const f of fs.readdirSync(model)) fs.chmodSync(path.join(model, f), 0o644);
  const evalText = path.join(dir, 'eval.txt');
  fs.writeFileSync(evalText, fs.readFileSync(EVAL_TEXT).subarray(0, 12_000));
  const calibText = path.join(dir, 'calib.txt');
  fs.writeFileSync(calibText, fs.readFileSync(CALIB_TEXT).subarray(0, 40_000));
  return { dir, model, out: path.join(dir, 'out'), evalText, calibText, at: (...parts) => path.join(dir, ...parts) };
}

/** A quick successful prune of the case's model: magnitude (no calibration), two short windows. */
export function quickPrune(work: Work, ...extra: string[]): string[] {
  return ['prune', work.model, '--method', 'magnitude', '--eval', work.evalText, '--seqlen', '64', '--max-windows', '2', '--out', work.out, '--json', ...extra];
}

/** A prune that calibrates (Wanda) on the short text: 8 windows of 64 tokens. */
export function calibratedPrune(work: Work, ...extra: string[]): string[] {
  return ['prune', work.model, '--method', 'wanda', '--calib', work.calibText, '--nsamples', '8', '--eval', work.evalText, '--seqlen', '64', '--max-windows', '2', '--out', work.out, '--json', ...extra];
}

/** Every path under `dir`: file contents hashed, links by target, folders by name; links are not followed. */
export function snapshot(dir: string): Map<string, string> {
  const result = new Map<string, string>();
  const walk = (d: string): void => {
    for (const entry of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, entry.name);
      const rel = path.relative(dir, p);
      if (entry.isSymbolicLink()) result.set(rel, `link:${fs.readlinkSync(p)}`);
      else if (entry.isDirectory()) {
        result.set(rel, 'dir');
        walk(p);
      } else result.set(rel, `file:${createHash('sha256').update(fs.readFileSync(p)).digest('hex')}`);
    }
  };
  walk(dir);
  return result;
}

export function run(args: string[], options: { cwd?: string; during?: (child: ChildProcess) => Promise<void>; timeoutMs?: number; nodeArgs?: string[] } = {}): Promise<Outcome> {
  const start = performance.now();
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...(options.nodeArgs ?? []), CLI, ...args], { cwd: options.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 600_000);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, seconds: (performance.now() - start) / 1000 });
    });
    options.during?.(child).catch((err: unknown) => {
      stderr += `\n[harness: ${(err as Error).message}]`;
    });
  });
}

/** The error object the CLI printed with --json, if any. */
export function errorOf(outcome: Outcome): { kind?: string; message?: string; where?: string } | undefined {
  const line = outcome.stdout.trim().split('\n').pop() ?? '';
  try {
    return (JSON.parse(line) as { error?: { kind?: string; message?: string; where?: string } }).error;
  } catch {
    return undefined;
  }
}

/** Checks a case's outcome; returns the failures in words (empty when it passed). */
export async function runCase(c: Case, root: string): Promise<{ failures: string[]; outcome?: Outcome; skipped?: string }> {
  if (c.mounts && !canMount()) return { failures: [], skipped: 'needs root to mount a file system' };
  const work = makeWork(root, c.name);
  const failures: string[] = [];
  try {
    const expect = await c.prepare(work);
    const before = snapshot(work.dir);
    const outcome = await run(expect.args, { cwd: work.dir, during: expect.during && ((child) => expect.during!(child, work)) });
    const err = errorOf(outcome);
    const said = `${err?.message ?? ''}\n${outcome.stderr}`;
    if (outcome.code !== expect.code) failures.push(`exit code ${outcome.code ?? outcome.signal}, expected ${expect.code}: ${said.trim().slice(0, 400)}`);
    if (expect.message && !expect.message.test(said)) failures.push(`message does not say ${expect.message}: ${said.trim().slice(0, 400)}`);
    if (expect.where && !said.includes(expect.where)) failures.push(`message does not name ${expect.where}: ${said.trim().slice(0, 400)}`);
    if (expect.code !== 0 && expect.code !== 130 && !err) failures.push(`no JSON error object on stdout: ${outcome.stdout.slice(0, 200)}`);
    if (/\n\s+at .+:\d+:\d+\)?/.test(outcome.stdout + outcome.stderr) || /This is a bug/.test(outcome.stdout + outcome.stderr)) {
      failures.push(`a stack trace reached the user: ${(outcome.stdout + outcome.stderr).slice(0, 400)}`);
    }
    const after = snapshot(work.dir);
    const allowed = (rel: string): boolean => (expect.changes ?? []).some((p) => rel === p || rel.startsWith(`${p}${path.sep}`));
    for (const [rel, state] of after) {
      if (allowed(rel)) continue;
      if (!before.has(rel)) failures.push(`left behind: ${rel}`);
      else if (before.get(rel) !== state) failures.push(`changed: ${rel}`);
    }
    for (const rel of before.keys()) if (!after.has(rel) && !allowed(rel)) failures.push(`deleted: ${rel}`);
    if (failures.length === 0 && expect.check) {
      try {
        await expect.check(outcome, work);
      } catch (e) {
        failures.push((e as Error).message);
      }
    }
    return { failures, outcome };
  } finally {
    unmountAll(work.dir);
  }
}

let mountable: boolean | undefined;
export function canMount(): boolean {
  if (mountable === undefined) {
    if (process.getuid?.() !== 0 || os.platform() !== 'linux') return (mountable = false);
    const probe = fs.mkdtempSync(path.join(os.tmpdir(), 'prunelens-mount-'));
    mountable = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', probe]).status === 0;
    spawnSync('umount', [probe]);
    fs.rmSync(probe, { recursive: true, force: true });
  }
  return mountable;
}

/** A tmpfs of `kib` KiB at `dir`, unmounted when the case ends. */
export function mountTmpfs(dir: string, kib: number): void {
  fs.mkdirSync(dir, { recursive: true });
  const r = spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${kib}k`, 'tmpfs', dir]);
  if (r.status !== 0) throw new Error(`mount failed: ${r.stderr.toString()}`);
}

export function remountReadOnly(dir: string): void {
  const r = spawnSync('mount', ['-o', 'remount,ro', dir]);
  if (r.status !== 0) throw new Error(`remount failed: ${r.stderr.toString()}`);
}

function unmountAll(dir: string): void {
  if (!canMount()) return;
  const mounts = fs.readFileSync('/proc/mounts', 'utf8').split('\n').map((l) => l.split(' ')[1] ?? '').filter((m) => m.startsWith(dir));
  for (const m of mounts.sort().reverse()) spawnSync('umount', [m]);
}

/** Resolves once `probe` holds, polling every 20 ms; rejects after `ms`. */
export async function waitFor(what: string, probe: () => boolean, ms = 300_000): Promise<void> {
  const end = Date.now() + ms;
  while (!probe()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

export function partialsOf(out: string): string[] {
  const prefix = `${path.basename(out)}.partial-`;
  return fs.existsSync(path.dirname(out)) ? fs.readdirSync(path.dirname(out)).filter((e) => e.startsWith(prefix)).map((e) => path.join(path.dirname(out), e)) : [];
}

export function sha256File(file: string): string {
  return createHash('sha256').update(fs.readFileSync(file)).digest('hex');
}
