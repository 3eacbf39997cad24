import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { PruneLensError } from '../errors';
import type { Checkpoint } from '../io/checkpoint';
import { SHARD_INDEX } from '../io/checkpoint';
import { encodeFromF32, tensorByteLength } from '../io/dtype';
import { SafetensorsWriter, type TensorSpec } from '../io/safetensors-writer';

/** The file that marks a folder as PruneLens output (and so safe to replace with --overwrite). */
export const RECORD_FILE = 'prunelens.json';

/** The weight files of an output and, when the shapes changed, the config.json that describes them. */
export interface OutputLayout {
  files: { name: string; specs: TensorSpec[]; metadata: Record<string, string> }[];
  config?: Record<string, unknown>;
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
 * A pruned model being written: a sibling folder `<out>.partial-<pid>` holding a copy of the source's
 * non-weight files (tokenizer, generation settings, the config unless the layout brings its own) and
 * the layout's safetensors files, filled a block at a time. Nothing appears at `out` until `commit`
 * renames the finished folder into place; `abort` deletes it.
 */
export class OutputFolder {
  private constructor(
    readonly out: string,
    readonly partial: string,
    private readonly source: Checkpoint,
    private readonly writers: SafetensorsWriter[],
    private readonly tensors: Map<string, { writer: SafetensorsWriter; spec: TensorSpec }>,
  ) {}

  static async create(source: Checkpoint, out: string, overwrite: boolean, layout: OutputLayout = mirrorLayout(source)): Promise<OutputFolder> {
    const target = path.resolve(out);
    await checkTarget(source, target, overwrite);
    const partial = `${target}.partial-${process.pid}`;
    await fs.rm(partial, { recursive: true, force: true });
    await fs.mkdir(partial, { recursive: true }).catch((err: NodeJS.ErrnoException) => {
      throw new PruneLensError('output', `cannot create the output folder: ${err.message}`, partial);
    });
    const writers: SafetensorsWriter[] = [];
    const tensors = new Map<string, { writer: SafetensorsWriter; spec: TensorSpec }>();
    try {
      const bytes = layout.files.reduce((n, f) => n + f.specs.reduce((m, s) => m + tensorByteLength(s.dtype, s.shape, s.name), 0), 0);
      await checkFreeSpace(partial, bytes);
      const skip = new Set([...source.files.map((f) => path.basename(f)), RECORD_FILE, SHARD_INDEX, ...(layout.config ? ['config.json'] : [])]);
      for (const entry of await fs.readdir(source.dir, { withFileTypes: true })) {
        if (entry.isFile() && !skip.has(entry.name) && !entry.name.endsWith('.safetensors')) {
          await fs.copyFile(path.join(source.dir, entry.name), path.join(partial, entry.name));
        }
      }
      if (source.files.length > 1 && !layout.config) await fs.copyFile(path.join(source.dir, SHARD_INDEX), path.join(partial, SHARD_INDEX));
      if (layout.config) await fs.writeFile(path.join(partial, 'config.json'), `${JSON.stringify(layout.config, null, 2)}\n`);
      for (const file of layout.files) {
        const writer = await SafetensorsWriter.create(path.join(partial, file.name), file.specs, file.metadata);
        writers.push(writer);
        for (const spec of file.specs) tensors.set(spec.name, { writer, spec });
      }
    } catch (err) {
      await Promise.all(writers.map((w) => w.abort()));
      await fs.rm(partial, { recursive: true, force: true });
      throw err;
    }
    return new OutputFolder(target, partial, source, writers, tensors);
  }

  /** Writes a tensor in its output dtype (zeros as +0.0). */
  async write(name: string, values: Float32Array): Promise<void> {
    const { writer, spec } = this.slot(name);
    await writer.writeTensor(name, encodeFromF32(spec.dtype, values, name));
  }

  /** Copies a tensor's bytes unchanged from the source. */
  async copy(name: string): Promise<void> {
    await this.slot(name).writer.writeTensor(name, await this.source.readBytes(name));
  }

  /** Closes the weight files; the partial folder is then a complete checkpoint that can be opened and evaluated. */
  async finishWeights(): Promise<void> {
    for (const writer of this.writers) await writer.close();
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
    await Promise.all(this.writers.map((w) => w.abort()));
    await fs.rm(this.partial, { recursive: true, force: true });
  }

  private slot(name: string): { writer: SafetensorsWriter; spec: TensorSpec } {
    const slot = this.tensors.get(name);
    if (!slot) throw new Error(`${name} is not a tensor of this output`);
    return slot;
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
