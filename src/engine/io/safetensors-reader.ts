/**
 * Reads safetensors checkpoints without trusting them: the header is validated as strictly as the
 * reference Rust implementation (safetensors/src/tensor.rs) before any tensor data is touched, and
 * every length taken from the file is checked against the file size before it is allocated.
 */
import { promises as fsp } from 'fs';
import type { FileHandle } from 'fs/promises';
import { PruneLensError } from '../errors';
import { DTYPE_BYTES, DType, decodeToF32, formatShape, isDType, tensorByteLength } from './dtype';
import { ScratchBytes } from './scratch-bytes';

export interface TensorEntry {
  name: string;
  dtype: DType;
  shape: number[];
  byteOffset: number; // absolute offset in the file
  byteLength: number;
}

/** The reference implementation's limit; a larger length is corruption, not a real header. */
const MAX_HEADER_BYTES = 100_000_000;
/** Node refuses single reads of 2 GiB or more, and huge tensors exist. */
const READ_CHUNK_BYTES = 1 << 30;
const KNOWN_DTYPES = Object.keys(DTYPE_BYTES).join(', ');

export class SafetensorsReader {
  private closed = false;
  /** Where the stored bytes of a tensor decoded into a caller's array are read. */
  private readonly scratch = new ScratchBytes();

  private constructor(
    readonly path: string,
    readonly fileSize: number,
    readonly metadata: Readonly<Record<string, string>>,
    readonly entries: ReadonlyMap<string, TensorEntry>,
    private readonly handle: FileHandle,
  ) {}

  static async open(path: string): Promise<SafetensorsReader> {
    let handle: FileHandle;
    try {
      handle = await fsp.open(path, 'r');
    } catch (err) {
      throw new PruneLensError('checkpoint', `cannot open the file (${messageOf(err)})`, path);
    }
    try {
      const stat = await handle.stat().catch((err: unknown) => {
        throw new PruneLensError('checkpoint', `cannot read the file (${messageOf(err)})`, path);
      });
      if (!stat.isFile()) throw new PruneLensError('checkpoint', 'not a regular file', path);
      const header = await readHeaderBytes(handle, path, stat.size);
      const { metadata, entries } = parseHeader(header, stat.size, path);
      return new SafetensorsReader(path, stat.size, metadata, entries, handle);
    } catch (err) {
      await handle.close().catch(() => undefined);
      throw err;
    }
  }

  async readBytes(name: string): Promise<Uint8Array<ArrayBuffer>> {
    const entry = this.entry(name);
    return readAt(this.handle, entry.byteOffset, entry.byteLength, tensorWhere(this.path, name));
  }

  /**
   * The tensor as float32, in `into` when given (its length must be the tensor's): then no new memory
   * is touched, as the stored bytes are read into a scratch buffer this reader keeps (see
   * Checkpoint.recycle for why that matters).
   */
  async readF32(name: string, into?: Float32Array<ArrayBuffer>): Promise<Float32Array<ArrayBuffer>> {
    const entry = this.entry(name);
    const where = tensorWhere(this.path, name);
    if (!into) {
      const bytes = await this.readBytes(name);
      // readBytes returns a fresh buffer at offset 0, so F32 data can be viewed in place instead of copied.
      if (entry.dtype === 'F32') return new Float32Array(bytes.buffer, 0, bytes.byteLength / 4);
      return decodeToF32(entry.dtype, bytes, where);
    }
    if (entry.dtype === 'F32') {
      await readAt(this.handle, entry.byteOffset, entry.byteLength, where, new Uint8Array(into.buffer, into.byteOffset, into.byteLength));
      return into;
    }
    return this.scratch.with(entry.byteLength, async (scratch) => decodeToF32(entry.dtype, await readAt(this.handle, entry.byteOffset, entry.byteLength, where, scratch), where, into));
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.handle.close();
  }

  private entry(name: string): TensorEntry {
    const entry = this.entries.get(name);
    if (!entry) throw new PruneLensError('checkpoint', `no tensor named ${quote(name)} in this file`, this.path);
    return entry;
  }
}

async function readHeaderBytes(handle: FileHandle, path: string, fileSize: number): Promise<Uint8Array<ArrayBuffer>> {
  if (fileSize < 8) {
    throw new PruneLensError(
      'checkpoint',
      `file is ${fileSize} bytes, shorter than the 8-byte header length (empty or truncated file?)`,
      path,
    );
  }
  const prefix = await readAt(handle, 0, 8, path);
  const length = new DataView(prefix.buffer, prefix.byteOffset, 8).getBigUint64(0, true);
  if (length > BigInt(MAX_HEADER_BYTES)) {
    throw new PruneLensError(
      'checkpoint',
      `header too large: header length ${length} exceeds the ${MAX_HEADER_BYTES}-byte limit (file size ${fileSize}; corrupt or not a safetensors file?)`,
      path,
    );
  }
  if (8n + length > BigInt(fileSize)) {
    throw new PruneLensError(
      'checkpoint',
      `header length ${length} exceeds the file size ${fileSize} minus the 8-byte length (truncated file?)`,
      path,
    );
  }
  return readAt(handle, 8, Number(length), path);
}

interface Span {
  name: string;
  dtype: DType;
  shape: number[];
  begin: number;
  end: number;
}

function parseHeader(
  header: Uint8Array,
  fileSize: number,
  path: string,
): { metadata: Readonly<Record<string, string>>; entries: ReadonlyMap<string, TensorEntry> } {
  let text: string;
  try {
    // ignoreBOM keeps a byte-order mark in the text, so it fails the '{' check as it does in Rust.
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(header);
  } catch (err) {
    throw new PruneLensError('checkpoint', `header (${header.length} bytes) is not valid UTF-8 (${messageOf(err)})`, path);
  }
  if (!text.startsWith('{')) {
    throw new PruneLensError(
      'checkpoint',
      `header (${header.length} bytes) must be a JSON object starting with "{" but starts with ${describe(text.slice(0, 20))}`,
      path,
    );
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new PruneLensError('checkpoint', `header (${header.length} bytes) is not valid JSON (${messageOf(err)})`, path);
  }
  if (!isObject(parsed)) {
    throw new PruneLensError('checkpoint', `header is ${describe(parsed)}, not a JSON object`, path);
  }

  let metadata: Readonly<Record<string, string>> = Object.freeze({});
  const spans: Span[] = [];
  for (const [name, info] of Object.entries(parsed)) {
    if (name === '__metadata__') metadata = parseMetadata(info, path);
    else spans.push(parseTensor(name, info, path));
  }

  spans.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let previous: Span | undefined;
  for (const span of spans) {
    const expected = previous ? previous.end : 0;
    if (previous && span.begin < expected) {
      throw new PruneLensError(
        'checkpoint',
        `data_offsets [${span.begin}, ${span.end}] overlap tensor ${quote(previous.name)} at [${previous.begin}, ${previous.end}]`,
        tensorWhere(path, span.name),
      );
    }
    if (span.begin > expected) {
      const after = previous ? `tensor ${quote(previous.name)}, which ends at ${expected}` : 'the start of the data (0)';
      throw new PruneLensError(
        'checkpoint',
        `data_offsets [${span.begin}, ${span.end}] leave a hole of ${span.begin - expected} bytes after ${after}`,
        tensorWhere(path, span.name),
      );
    }
    previous = span;
  }

  const dataStart = 8 + header.length;
  const dataEnd = previous ? previous.end : 0;
  const available = fileSize - dataStart;
  if (dataEnd !== available) {
    const last = previous ? `the last tensor, ${quote(previous.name)}, ends` : 'there are no tensors, so the data ends';
    const problem =
      dataEnd > available
        ? `${dataEnd - available} bytes are missing (truncated file?)`
        : `${available - dataEnd} trailing bytes follow the last tensor`;
    throw new PruneLensError(
      'checkpoint',
      `${problem}: ${last} at data offset ${dataEnd} but the file size ${fileSize} leaves ${available} bytes after the ${dataStart}-byte header`,
      path,
    );
  }

  const entries = new Map<string, TensorEntry>();
  for (const span of spans) {
    entries.set(span.name, {
      name: span.name,
      dtype: span.dtype,
      shape: span.shape,
      byteOffset: dataStart + span.begin,
      byteLength: span.end - span.begin,
    });
  }
  return { metadata, entries };
}

function parseMetadata(info: unknown, path: string): Readonly<Record<string, string>> {
  if (!isObject(info)) {
    throw new PruneLensError('checkpoint', `__metadata__ is ${describe(info)}, not an object of strings`, path);
  }
  for (const [key, value] of Object.entries(info)) {
    if (typeof value !== 'string') {
      throw new PruneLensError('checkpoint', `__metadata__ entry ${quote(key)} is ${describe(value)}, not a string`, path);
    }
  }
  return Object.freeze(info as Record<string, string>);
}

function parseTensor(name: string, info: unknown, path: string): Span {
  if (name === '') throw new PruneLensError('checkpoint', 'a tensor has an empty name', path);
  const where = tensorWhere(path, name);
  if (!isObject(info)) {
    throw new PruneLensError('checkpoint', `header entry is ${describe(info)}, not an object with dtype, shape and data_offsets`, where);
  }
  const dtype = info['dtype'];
  if (typeof dtype !== 'string' || !isDType(dtype)) {
    throw new PruneLensError('checkpoint', `dtype ${describe(dtype)} is not one of the known dtypes: ${KNOWN_DTYPES}`, where);
  }
  const shape = naturals(info['shape'], 'shape', where);
  const offsets = naturals(info['data_offsets'], 'data_offsets', where);
  if (offsets.length !== 2) {
    throw new PruneLensError('checkpoint', `data_offsets has ${offsets.length} numbers instead of [begin, end]`, where);
  }
  const [begin, end] = offsets as [number, number];
  if (end < begin) {
    throw new PruneLensError('checkpoint', `data_offsets [${begin}, ${end}] end before they begin`, where);
  }
  const needed = tensorByteLength(dtype, shape, where);
  if (end - begin !== needed) {
    throw new PruneLensError(
      'checkpoint',
      `data_offsets [${begin}, ${end}] hold ${end - begin} bytes but shape ${formatShape(shape)} of ${dtype} needs ${needed}`,
      where,
    );
  }
  return { name, dtype, shape, begin, end };
}

/** Array of non-negative integers that doubles represent exactly. */
function naturals(value: unknown, field: string, where: string): number[] {
  if (!Array.isArray(value)) {
    throw new PruneLensError('checkpoint', `${field} is ${describe(value)}, not an array of non-negative integers`, where);
  }
  value.forEach((item: unknown, i) => {
    if (typeof item !== 'number' || !Number.isSafeInteger(item) || item < 0) {
      throw new PruneLensError(
        'checkpoint',
        `${field} item ${i} is ${describe(item)}, not a non-negative integer below 2^53`,
        where,
      );
    }
  });
  return value as number[];
}

/** Reads exactly `length` bytes at `position` into the start of `into` when given (at least `length` long), else into a fresh, unshared buffer. */
async function readAt(handle: FileHandle, position: number, length: number, where: string, into?: Uint8Array<ArrayBuffer>): Promise<Uint8Array<ArrayBuffer>> {
  let buffer: Uint8Array<ArrayBuffer>;
  try {
    buffer = into ? into.subarray(0, length) : new Uint8Array(length);
  } catch (err) {
    throw new PruneLensError('checkpoint', `cannot allocate ${length} bytes to read (${messageOf(err)})`, where);
  }
  let done = 0;
  while (done < length) {
    let bytesRead: number;
    try {
      ({ bytesRead } = await handle.read(buffer, done, Math.min(length - done, READ_CHUNK_BYTES), position + done));
    } catch (err) {
      throw new PruneLensError('checkpoint', `reading ${length} bytes at offset ${position} failed (${messageOf(err)})`, where);
    }
    if (bytesRead === 0) {
      throw new PruneLensError(
        'checkpoint',
        `truncated: the file ended after ${done} of the ${length} bytes at offset ${position} (changed since it was opened?)`,
        where,
      );
    }
    done += bytesRead;
  }
  return buffer;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** A header value for an error message, never more than a short line. */
function describe(value: unknown): string {
  if (value === undefined) return 'missing';
  if (typeof value === 'string') return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value);
  if (Array.isArray(value)) return `an array of ${value.length} items`;
  if (typeof value === 'object' && value !== null) return 'an object';
  return String(value);
}

/** Names come from untrusted headers; a megabyte-long one must not end up in an error message. */
function quote(name: string): string {
  return `"${name.length > 200 ? `${name.slice(0, 200)}…` : name}"`;
}

function tensorWhere(path: string, name: string): string {
  return `${path}: tensor ${quote(name)}`;
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
