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
  const { bytes: header, byteLengths } = encodeHeader(specs, metadata, path);
  const total = byteLengths.reduce((sum, n) => sum + n, header.length);
  const handle = await createFile(path);
  let position = 0;
  const write = async (bytes: Uint8Array, what: string): Promise<void> => {
    for (let done = 0; done < bytes.byteLength; ) {
      let bytesWritten: number;
      try {
        const length = Math.min(bytes.byteLength - done, WRITE_CHUNK_BYTES);
        ({ bytesWritten } = await handle.write(bytes, done, length, position));
      } catch (err) {
        throw writeError(err, `writing ${what} (${position} of ${total} bytes written)`, path);
      }
      if (bytesWritten === 0) {
        throw new PruneLensError('output', `the file system took no bytes while writing ${what} at offset ${position}`, path);
      }
      done += bytesWritten;
      position += bytesWritten;
    }
  };

  let closed = false;
  try {
    await write(header, 'the header');
    for (const [i, spec] of specs.entries()) {
      const bytes = await data(spec);
      const expected = byteLengths[i]!;
      if (bytes.byteLength !== expected) {
        throw new PruneLensError(
          'checkpoint',
          `the data for this tensor has ${bytes.byteLength} bytes but shape ${formatShape(spec.shape)} of ${spec.dtype} needs ${expected}`,
          tensorWhere(path, spec.name),
        );
      }
      await write(bytes, `tensor "${spec.name}"`);
    }
    closed = true;
    await handle.close().catch((err: unknown) => {
      throw writeError(err, 'closing the file', path);
    });
  } catch (err) {
    if (!closed) await handle.close().catch(() => undefined);
    await fsp.rm(path, { force: true }).catch(() => undefined);
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
