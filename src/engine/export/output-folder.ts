import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { PruneLensError } from '../errors';
import type { Checkpoint } from '../io/checkpoint';
import { encodeFromF32 } from '../io/dtype';
import { SafetensorsWriter } from '../io/safetensors-writer';

/** The file that marks a folder as PruneLens output (and so safe to replace with --overwrite). */
export const RECORD_FILE = 'prunelens.json';

/**
 * A pruned model being written: a sibling folder `<out>.partial-<pid>` holding a copy of the source's
 * non-weight files (config, tokenizer, generation settings) and safetensors files laid out like the
 * source's (same shards, same tensor order, same dtypes), filled a block at a time. Nothing appears
 * at `out` until `commit` renames the finished folder into place; `abort` deletes it.
 */
export class OutputFolder {
  private constructor(
    readonly out: string,
    readonly partial: string,
    private readonly source: Checkpoint,
    private readonly writers: Map<string, SafetensorsWriter>,
  ) {}

  static async create(source: Checkpoint, out: string, overwrite: boolean): Promise<OutputFolder> {
    const target = path.resolve(out);
    await checkTarget(source, target, overwrite);
    const partial = `${target}.partial-${process.pid}`;
    await fs.rm(partial, { recursive: true, force: true });
    await fs.mkdir(partial, { recursive: true }).catch((err: NodeJS.ErrnoException) => {
      throw new PruneLensError('output', `cannot create the output folder: ${err.message}`, partial);
    });
    const writers = new Map<string, SafetensorsWriter>();
    try {
      await checkFreeSpace(partial, source.bytesOnDisk);
      const weightFiles = new Set(source.files.map((f) => path.basename(f)));
      for (const entry of await fs.readdir(source.dir, { withFileTypes: true })) {
        if (entry.isFile() && !weightFiles.has(entry.name) && entry.name !== RECORD_FILE && !entry.name.endsWith('.safetensors')) {
          await fs.copyFile(path.join(source.dir, entry.name), path.join(partial, entry.name));
        }
      }
      for (const file of source.files) {
        const specs = source.tensorsIn(file).map(({ name, dtype, shape }) => ({ name, dtype, shape }));
        writers.set(file, await SafetensorsWriter.create(path.join(partial, path.basename(file)), specs, source.metadataOf(file)));
      }
    } catch (err) {
      await Promise.all([...writers.values()].map((w) => w.abort()));
      await fs.rm(partial, { recursive: true, force: true });
      throw err;
    }
    return new OutputFolder(target, partial, source, writers);
  }

  /** Writes a tensor in its source dtype (zeros as +0.0). */
  async write(name: string, values: Float32Array): Promise<void> {
    const entry = this.source.entry(name);
    await this.writerOf(name).writeTensor(name, encodeFromF32(entry.dtype, values, name));
  }

  /** Copies a tensor's bytes unchanged from the source. */
  async copy(name: string): Promise<void> {
    await this.writerOf(name).writeTensor(name, await this.source.readBytes(name));
  }

  /** Closes the weight files; the partial folder is then a complete checkpoint that can be opened and evaluated. */
  async finishWeights(): Promise<void> {
    for (const writer of this.writers.values()) await writer.close();
  }

  async writeFile(name: string, content: string): Promise<void> {
    await fs.writeFile(path.join(this.partial, name), content);
  }

  /** Moves the finished folder to `out`, replacing an earlier PruneLens output only when asked to. */
  async commit(): Promise<void> {
    const exists = await fs.stat(this.out).then(() => true, () => false);
    const previous = `${this.out}.previous-${process.pid}`;
    if (exists) await fs.rename(this.out, previous);
    try {
      await fs.rename(this.partial, this.out);
    } catch (err) {
      if (exists) await fs.rename(previous, this.out);
      throw new PruneLensError('output', `cannot move the finished model into place: ${(err as Error).message}`, this.out);
    }
    if (exists) await fs.rm(previous, { recursive: true, force: true });
  }

  async abort(): Promise<void> {
    await Promise.all([...this.writers.values()].map((w) => w.abort()));
    await fs.rm(this.partial, { recursive: true, force: true });
  }

  private writerOf(name: string): SafetensorsWriter {
    return this.writers.get(this.source.fileOf(name))!;
  }
}

async function checkTarget(source: Checkpoint, target: string, overwrite: boolean): Promise<void> {
  const relative = path.relative(source.dir, target);
  if (relative === '' || (!relative.startsWith('..') && !path.isAbsolute(relative))) {
    throw new PruneLensError('output', 'the output folder must not be the source checkpoint or inside it; the source is never modified', target);
  }
  const stat = await fs.stat(target).catch(() => undefined);
  if (!stat) return;
  const ours = await fs.access(path.join(target, RECORD_FILE)).then(() => true, () => false);
  if (!overwrite || !stat.isDirectory() || !ours) {
    throw new PruneLensError(
      'output',
      ours && stat.isDirectory()
        ? 'already exists (an earlier PruneLens output); pass --overwrite to replace it, or choose another folder'
        : 'already exists and is not a PruneLens output; choose another folder',
      target,
    );
  }
}

async function checkFreeSpace(dir: string, needed: number): Promise<void> {
  const stats = await fs.statfs(dir);
  const free = stats.bavail * stats.bsize;
  if (free < needed) {
    throw new PruneLensError('output', `needs about ${needed} bytes for the pruned weights but only ${free} are free`, dir);
  }
}
