import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { PruneLensError } from '../errors';
import { Checkpoint, PARTIAL_SUFFIX, SHARD_INDEX } from '../io/checkpoint';
import { encodeFromF32, tensorByteLength } from '../io/dtype';
import { SafetensorsWriter, type TensorSpec } from '../io/safetensors-writer';
import { ScratchBytes } from '../io/scratch-bytes';
import type { Logger } from '../progress';
import { OutputLock } from './output-lock';
import {
  checkOutputPlacement,
  checkReplaceable,
  identityOf,
  ioError,
  lstat,
  MANIFEST_FILE,
  realPath,
  sameIdentity,
  sourcePlace,
  type Manifest,
  type OutputIdentity,
} from './output-paths';
import { fingerprintDifferences, ResumeJournal, syncFolder, writeDurably } from './resume-journal';
import { recoverInterruptedCommit, removeReplacedLeftovers } from './output-recovery';

export { RECORD_FILE } from './output-paths';

/** The weight files of an output and, when the shapes changed, the config.json that describes them. */
export interface OutputLayout {
  files: { name: string; specs: TensorSpec[]; metadata: Record<string, string> }[];
  config?: Record<string, unknown>;
}

export interface OutputOptions {
  /** Continue the unfinished output an interrupted run of the same job left, instead of starting over. */
  resume?: boolean;
  /** What makes two runs the same job; without it nothing is journalled and nothing resumes. */
  fingerprint?: Record<string, unknown>;
  /** Files the run reads (calibration, evaluation, plan): the output may not contain them. */
  inputs?: string[];
  /** Bytes the job will keep in the partial folder besides the weights (resume state). */
  extraBytes?: number;
  log?: Logger;
}

/** The source's own layout: same shards, same tensor order, same dtypes, same config. */
export function mirrorLayout(source: Checkpoint): OutputLayout {
  return {
    files: source.files.map((file) => ({
      name: path.basename(file),
      specs: source.tensorsIn(file).map(({ name, dtype, shape }) => ({ name, dtype, shape })),
      metadata: source.metadataOf(file),
    })),
  };
}

/**
 * A pruned model being written. Everything happens under an exclusive lock on the output path
 * (`<out>.prunelens-lock`). The model is built in a sibling folder `<out>.partial-<pid>`, which can
 * never be taken for a model: its weight files are named `*.safetensors.partial` and its config.json
 * is written only at the commit. With a fingerprint, a journal in the folder records how far the job
 * got, so a run killed at any moment can be resumed. `commit` re-checks the output path, then renames
 * the finished folder into place; `abort` deletes it.
 */
export class OutputFolder {
  private readonly written = new Set<string>();
  private committed = false;
  /** Where each tensor is encoded before it is written. */
  private readonly scratch = new ScratchBytes();

  private constructor(
    /** The output's real path (links in its parent folders resolved). */
    readonly out: string,
    readonly partial: string,
    private readonly source: Checkpoint,
    private readonly lock: OutputLock,
    private readonly identity: OutputIdentity,
    private readonly overwrite: boolean,
    private readonly writers: SafetensorsWriter[],
    private readonly tensors: Map<string, { writer: SafetensorsWriter; spec: TensorSpec }>,
    /** Files written only at the commit, so the partial folder is not a loadable model. */
    private readonly deferred: Map<string, string | Uint8Array>,
    /** The journal of a resumable job; its progress is what an earlier run finished when `resumed`. */
    readonly journal: ResumeJournal | undefined,
    readonly resumed: boolean,
  ) {}

  /**
   * Checks the output path (real paths: not the source, not inside it, not containing it; replaceable
   * only as described in checkReplaceable), takes the lock, finishes an interrupted commit a killed run
   * left, resumes or removes an abandoned partial folder, and prepares the partial folder.
   */
  static async create(
    source: Checkpoint,
    out: string,
    overwrite: boolean,
    layout: OutputLayout = mirrorLayout(source),
    options: OutputOptions = {},
  ): Promise<OutputFolder> {
    const given = path.resolve(out);
    if ((await lstat(given))?.isSymbolicLink()) throw new PruneLensError('output', 'is a symbolic link; give the folder it points to, or another folder', given);
    const target = await realPath(given);
    checkOutputPlacement(target, await sourcePlace(source.dir), await Promise.all((options.inputs ?? []).map((f) => realPath(f))));
    const parent = path.dirname(target);
    await fs.mkdir(parent, { recursive: true }).catch((err: unknown) => {
      throw ioError(err, 'cannot create the folder the output goes in', parent);
    });
    const { lock, stale } = await OutputLock.acquire(target);
    const writers: SafetensorsWriter[] = [];
    let partial: string | undefined;
    try {
      if (stale?.commit) await recoverInterruptedCommit(target, stale, options.log);
      await removeReplacedLeftovers(target, options.log);
      await checkReplaceable(target, overwrite);
      const identity = await identityOf(target);
      partial = `${target}.partial-${process.pid}`;
      const journal = await takeOverPartials(target, partial, options);
      const resumed = journal !== undefined;
      const bytes = layout.files.reduce((n, f) => n + f.specs.reduce((m, s) => m + tensorByteLength(s.dtype, s.shape, s.name), 0), 0);
      if (!resumed) {
        await fs.mkdir(partial).catch((err: unknown) => {
          throw ioError(err, 'cannot create the output folder', partial!);
        });
        await checkFreeSpace(partial, bytes + (options.extraBytes ?? 0));
      }
      const deferred = new Map<string, string | Uint8Array>();
      const skip = new Set([...source.files.map((f) => path.basename(f)), SHARD_INDEX, 'config.json']);
      for (const entry of await fs.readdir(source.dir)) {
        // Earlier PruneLens files (pruning a pruned model) describe the earlier run, not this one.
        if (skip.has(entry) || entry.endsWith('.safetensors') || entry.startsWith('prunelens')) continue;
        const from = path.join(source.dir, entry);
        // stat follows links: a Hugging Face cache snapshot is all links into blobs/, copied as files.
        if (!(await fs.stat(from).catch(() => undefined))?.isFile()) continue;
        await fs.copyFile(from, path.join(partial, entry)).catch((err: unknown) => {
          throw ioError(err, `cannot copy ${from}`, path.join(partial!, entry));
        });
      }
      deferred.set('config.json', layout.config ? `${JSON.stringify(layout.config, null, 2)}\n` : await fs.readFile(path.join(source.dir, 'config.json')));
      if (source.files.length > 1 && !layout.config) deferred.set(SHARD_INDEX, await fs.readFile(path.join(source.dir, SHARD_INDEX)));
      const done = new Set(resumed ? writtenTensors(journal) : []);
      const tensors = new Map<string, { writer: SafetensorsWriter; spec: TensorSpec }>();
      for (const file of layout.files) {
        const where = path.join(partial, `${file.name}${PARTIAL_SUFFIX}`);
        const writer = resumed ? await SafetensorsWriter.reopen(where, file.specs, file.metadata, done) : await SafetensorsWriter.create(where, file.specs, file.metadata);
        writers.push(writer);
        for (const spec of file.specs) tensors.set(spec.name, { writer, spec });
      }
      const folder = new OutputFolder(target, partial, source, lock, identity, overwrite, writers, tensors, deferred, journal ?? (options.fingerprint ? await ResumeJournal.start(partial, options.fingerprint) : undefined), resumed);
      for (const name of done) folder.written.add(name);
      return folder;
    } catch (err) {
      await Promise.all(writers.map((w) => w.abort()));
      if (partial) await fs.rm(partial, { recursive: true, force: true }).catch(() => undefined);
      await lock.release();
      throw err;
    }
  }

  /** Was this tensor written by an earlier run that this one resumes? */
  isWritten(name: string): boolean {
    return this.written.has(name);
  }

  /**
   * Writes a tensor in its output dtype (zeros as +0.0), encoded into a buffer kept for the next
   * tensor: new memory costs page faults as it is first written (see Checkpoint.recycle).
   */
  async write(name: string, values: Float32Array): Promise<void> {
    const { writer, spec } = this.slot(name);
    await this.scratch.with(tensorByteLength(spec.dtype, spec.shape, name), (scratch) => writer.writeTensor(name, encodeFromF32(spec.dtype, values, name, scratch)));
    this.written.add(name);
  }

  /** Copies a tensor's bytes unchanged from the source. */
  async copy(name: string): Promise<void> {
    await this.slot(name).writer.writeTensor(name, await this.source.readBytes(name));
    this.written.add(name);
  }

  /** Makes the tensors written so far durable, then records them with `progress` in the journal. */
  async checkpoint(progress: Record<string, unknown>): Promise<void> {
    if (!this.journal) return;
    for (const writer of this.writers) await writer.sync();
    await this.journal.save({ ...progress, written: [...this.written] });
  }

  /** Closes the weight files, durable; `openWritten` then reads them back. */
  async finishWeights(): Promise<void> {
    for (const writer of this.writers) {
      await writer.sync();
      await writer.close();
    }
  }

  /** The finished weights as a checkpoint, for evaluating and measuring them before the commit. */
  async openWritten(): Promise<Checkpoint> {
    const config = this.deferred.get('config.json')!;
    return Checkpoint.openUnfinished(this.partial, typeof config === 'string' ? config : Buffer.from(config).toString('utf8'), this.writers.map((w) => w.path));
  }

  async writeFile(name: string, content: string): Promise<void> {
    const where = path.join(this.partial, name);
    await fs.writeFile(where, content).catch((err: unknown) => {
      throw ioError(err, 'cannot write', where);
    });
  }

  /**
   * Moves the finished folder to `out`. The output path is checked again first: what stands there now
   * must be what was checked at the start (nothing, or the same replaceable PruneLens output), so a
   * folder created or changed during the run is never replaced. The lock file records the commit
   * before the renames, so a run killed between them is completed by the next run (see output-recovery).
   */
  async commit(): Promise<void> {
    await this.recheck();
    const previous = this.identity.exists ? `${this.out}.previous-${process.pid}` : null;
    await this.lock.record({ partial: this.partial, previous });
    await this.finalize();
    await this.recheck();
    if (previous) {
      await fs.rename(this.out, previous).catch((err: unknown) => {
        throw ioError(err, 'cannot move the earlier output aside', this.out);
      });
    }
    try {
      await fs.rename(this.partial, this.out);
    } catch (err) {
      if (previous) await fs.rename(previous, this.out);
      throw ioError(err, 'cannot move the finished model into place', this.out);
    }
    this.committed = true;
    await syncFolder(path.dirname(this.out));
    if (previous) await fs.rm(previous, { recursive: true, force: true });
    await this.lock.release();
  }

  /** Runs `job` and aborts the folder if it fails, so a failed or cancelled job leaves nothing behind. */
  async complete<T>(job: () => Promise<T>): Promise<T> {
    try {
      return await job();
    } catch (err) {
      await this.abort();
      throw err;
    }
  }

  async abort(): Promise<void> {
    if (this.committed) return;
    await Promise.all(this.writers.map((w) => w.abort()));
    await fs.rm(this.partial, { recursive: true, force: true }).catch(() => undefined);
    await this.lock.release();
  }

  private async recheck(): Promise<void> {
    if (!sameIdentity(await identityOf(this.out), this.identity)) {
      throw new PruneLensError(
        'output',
        this.identity.exists ? 'was replaced by another folder during the run; it is not overwritten' : 'appeared during the run (it did not exist when the run started), so it is not replaced',
        this.out,
      );
    }
    await checkReplaceable(this.out, this.overwrite);
  }

  /** Gives the weights their real names, writes the deferred files, drops the journal and writes the manifest last. */
  private async finalize(): Promise<void> {
    for (const writer of this.writers) await fs.rename(writer.path, writer.path.slice(0, -PARTIAL_SUFFIX.length));
    for (const [name, content] of this.deferred) await writeDurably(path.join(this.partial, name), content);
    await this.journal?.remove();
    const files: Record<string, number> = {};
    for (const entry of (await fs.readdir(this.partial)).sort()) {
      const where = path.join(this.partial, entry);
      const handle = await fs.open(where, 'r');
      try {
        await handle.sync();
        files[entry] = (await handle.stat()).size;
      } finally {
        await handle.close();
      }
    }
    // The manifest lists itself; its size is known once its text is, which depends on the size's digits.
    let text = '';
    for (let size = 0; ; size = Buffer.byteLength(text)) {
      files[MANIFEST_FILE] = size;
      text = `${JSON.stringify({ format: 'prunelens.manifest', version: 1, files } satisfies Manifest, null, 2)}\n`;
      if (Buffer.byteLength(text) === size) break;
    }
    await writeDurably(path.join(this.partial, MANIFEST_FILE), text);
  }

  private slot(name: string): { writer: SafetensorsWriter; spec: TensorSpec } {
    const slot = this.tensors.get(name);
    if (!slot) throw new Error(`${name} is not a tensor of this output`);
    return slot;
  }
}

function writtenTensors(journal: ResumeJournal): string[] {
  const written = journal.progress.written;
  return Array.isArray(written) ? written.filter((n): n is string => typeof n === 'string') : [];
}

/**
 * Partial folders of this output left by runs that are gone (we hold the lock, so no live run owns
 * one): the one to resume when asked and its journal matches this job, otherwise removed with a
 * message. Returns the adopted journal, moved to `partial`.
 */
async function takeOverPartials(target: string, partial: string, options: OutputOptions): Promise<ResumeJournal | undefined> {
  const parent = path.dirname(target);
  const prefix = `${path.basename(target)}.partial-`;
  let adopted: ResumeJournal | undefined;
  for (const entry of await fs.readdir(parent)) {
    if (!entry.startsWith(prefix) || !/^\d+$/.test(entry.slice(prefix.length))) continue;
    const dir = path.join(parent, entry);
    const journal = await ResumeJournal.read(dir);
    const blocks = journal && typeof journal.progress.blocksDone === 'number' ? ` (${journal.progress.blocksDone} of ${String(journal.progress.blocksTotal)} blocks done)` : '';
    if (options.resume && options.fingerprint && journal && !adopted) {
      const differ = fingerprintDifferences(journal.fingerprint, options.fingerprint);
      if (differ.length > 0) {
        throw new PruneLensError(
          'usage',
          `cannot resume: the unfinished output ${dir} was started with different ${differ.join(', ')}; resume with the same model, texts and options, or run without --resume to remove it and start over`,
          target,
        );
      }
      if (dir !== partial) await fs.rename(dir, partial);
      adopted = await ResumeJournal.read(partial);
      options.log?.warn(`resuming the unfinished output of the run started ${journal.started}${blocks}`);
      continue;
    }
    await fs.rm(dir, { recursive: true, force: true });
    options.log?.warn(`removed ${dir}, the unfinished output of an interrupted run${blocks}${options.fingerprint && !options.resume && journal ? '; next time pass --resume to continue such a run' : ''}`);
  }
  if (options.resume && !adopted) options.log?.warn(`nothing to resume for ${target}; starting from the beginning`);
  return adopted;
}

async function checkFreeSpace(dir: string, needed: number): Promise<void> {
  const stats = await fs.statfs(dir);
  const free = stats.bavail * stats.bsize;
  if (free < needed) {
    throw new PruneLensError('output', `needs about ${needed} bytes for the pruned weights but only ${free} are free`, dir);
  }
}
