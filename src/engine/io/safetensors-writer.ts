/**
 * Writes safetensors checkpoints one tensor at a time, so pruning a model never needs all of it in
 * memory. The header is fixed before any data is written, from shapes alone.
 */
import { promises as fsp } from 'fs';
import type { FileHandle } from 'fs/promises';
import { PruneLensError } from '../errors';
import { DType, formatShape, isDType, tensorByteLength } from './dtype';

export interface TensorSpec {
  name: string;
  dtype: DType;
  shape: number[];
}

/** Node refuses single writes of 2 GiB or more. */
const WRITE_CHUNK_BYTES = 1 << 30;

/** The 8-byte length and the JSON, space-padded so (8 + N) % 8 == 0, "__metadata__" first when given. */
export function buildHeader(specs: TensorSpec[], metadata?: Record<string, string>): Uint8Array {
  return encodeHeader(specs, metadata, undefined).bytes;
}

/**
 * A safetensors file whose header is fixed up front from shapes alone, so tensors can be written in
 * any order as they become ready (a pruned block at a time) and the file never holds a model in memory.
 * `close` checks that every tensor was written; `abort` deletes the partial file.
 */
export class SafetensorsWriter {
  private readonly pending: Map<string, { offset: number; byteLength: number; spec: TensorSpec }>;

  private constructor(
    readonly path: string,
    private readonly handle: FileHandle,
    offsets: Map<string, { offset: number; byteLength: number; spec: TensorSpec }>,
    private readonly total: number,
  ) {
    this.pending = offsets;
  }

  static async create(path: string, specs: TensorSpec[], metadata?: Record<string, string>): Promise<SafetensorsWriter> {
    const { bytes: header, byteLengths } = encodeHeader(specs, metadata, path);
    const offsets = new Map<string, { offset: number; byteLength: number; spec: TensorSpec }>();
    let offset = header.length;
    for (const [i, spec] of specs.entries()) {
      offsets.set(spec.name, { offset, byteLength: byteLengths[i]!, spec });
      offset += byteLengths[i]!;
    }
    const writer = new SafetensorsWriter(path, await createFile(path), offsets, offset);
    try {
      await writer.writeAt(header, 0, 'the header');
    } catch (err) {
      await writer.abort();
      throw err;
    }
    return writer;
  }

  /**
   * Opens a file an interrupted run was writing, to go on writing it: its header must be the one these
   * specs give, byte for byte, and `written` names the tensors already in it (made durable by `sync`).
   */
  static async reopen(path: string, specs: TensorSpec[], metadata: Record<string, string> | undefined, written: ReadonlySet<string>): Promise<SafetensorsWriter> {
    const { bytes: header, byteLengths } = encodeHeader(specs, metadata, path);
    let handle: FileHandle;
    try {
      handle = await fsp.open(path, 'r+');
    } catch (err) {
      throw writeError(err, 'reopening the file', path);
    }
    const found = new Uint8Array(header.length);
    const { bytesRead } = await handle.read(found, 0, header.length, 0);
    if (bytesRead !== header.length || !found.every((b, i) => b === header[i])) {
      await handle.close();
      throw new PruneLensError('output', 'the unfinished weights file does not have the header this run writes', path);
    }
    const offsets = new Map<string, { offset: number; byteLength: number; spec: TensorSpec }>();
    let offset = header.length;
    for (const [i, spec] of specs.entries()) {
      if (!written.has(spec.name)) offsets.set(spec.name, { offset, byteLength: byteLengths[i]!, spec });
      offset += byteLengths[i]!;
    }
    return new SafetensorsWriter(path, handle, offsets, offset);
  }

  /** Makes every tensor written so far durable (a resumed run relies on them after a crash). */
  async sync(): Promise<void> {
    await this.handle.datasync().catch((err: unknown) => {
      throw writeError(err, 'flushing the file to disk', this.path);
    });
  }

  async writeTensor(name: string, bytes: Uint8Array): Promise<void> {
    const slot = this.pending.get(name);
    if (!slot) throw new PruneLensError('checkpoint', 'not a tensor of this file, or written already', tensorWhere(this.path, name));
    if (bytes.byteLength !== slot.byteLength) {
      throw new PruneLensError(
        'checkpoint',
        `the data for this tensor has ${bytes.byteLength} bytes but shape ${formatShape(slot.spec.shape)} of ${slot.spec.dtype} needs ${slot.byteLength}`,
        tensorWhere(this.path, name),
      );
    }
    await this.writeAt(bytes, slot.offset, `tensor "${name}"`);
    this.pending.delete(name);
  }

  async close(): Promise<void> {
    if (this.pending.size > 0) {
      const missing = [...this.pending.keys()];
      throw new PruneLensError('checkpoint', `${missing.length} tensor(s) never written, first "${missing[0]}"`, this.path);
    }
    await this.handle.close().catch((err: unknown) => {
      throw writeError(err, 'closing the file', this.path);
    });
  }

  async abort(): Promise<void> {
    await this.handle.close().catch(() => undefined);
    await fsp.rm(this.path, { force: true }).catch(() => undefined);
  }

  private async writeAt(bytes: Uint8Array, position: number, what: string): Promise<void> {
    for (let done = 0; done < bytes.byteLength; ) {
      let bytesWritten: number;
      try {
        const length = Math.min(bytes.byteLength - done, WRITE_CHUNK_BYTES);
        ({ bytesWritten } = await this.handle.write(bytes, done, length, position + done));
      } catch (err) {
        throw writeError(err, `writing ${what} (at byte ${position + done} of ${this.total})`, this.path);
      }
      if (bytesWritten === 0) {
        throw new PruneLensError('output', `the file system took no bytes while writing ${what} at offset ${position + done}`, this.path);
      }
      done += bytesWritten;
    }
  }
}

/**
 * Streams tensors one at a time so a large model never has to be in memory at once: writes the header
 * from specs (in the given order), then for each spec awaits data(spec) and appends it, checking its byteLength.
 * On any failure the partial file is deleted before the error is rethrown.
 */
export async function writeSafetensors(
  path: string,
  specs: TensorSpec[],
  data: (spec: TensorSpec) => Promise<Uint8Array> | Uint8Array,
  metadata?: Record<string, string>,
): Promise<void> {
  const writer = await SafetensorsWriter.create(path, specs, metadata);
  try {
    for (const spec of specs) await writer.writeTensor(spec.name, await data(spec));
    await writer.close();
  } catch (err) {
    await writer.abort();
    throw err;
  }
}

async function createFile(path: string): Promise<FileHandle> {
  try {
    return await fsp.open(path, 'w');
  } catch (err) {
    throw writeError(err, 'creating the file', path);
  }
}

function encodeHeader(
  specs: TensorSpec[],
  metadata: Record<string, string> | undefined,
  path: string | undefined,
): { bytes: Uint8Array; byteLengths: number[] } {
  // Built by hand because JSON.stringify moves integer-like keys (a tensor named "0") to the front.
  const parts: string[] = [];
  if (metadata) {
    for (const [key, value] of Object.entries(metadata)) {
      if (typeof value !== 'string') {
        throw new PruneLensError('checkpoint', `metadata entry "${key}" is a ${typeof value}, not a string`, path);
      }
    }
    parts.push(`"__metadata__":${JSON.stringify(metadata)}`);
  }
  const seen = new Set<string>();
  const byteLengths: number[] = [];
  let offset = 0;
  for (const { name, dtype, shape } of specs) {
    const where = tensorWhere(path, name);
    if (name === '' || name === '__metadata__') {
      throw new PruneLensError('checkpoint', `"${name}" cannot be a tensor name`, where);
    }
    if (seen.has(name)) throw new PruneLensError('checkpoint', 'the tensor name appears twice', where);
    seen.add(name);
    if (!isDType(dtype)) throw new PruneLensError('checkpoint', `unknown dtype ${JSON.stringify(dtype)}`, where);
    shape.forEach((dim, i) => {
      if (!Number.isSafeInteger(dim) || dim < 0) {
        throw new PruneLensError('checkpoint', `shape dimension ${i} is ${dim}, not a non-negative integer`, where);
      }
    });
    const byteLength = tensorByteLength(dtype, shape, where);
    if (offset + byteLength > Number.MAX_SAFE_INTEGER) {
      throw new PruneLensError('checkpoint', `tensor data would end past 2^53 - 1 bytes (at ${offset} + ${byteLength})`, where);
    }
    parts.push(
      `${JSON.stringify(name)}:{"dtype":"${dtype}","shape":[${shape.join(',')}],"data_offsets":[${offset},${offset + byteLength}]}`,
    );
    byteLengths.push(byteLength);
    offset += byteLength;
  }

  const json = Buffer.from(`{${parts.join(',')}}`, 'utf8');
  const padded = json.length + ((8 - (json.length % 8)) % 8);
  const bytes = new Uint8Array(8 + padded).fill(0x20, 8 + json.length);
  new DataView(bytes.buffer).setBigUint64(0, BigInt(padded), true);
  bytes.set(json, 8);
  return { bytes, byteLengths };
}

/** `doing` reads as "writing tensor "x" (1024 of 4096 bytes written)" or "creating the file". */
function writeError(err: unknown, doing: string, path: string): PruneLensError {
  if ((err as NodeJS.ErrnoException | undefined)?.code === 'ENOSPC') {
    return new PruneLensError('output', `no space left on device while ${doing}`, path);
  }
  const message = err instanceof Error ? err.message : String(err);
  return new PruneLensError('output', `${doing} failed (${message})`, path);
}

function tensorWhere(path: string | undefined, name: string): string {
  return path === undefined ? `tensor "${name}"` : `${path}: tensor "${name}"`;
}
