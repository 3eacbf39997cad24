import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { PruneLensError } from '../errors';
import {
  expectedTensorShapes,
  isIgnorableTensor,
  layerPrefix,
  blockTensorShapes,
  storedBlockShapes,
  parseModelConfig,
  withStoredRoot,
  type ModelConfig,
} from '../model/config';
import { toLogicalBlock } from '../model/families/fused';
import type { DType } from './dtype';
import { SafetensorsReader, type TensorEntry } from './safetensors-reader';

export const SINGLE_FILE = 'model.safetensors';
export const SHARD_INDEX = 'model.safetensors.index.json';
/** Weight files of an output still being written carry this suffix, so nothing takes them for a model. */
export const PARTIAL_SUFFIX = '.partial';

interface Located {
  reader: SafetensorsReader;
  entry: TensorEntry;
}

/**
 * A Hugging Face checkpoint folder opened for streaming: only config.json and the safetensors headers
 * are read up front; tensors are read by offset when asked for, so nothing holds the whole model.
 */
export class Checkpoint {
  /** Arrays given back by `recycle`, by length: the next reads of tensors that size decode into them. */
  private readonly spare = new Map<number, Float32Array<ArrayBuffer>[]>();
  private spareBytes = 0;
  private spareLimit: number | undefined;

  private constructor(
    readonly dir: string,
    readonly config: ModelConfig,
    private readonly readers: SafetensorsReader[],
    private readonly tensors: ReadonlyMap<string, Located>,
  ) {}

  /** Opens a folder, or the folder of a given `config.json`, `*.safetensors` or shard index file. */
  static async open(location: string): Promise<Checkpoint> {
    const dir = await resolveFolder(location);
    const configPath = path.join(dir, 'config.json');
    await refuseUnfinished(dir, configPath);
    const config = parseModelConfig(await readJson(configPath, 'config'), configPath);
    return Checkpoint.assemble(dir, config, configPath, await openShards(dir));
  }

  /**
   * Opens the weights of an output that is still being written (its files carry PARTIAL_SUFFIX and
   * its config.json is written only at the commit), so the job can evaluate it before committing.
   */
  static async openUnfinished(dir: string, configText: string, files: string[]): Promise<Checkpoint> {
    const configPath = path.join(dir, 'config.json');
    const config = parseModelConfig(JSON.parse(configText) as unknown, configPath);
    const readers: SafetensorsReader[] = [];
    try {
      for (const file of files) readers.push(await SafetensorsReader.open(file));
    } catch (err) {
      await Promise.all(readers.map((r) => r.close()));
      throw err;
    }
    return Checkpoint.assemble(dir, config, configPath, readers);
  }

  private static async assemble(dir: string, parsed: ModelConfig, configPath: string, readers: SafetensorsReader[]): Promise<Checkpoint> {
    try {
      const tensors = new Map<string, Located>();
      for (const reader of readers) {
        for (const entry of reader.entries.values()) {
          const other = tensors.get(entry.name);
          if (other) {
            throw new PruneLensError('checkpoint', `tensor "${entry.name}" appears in both ${other.reader.path} and ${reader.path}`, dir);
          }
          tensors.set(entry.name, { reader, entry });
        }
      }
      const config = withStoredRoot(parsed, (name) => tensors.has(name));
      checkAgainstConfig(config, tensors, configPath);
      return new Checkpoint(dir, config, readers, tensors);
    } catch (err) {
      await Promise.all(readers.map((r) => r.close()));
      throw err;
    }
  }

  get files(): string[] {
    return this.readers.map((r) => r.path);
  }

  get bytesOnDisk(): number {
    return this.readers.reduce((sum, r) => sum + r.fileSize, 0);
  }

  /** The dtype most parameters are stored in: the dtype export writes back. */
  get dtype(): DType {
    const bytes = new Map<DType, number>();
    for (const { entry } of this.tensors.values()) bytes.set(entry.dtype, (bytes.get(entry.dtype) ?? 0) + entry.byteLength);
    return [...bytes.entries()].sort((a, b) => b[1] - a[1])[0]![0];
  }

  tensorNames(): IterableIterator<string> {
    return this.tensors.keys();
  }

  entry(name: string): TensorEntry {
    return this.locate(name).entry;
  }

  /** A file's tensors in the order their data is laid out. */
  tensorsIn(file: string): TensorEntry[] {
    return [...this.readerOf(file).entries.values()];
  }

  metadataOf(file: string): Record<string, string> {
    return { ...this.readerOf(file).metadata };
  }

  /** A tensor's stored bytes, unconverted. */
  async readBytes(name: string): Promise<Uint8Array> {
    return this.locate(name).reader.readBytes(name);
  }

  /** Reads one tensor as float32 and refuses non-finite values, naming the tensor and the first bad index. */
  async readF32(name: string): Promise<Float32Array> {
    const { reader, entry } = this.locate(name);
    const values = await reader.readF32(name, this.takeSpare(entry.shape.reduce((a, b) => a * b, 1)));
    for (let i = 0; i < values.length; i++) {
      if (!Number.isFinite(values[i]!)) {
        throw new PruneLensError(
          'weights',
          `tensor "${name}" holds ${values[i]} at flat index ${i}; the checkpoint is damaged or was saved after a diverged run`,
          reader.path,
        );
      }
    }
    return values;
  }

  /** One decoder block's tensors, keyed by block-relative name (`self_attn.q_proj.weight`), fused projections split. */
  async readBlock(layer: number): Promise<Map<string, Float32Array>> {
    const block = new Map<string, Float32Array>();
    for (const name of storedBlockShapes(this.config, layer).keys()) block.set(name, await this.readF32(layerPrefix(this.config, layer) + name));
    return toLogicalBlock(this.config, block, blockTensorShapes(this.config, layer));
  }

  /**
   * Takes back tensors read from this checkpoint (or arrays the same sizes) that the caller no longer
   * uses in any way, so the next reads decode into them instead of into new memory. New memory is paid
   * for in page faults as it is first written: 17 ns per float on the 2-core VM the bench runs on, ten
   * times the decoding itself, which made reading an 8B model's weights once take about five minutes.
   * Views into larger buffers are not kept, and no more than the largest block's worth.
   */
  recycle(tensors: Iterable<Float32Array>): void {
    this.spareLimit ??= Math.max(...Array.from({ length: this.config.numLayers }, (_, layer) => [...blockTensorShapes(this.config, layer).values()].reduce((sum, shape) => sum + 4 * shape.reduce((a, b) => a * b, 1), 0)));
    for (const t of new Set(tensors)) {
      if (t.byteOffset !== 0 || t.buffer.byteLength !== t.byteLength || !(t.buffer instanceof ArrayBuffer) || this.spareBytes + t.byteLength > this.spareLimit) continue;
      const list = this.spare.get(t.length) ?? [];
      if (list.includes(t as Float32Array<ArrayBuffer>)) continue;
      list.push(t as Float32Array<ArrayBuffer>);
      this.spare.set(t.length, list);
      this.spareBytes += t.byteLength;
    }
  }

  async close(): Promise<void> {
    this.spare.clear();
    await Promise.all(this.readers.map((r) => r.close()));
  }

  private takeSpare(length: number): Float32Array<ArrayBuffer> | undefined {
    const t = this.spare.get(length)?.pop();
    if (t) this.spareBytes -= t.byteLength;
    return t;
  }

  private readerOf(file: string): SafetensorsReader {
    const reader = this.readers.find((r) => r.path === file);
    if (!reader) throw new PruneLensError('checkpoint', 'not a file of this checkpoint', file);
    return reader;
  }

  private locate(name: string): Located {
    const found = this.tensors.get(name);
    if (!found) throw new PruneLensError('checkpoint', `no tensor named "${name}"`, this.dir);
    return found;
  }
}

async function resolveFolder(location: string): Promise<string> {
  const stat = await fs.stat(location).catch(() => {
    throw new PruneLensError('checkpoint', 'no such file or folder', location);
  });
  return stat.isDirectory() ? path.resolve(location) : path.dirname(path.resolve(location));
}

/** A folder an interrupted or running prune is writing is not a model; say so instead of "config.json: not found". */
async function refuseUnfinished(dir: string, configPath: string): Promise<void> {
  if (await fs.access(configPath).then(() => true, () => false)) return;
  const entries = await fs.readdir(dir).catch(() => [] as string[]);
  if (entries.some((e) => e.endsWith(`.safetensors${PARTIAL_SUFFIX}`)) || /\.partial-\d+$/.test(dir)) {
    throw new PruneLensError(
      'checkpoint',
      'is an unfinished PruneLens output (a prune that was interrupted or is still running), not a model; continue it with "prunelens prune ... --resume" and the same options, or delete it',
      dir,
    );
  }
}

async function readJson(file: string, kind: 'config' | 'checkpoint'): Promise<unknown> {
  const text = await fs.readFile(file, 'utf8').catch((err: NodeJS.ErrnoException) => {
    throw new PruneLensError(kind, err.code === 'ENOENT' ? 'file not found' : `cannot read: ${err.message}`, file);
  });
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw new PruneLensError(kind, `invalid JSON: ${(err as Error).message}`, file);
  }
}

async function openShards(dir: string): Promise<SafetensorsReader[]> {
  const indexPath = path.join(dir, SHARD_INDEX);
  const single = path.join(dir, SINGLE_FILE);
  const hasIndex = await fs.access(indexPath).then(() => true, () => false);
  if (!hasIndex) {
    if (!(await fs.access(single).then(() => true, () => false))) {
      throw new PruneLensError('checkpoint', `neither ${SINGLE_FILE} nor ${SHARD_INDEX} found`, dir);
    }
    return [await SafetensorsReader.open(single)];
  }
  const weightMap = parseShardIndex(await readJson(indexPath, 'checkpoint'), indexPath);
  const readers: SafetensorsReader[] = [];
  try {
    for (const shard of new Set(weightMap.values())) readers.push(await SafetensorsReader.open(path.join(dir, shard)));
    for (const [tensor, shard] of weightMap) {
      const reader = readers.find((r) => path.basename(r.path) === shard)!;
      if (!reader.entries.has(tensor)) {
        throw new PruneLensError('checkpoint', `the index places tensor "${tensor}" in ${shard}, which does not hold it`, indexPath);
      }
    }
    for (const reader of readers) {
      for (const name of reader.entries.keys()) {
        if (weightMap.get(name) !== path.basename(reader.path)) {
          throw new PruneLensError('checkpoint', `${path.basename(reader.path)} holds tensor "${name}", which the index does not place there`, indexPath);
        }
      }
    }
    return readers;
  } catch (err) {
    await Promise.all(readers.map((r) => r.close()));
    throw err;
  }
}

function parseShardIndex(raw: unknown, where: string): Map<string, string> {
  const weightMap = (raw as { weight_map?: unknown } | null)?.weight_map;
  if (typeof weightMap !== 'object' || weightMap === null || Array.isArray(weightMap)) {
    throw new PruneLensError('checkpoint', 'missing "weight_map" object', where);
  }
  const map = new Map<string, string>();
  for (const [tensor, shard] of Object.entries(weightMap)) {
    // A shard name is a plain file name in the same folder; anything else could read outside the checkpoint.
    if (typeof shard !== 'string' || shard !== path.basename(shard) || !shard.endsWith('.safetensors')) {
      throw new PruneLensError('checkpoint', `tensor "${tensor}" maps to ${JSON.stringify(shard)}, not a .safetensors file in this folder`, where);
    }
    map.set(tensor, shard);
  }
  if (map.size === 0) throw new PruneLensError('checkpoint', '"weight_map" is empty', where);
  return map;
}

function checkAgainstConfig(config: ModelConfig, tensors: ReadonlyMap<string, Located>, where: string): void {
  const expected = expectedTensorShapes(config);
  for (const [name, shape] of expected) {
    const found = tensors.get(name);
    if (!found) {
      throw new PruneLensError('config', `the config implies tensor "${name}" ${fmt(shape)}, which no safetensors file holds`, where);
    }
    if (!sameShape(found.entry.shape, shape)) {
      throw new PruneLensError(
        'config',
        `tensor "${name}" has shape ${fmt(found.entry.shape)} in ${path.basename(found.reader.path)}, but the config implies ${fmt(shape)}`,
        where,
      );
    }
  }
  const extra = [...tensors.keys()].filter((n) => !expected.has(n) && !isIgnorableTensor(config, n));
  if (extra.length > 0) {
    const shown = extra.slice(0, 5).map((n) => `"${n}"`).join(', ');
    throw new PruneLensError(
      'config',
      `${extra.length} tensor(s) that the config does not account for (${shown}${extra.length > 5 ? ', …' : ''}); is num_hidden_layers or the architecture wrong?`,
      where,
    );
  }
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

function fmt(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}
