/**
 * A GGUF v3 file (ggml's docs/gguf.md), written the way PruneLens writes every output: the header and
 * tensor table are fixed up front from shapes alone, tensors are then written one at a time at their
 * offsets (so no more than one tensor is ever in memory), all under `<out>.partial-<pid>`, and the
 * file is renamed to its name only when every tensor is in. `abort` deletes it.
 */
import { promises as fsp } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import * as path from 'node:path';
import { PruneLensError } from '../../errors';
import { GGML_TYPE_ID, ggmlByteLength, type GgufType } from './ggml-types';

const MAGIC = 0x46554747; // "GGUF" read as a little-endian uint32
const VERSION = 3;
export const GGUF_ALIGNMENT = 32;

/** A metadata value with its GGUF type: scalars, and arrays of one element type. */
export type GgufValue =
  | { type: 'u32'; value: number }
  | { type: 'i32'; value: number }
  | { type: 'f32'; value: number }
  | { type: 'bool'; value: boolean }
  | { type: 'string'; value: string }
  | { type: 'string[]'; value: readonly string[] }
  | { type: 'f32[]'; value: ArrayLike<number> }
  | { type: 'i32[]'; value: ArrayLike<number> };

/** gguf_type ids (gguf.h). */
const VALUE_TYPE = { u32: 4, i32: 5, f32: 6, bool: 7, string: 8, array: 9, u64: 10 } as const;

/** A tensor as PyTorch and safetensors see it: `shape` slowest dimension first. GGUF stores it reversed. */
export interface GgufTensorSpec {
  name: string;
  shape: readonly number[];
  type: GgufType;
}

/** Grows as the header is encoded; GGUF's header has no length field, so it is built whole first. */
class ByteSink {
  private bytes = new Uint8Array(1 << 16);
  private view = new DataView(this.bytes.buffer);
  length = 0;

  private reserve(n: number): void {
    if (this.length + n <= this.bytes.length) return;
    const grown = new Uint8Array(Math.max(this.bytes.length * 2, this.length + n));
    grown.set(this.bytes.subarray(0, this.length));
    this.bytes = grown;
    this.view = new DataView(grown.buffer);
  }

  u32(v: number): void {
    this.reserve(4);
    this.view.setUint32(this.length, v, true);
    this.length += 4;
  }

  i32(v: number): void {
    this.reserve(4);
    this.view.setInt32(this.length, v, true);
    this.length += 4;
  }

  u64(v: number): void {
    this.reserve(8);
    this.view.setBigUint64(this.length, BigInt(v), true);
    this.length += 8;
  }

  f32(v: number): void {
    this.reserve(4);
    this.view.setFloat32(this.length, v, true);
    this.length += 4;
  }

  u8(v: number): void {
    this.reserve(1);
    this.bytes[this.length++] = v;
  }

  string(s: string): void {
    const utf8 = Buffer.from(s, 'utf8');
    this.u64(utf8.length);
    this.reserve(utf8.length);
    this.bytes.set(utf8, this.length);
    this.length += utf8.length;
  }

  padTo(alignment: number): void {
    const padding = (alignment - (this.length % alignment)) % alignment;
    this.reserve(padding);
    this.bytes.fill(0, this.length, this.length + padding);
    this.length += padding;
  }

  result(): Uint8Array {
    return this.bytes.subarray(0, this.length);
  }
}

function encodeValue(sink: ByteSink, value: GgufValue): void {
  switch (value.type) {
    case 'u32':
      sink.u32(VALUE_TYPE.u32);
      return sink.u32(value.value);
    case 'i32':
      sink.u32(VALUE_TYPE.i32);
      return sink.i32(value.value);
    case 'f32':
      sink.u32(VALUE_TYPE.f32);
      return sink.f32(value.value);
    case 'bool':
      sink.u32(VALUE_TYPE.bool);
      return sink.u8(value.value ? 1 : 0);
    case 'string':
      sink.u32(VALUE_TYPE.string);
      return sink.string(value.value);
    case 'string[]':
      sink.u32(VALUE_TYPE.array);
      sink.u32(VALUE_TYPE.string);
      sink.u64(value.value.length);
      for (const s of value.value) sink.string(s);
      return;
    case 'f32[]':
    case 'i32[]': {
      sink.u32(VALUE_TYPE.array);
      sink.u32(value.type === 'f32[]' ? VALUE_TYPE.f32 : VALUE_TYPE.i32);
      sink.u64(value.value.length);
      for (let i = 0; i < value.value.length; i++) (value.type === 'f32[]' ? sink.f32(value.value[i]!) : sink.i32(value.value[i]!));
      return;
    }
  }
}

/** The header, metadata and tensor table, padded to the alignment; plus where each tensor's data goes. */
export function encodeGgufHeader(
  metadata: ReadonlyMap<string, GgufValue>,
  tensors: readonly GgufTensorSpec[],
): { header: Uint8Array; offsets: number[]; byteLengths: number[]; total: number } {
  const sink = new ByteSink();
  sink.u32(MAGIC);
  sink.u32(VERSION);
  sink.u64(tensors.length);
  sink.u64(metadata.size + 1);
  // general.alignment first, so a reader knows the padding before it meets the tensor table.
  sink.string('general.alignment');
  encodeValue(sink, { type: 'u32', value: GGUF_ALIGNMENT });
  for (const [key, value] of metadata) {
    if (key === 'general.alignment') throw new Error('general.alignment is written by the GGUF writer itself');
    sink.string(key);
    encodeValue(sink, value);
  }
  const offsets: number[] = [];
  const byteLengths: number[] = [];
  let offset = 0;
  for (const t of tensors) {
    sink.string(t.name);
    sink.u32(t.shape.length);
    for (let d = t.shape.length - 1; d >= 0; d--) sink.u64(t.shape[d]!);
    sink.u32(GGML_TYPE_ID[t.type]);
    sink.u64(offset);
    const bytes = ggmlByteLength(t.type, t.shape.reduce((a, b) => a * b, 1));
    offsets.push(offset);
    byteLengths.push(bytes);
    offset += bytes + ((GGUF_ALIGNMENT - (bytes % GGUF_ALIGNMENT)) % GGUF_ALIGNMENT);
  }
  sink.padTo(GGUF_ALIGNMENT);
  const header = sink.result();
  const last = tensors.length - 1;
  return { header, offsets: offsets.map((o) => o + header.length), byteLengths, total: header.length + (last >= 0 ? offsets[last]! + byteLengths[last]! : 0) };
}

export class GgufWriter {
  private readonly pending: Map<string, { offset: number; byteLength: number }>;

  private constructor(
    readonly out: string,
    readonly partial: string,
    private readonly handle: FileHandle,
    slots: Map<string, { offset: number; byteLength: number }>,
    readonly totalBytes: number,
  ) {
    this.pending = slots;
  }

  static async create(out: string, metadata: ReadonlyMap<string, GgufValue>, tensors: readonly GgufTensorSpec[]): Promise<GgufWriter> {
    const { header, offsets, byteLengths, total } = encodeGgufHeader(metadata, tensors);
    const slots = new Map<string, { offset: number; byteLength: number }>();
    tensors.forEach((t, i) => {
      if (slots.has(t.name)) throw new Error(`tensor ${t.name} appears twice`);
      slots.set(t.name, { offset: offsets[i]!, byteLength: byteLengths[i]! });
    });
    const target = path.resolve(out);
    const partial = `${target}.partial-${process.pid}`;
    const stats = await fsp.statfs(path.dirname(target)).catch((err: Error) => {
      throw new PruneLensError('output', `cannot write here: ${err.message}`, path.dirname(target));
    });
    if (stats.bavail * stats.bsize < total) {
      throw new PruneLensError('output', `needs ${total} bytes for the GGUF file but only ${stats.bavail * stats.bsize} are free`, path.dirname(target));
    }
    const handle = await fsp.open(partial, 'w').catch((err: Error) => {
      throw new PruneLensError('output', `cannot create the file: ${err.message}`, partial);
    });
    const writer = new GgufWriter(target, partial, handle, slots, total);
    try {
      await writer.writeAt(header, 0, 'the header');
    } catch (err) {
      await writer.abort();
      throw err;
    }
    return writer;
  }

  /** A tensor's bytes, whole or in consecutive parts (a stacked expert tensor, one expert at a time). */
  async writeTensor(name: string, bytes: Uint8Array | AsyncIterable<Uint8Array>): Promise<void> {
    const slot = this.pending.get(name);
    if (!slot) throw new Error(`${name} is not a tensor of this GGUF file, or was written already`);
    let written = 0;
    for await (const part of bytes instanceof Uint8Array ? [bytes] : bytes) {
      if (written + part.byteLength > slot.byteLength) throw new Error(`${name}: more than the ${slot.byteLength} bytes expected`);
      await this.writeAt(part, slot.offset + written, `tensor ${name}`);
      written += part.byteLength;
    }
    if (written !== slot.byteLength) throw new Error(`${name}: ${written} bytes given, ${slot.byteLength} expected`);
    this.pending.delete(name);
  }

  /** Closes the file and renames it into place; refuses while any tensor is missing. */
  async commit(): Promise<void> {
    if (this.pending.size > 0) throw new Error(`${this.pending.size} tensor(s) never written, first ${[...this.pending.keys()][0]}`);
    // Padding after the last tensor is not needed, but the file must be as long as the table says.
    await this.handle.truncate(this.totalBytes);
    await this.handle.close();
    await fsp.rename(this.partial, this.out).catch((err: Error) => {
      throw new PruneLensError('output', `cannot move the finished file into place: ${err.message}`, this.out);
    });
  }

  async abort(): Promise<void> {
    await this.handle.close().catch(() => undefined);
    await fsp.rm(this.partial, { force: true });
  }

  private async writeAt(bytes: Uint8Array, position: number, what: string): Promise<void> {
    for (let done = 0; done < bytes.byteLength; ) {
      const length = Math.min(bytes.byteLength - done, 1 << 30);
      const { bytesWritten } = await this.handle.write(bytes, done, length, position + done).catch((err: NodeJS.ErrnoException) => {
        throw new PruneLensError('output', err.code === 'ENOSPC' ? `no space left on device while writing ${what}` : `writing ${what} failed (${err.message})`, this.partial);
      });
      if (bytesWritten === 0) throw new PruneLensError('output', `the file system took no bytes while writing ${what}`, this.partial);
      done += bytesWritten;
    }
  }
}
