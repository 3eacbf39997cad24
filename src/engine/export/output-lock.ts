import { promises as fs, readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { PruneLensError } from '../errors';
import { ioError } from './output-paths';

/** What a lock file holds: who writes the output and, while it commits, which folders are in flight. */
export interface LockInfo {
  pid: number;
  host: string;
  /** The process's start time as the kernel counts it, so a reused pid is not taken for the owner. */
  processStart: string | null;
  started: string;
  /** Set just before the renames of a commit: the finished folder and where the replaced one goes. */
  commit?: { partial: string; previous: string | null };
}

/** Lock files this process holds: a second job in the same process (the extension host) is refused too. */
const heldHere = new Set<string>();

export function lockPath(out: string): string {
  return `${out}.prunelens-lock`;
}

/**
 * An exclusive lock on an output path for a whole run: a file beside the output created with O_EXCL,
 * holding the owner's pid and start time. A second run to the same output is refused while the owner
 * lives; a lock whose owner is gone (killed, power loss) is stale and taken over, and its commit
 * record tells the new owner how to finish an interrupted commit.
 */
export class OutputLock {
  private released = false;

  private constructor(
    readonly file: string,
    private info: LockInfo,
  ) {}

  /** Takes the lock; `stale` is the dead owner's record when a stale lock was taken over. */
  static async acquire(out: string): Promise<{ lock: OutputLock; stale?: LockInfo }> {
    const file = lockPath(out);
    if (heldHere.has(file)) throw new PruneLensError('output', `in use by pid ${process.pid} (another job of this process)`, out);
    heldHere.add(file);
    try {
      return await OutputLock.take(out, file);
    } catch (err) {
      heldHere.delete(file);
      throw err;
    }
  }

  private static async take(out: string, file: string): Promise<{ lock: OutputLock; stale?: LockInfo }> {
    const info: LockInfo = { pid: process.pid, host: hostname(), processStart: processStart(process.pid), started: new Date().toISOString() };
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        await createExclusive(file, info);
        return { lock: new OutputLock(file, info) };
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw ioError(err, 'cannot create the lock file beside the output', file);
      }
      const held = await readLock(file);
      if (held === 'missing') continue;
      if (held === 'unreadable') {
        // A lock being written this very moment reads empty; one that stays unreadable is debris.
        const age = Date.now() - ((await fs.stat(file).catch(() => undefined))?.mtimeMs ?? 0);
        if (age < 5000) throw new PruneLensError('output', `in use by another PruneLens run (lock file ${file})`, out);
      } else if (isAlive(held)) {
        throw new PruneLensError('output', `in use by pid ${held.pid}${held.host !== info.host ? ` on ${held.host}` : ''} (a PruneLens run started ${held.started}); wait for it to finish or stop it${held.host !== info.host ? `, or delete ${file} if that run is gone` : ''}`, out);
      }
      // Stale: move it aside under a name only we use, and check that what we moved is what we judged dead.
      const aside = `${file}.stale-${process.pid}`;
      try {
        await fs.rename(file, aside);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
        throw ioError(err, 'cannot take over a stale lock file', file);
      }
      const moved = await readLock(aside);
      if (typeof moved === 'object' && isAlive(moved)) {
        await fs.rename(aside, file).catch(() => undefined);
        throw new PruneLensError('output', `in use by pid ${moved.pid} (a PruneLens run started ${moved.started})`, out);
      }
      await fs.rm(aside, { force: true });
      try {
        await createExclusive(file, info);
        return { lock: new OutputLock(file, info), stale: typeof moved === 'object' ? moved : undefined };
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw ioError(err, 'cannot create the lock file beside the output', file);
      }
    }
    throw new PruneLensError('output', `in use by another PruneLens run (lock file ${file})`, out);
  }

  /** Rewrites the lock atomically (the path never disappears, so exclusivity holds throughout). */
  async record(commit: LockInfo['commit']): Promise<void> {
    this.info = { ...this.info, commit };
    const tmp = `${this.file}.tmp-${process.pid}`;
    const handle = await fs.open(tmp, 'w');
    try {
      await handle.writeFile(JSON.stringify(this.info));
      await handle.sync();
    } finally {
      await handle.close();
    }
    await fs.rename(tmp, this.file);
  }

  async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    heldHere.delete(this.file);
    const held = await readLock(this.file);
    if (typeof held === 'object' && held.pid === process.pid) await fs.rm(this.file, { force: true });
  }
}

export async function readLock(file: string): Promise<LockInfo | 'missing' | 'unreadable'> {
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'missing' : 'unreadable';
  }
  try {
    const info = JSON.parse(text) as LockInfo;
    return Number.isSafeInteger(info.pid) && typeof info.started === 'string' ? info : 'unreadable';
  } catch {
    return 'unreadable';
  }
}

/** Is the lock's owner still running? A lock from another host cannot be checked and counts as held. */
export function isAlive(info: LockInfo): boolean {
  if (info.host !== hostname()) return true;
  if (info.pid === process.pid) return false;
  try {
    process.kill(info.pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ESRCH') return false;
  }
  const start = processStart(info.pid);
  return start === null || info.processStart === null || start === info.processStart;
}

/** Field 22 of /proc/<pid>/stat (start time in clock ticks since boot) on Linux; null elsewhere. */
function processStart(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) is in parentheses and may hold spaces; fields are counted after it.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] ?? null;
  } catch {
    return null;
  }
}

/** Creates the lock file only if none exists (O_EXCL), with its owner written and synced before it counts. */
async function createExclusive(file: string, info: LockInfo): Promise<void> {
  const handle = await fs.open(file, 'wx');
  try {
    await handle.writeFile(JSON.stringify(info));
    await handle.sync();
  } finally {
    await handle.close();
  }
}
