import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import type { Logger } from '../progress';
import { OutputLock, type LockInfo } from './output-lock';
import { checkReplaceable, lstat, MANIFEST_FILE, realPath } from './output-paths';
import { ResumeJournal } from './resume-journal';

/**
 * Finishes the commit a killed run was making. The lock file said, before the first rename, which
 * finished folder goes in and where the replaced one goes: whatever step the kill interrupted, the
 * finished output ends at `out` and the replaced one is removed. A finished folder without its
 * manifest was killed while being finalized; it is removed and the earlier output stays.
 */
export async function recoverInterruptedCommit(out: string, stale: LockInfo, log: Logger | undefined): Promise<void> {
  const { partial, previous } = stale.commit!;
  const hasPartial = (await lstat(partial)) !== undefined;
  const complete = hasPartial && (await lstat(path.join(partial, MANIFEST_FILE))) !== undefined;
  const hasPrevious = previous !== null && (await lstat(previous)) !== undefined;
  if (complete) {
    if (await lstat(out)) {
      if (previous === null || hasPrevious) {
        log?.warn(`${partial} holds the finished output of an interrupted run, but ${out} exists; left both as they are`);
        return;
      }
      await checkReplaceable(out, true);
      await fs.rename(out, previous);
    }
    await fs.rename(partial, out);
    if (previous) await fs.rm(previous, { recursive: true, force: true });
    log?.warn(`finished the commit of an interrupted run (pid ${stale.pid}): ${out} now holds its output`);
    return;
  }
  if (hasPartial) await fs.rm(partial, { recursive: true, force: true });
  if (hasPrevious) {
    if (await lstat(out)) await fs.rm(previous, { recursive: true, force: true });
    else {
      await fs.rename(previous, out);
      log?.warn(`restored ${out}, which an interrupted commit (pid ${stale.pid}) had moved aside`);
    }
  }
}

/**
 * `<out>.previous-<pid>` folders with no commit record (left by versions without one): put back when
 * `out` is missing, removed when they are PruneLens outputs that were replaced, otherwise left alone.
 */
export async function removeReplacedLeftovers(out: string, log: Logger | undefined): Promise<void> {
  const prefix = `${path.basename(out)}.previous-`;
  const parent = path.dirname(out);
  for (const entry of (await fs.readdir(parent)).filter((e) => e.startsWith(prefix) && /^\d+$/.test(e.slice(prefix.length)))) {
    const dir = path.join(parent, entry);
    if (!(await lstat(out))) {
      await fs.rename(dir, out);
      log?.warn(`restored ${out} from ${dir}, where an interrupted run had moved it`);
      continue;
    }
    const ours = await checkReplaceable(dir, true).then(() => true, () => false);
    if (ours) {
      await fs.rm(dir, { recursive: true, force: true });
      log?.warn(`removed ${dir}, an earlier output an interrupted run had replaced`);
    } else {
      log?.warn(`left ${dir} in place: an interrupted run moved it aside, and it holds files PruneLens did not write`);
    }
  }
}

export interface AbandonedOutput {
  /** none: nothing was left; resumable: a partial output a `resume` run can continue; removed: discarded. */
  state: 'none' | 'resumable' | 'removed';
  /** The unfinished folder (resumable) or the folders removed. */
  folders: string[];
  blocksDone?: number;
  blocksTotal?: number;
  started?: string;
}

/**
 * The one call for a caller that killed a prune (the extension cancelling its engine process): under
 * the output's lock, finishes or rolls back an interrupted commit, puts back or removes replaced
 * outputs, and then either reports the unfinished output a `pruneModel({ ..., resume: true })` can
 * continue, or with `discard` removes it. Throws "in use by pid N" while a run still holds the output.
 */
export async function recoverOutput(out: string, options: { discard?: boolean; log?: Logger } = {}): Promise<AbandonedOutput> {
  const target = await realPath(out);
  const { lock, stale } = await OutputLock.acquire(target);
  try {
    if (stale?.commit) await recoverInterruptedCommit(target, stale, options.log);
    await removeReplacedLeftovers(target, options.log);
    const prefix = `${path.basename(target)}.partial-`;
    const result: AbandonedOutput = { state: 'none', folders: [] };
    for (const entry of await fs.readdir(path.dirname(target))) {
      if (!entry.startsWith(prefix) || !/^\d+$/.test(entry.slice(prefix.length))) continue;
      const dir = path.join(path.dirname(target), entry);
      const journal = await ResumeJournal.read(dir);
      if (journal && !options.discard && result.state !== 'resumable') {
        const { blocksDone, blocksTotal } = journal.progress;
        Object.assign(result, {
          state: 'resumable',
          folders: [dir],
          blocksDone: typeof blocksDone === 'number' ? blocksDone : 0,
          blocksTotal: typeof blocksTotal === 'number' ? blocksTotal : undefined,
          started: journal.started,
        });
        continue;
      }
      await fs.rm(dir, { recursive: true, force: true });
      if (result.state === 'none') Object.assign(result, { state: 'removed', folders: [dir] });
      else if (result.state === 'removed') result.folders.push(dir);
    }
    return result;
  } finally {
    await lock.release();
  }
}
