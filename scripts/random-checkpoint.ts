/**
 * Writes a Hugging Face checkpoint folder of random weights with a real model's shapes, so the bench
 * measures speed and memory at realistic sizes without downloading gigabytes of trained weights.
 *
 * It runs at disk speed: weights are streamed tensor by tensor in chunks of a few MiB (an 8B model
 * never sits in memory), and each stored element is a lookup in a table of the stored dtype's
 * encodings of normal quantiles, indexed by 16 bits of a seeded integer generator, so no float math
 * or encoding runs per element.
 */
import { promises as fsp } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import * as path from 'node:path';
import { expectedTensorShapes, parseModelConfig } from '../src/engine/model/config';
import { f32ToBf16, f32ToF16, tensorByteLength } from '../src/engine/io/dtype';
import { buildHeader, type TensorSpec } from '../src/engine/io/safetensors-writer';
import { pidAlive } from '../src/engine/process-alive';

export type RandomDType = 'F32' | 'BF16' | 'F16';

const TORCH_DTYPE: Record<RandomDType, string> = { F32: 'float32', BF16: 'bfloat16', F16: 'float16' };

/** The usual Hugging Face initializer_range, so activations stay in a sane range through deep stacks. */
const WEIGHT_STD = 0.02;
/** Large enough that a write costs little per byte, small enough that two of them are nothing beside a model. */
const CHUNK_BYTES = 8 * 2 ** 20;

/**
 * `tokenizerFrom` is a folder whose tokenizer.json and tokenizer_config.json are copied. The bench
 * passes the embedded stories260K: its 512 ids are valid rows of every larger embedding, so any model
 * can evaluate text tokenized by it, and the shapes under test stay those of the real model.
 */
export async function writeRandomCheckpoint(
  dir: string,
  config: Record<string, unknown>,
  options: { dtype: RandomDType; seed: number; tokenizerFrom: string },
): Promise<void> {
  const shapes = expectedTensorShapes(parseModelConfig(config, path.join(dir, 'config.json')));
  const specs: TensorSpec[] = [...shapes].map(([name, shape]) => ({ name, dtype: options.dtype, shape }));

  await removeAbandonedTemps(dir);
  // Built beside the target and renamed at the end, so an interrupted run never leaves a folder that looks complete.
  const tmp = `${dir}.tmp-${process.pid}`;
  await fsp.rm(tmp, { recursive: true, force: true });
  await fsp.mkdir(tmp, { recursive: true });
  try {
    await fsp.writeFile(path.join(tmp, 'config.json'), randomCheckpointConfigText(config, options.dtype));
    for (const file of ['tokenizer.json', 'tokenizer_config.json']) {
      await fsp.copyFile(path.join(options.tokenizerFrom, file), path.join(tmp, file));
    }
    await writeRandomSafetensors(path.join(tmp, 'model.safetensors'), specs, options.dtype, options.seed);
    await fsp.rm(dir, { recursive: true, force: true });
    await fsp.rename(tmp, dir);
  } catch (err) {
    await fsp.rm(tmp, { recursive: true, force: true }).catch(() => undefined);
    throw err;
  }
}

/** The config.json text written for `config` stored as `dtype`; comparing it with a cached one spots a stale cache. */
export function randomCheckpointConfigText(config: Record<string, unknown>, dtype: RandomDType): string {
  return JSON.stringify({ ...config, torch_dtype: TORCH_DTYPE[dtype] }, null, 2) + '\n';
}

/**
 * The file is written front to back: the header, then every tensor in `specs` order, each in chunks.
 * While one chunk is being written (in libuv's thread pool) the next is filled, so generating and
 * writing overlap. Each tensor draws from its own generator seeded by (seed, name), so its values do
 * not depend on the order of the others or on the chunk size.
 */
export async function writeRandomSafetensors(file: string, specs: TensorSpec[], dtype: RandomDType, seed: number): Promise<void> {
  const table = normalTable(dtype, WEIGHT_STD);
  const one = constantWords(dtype, 1);
  const handle = await fsp.open(file, 'w');
  const buffers = [new Uint32Array(CHUNK_BYTES / 4), new Uint32Array(CHUNK_BYTES / 4)];
  let which = 0;
  let pending: Promise<unknown> = Promise.resolve();
  try {
    const header = buildHeader(specs, { format: 'pt' });
    pending = writeAll(handle, header);
    for (const spec of specs) {
      let left = tensorByteLength(spec.dtype, spec.shape, `${file}: ${spec.name}`);
      // Norm weights start at 1 and biases at 0, as in a freshly initialized transformers model.
      const fill: Fill = spec.name.endsWith('norm.weight') ? constantFill(one) : spec.name.endsWith('.bias') ? constantFill(0) : normalFill(table, tensorSeed(seed, spec.name));
      while (left > 0) {
        const bytes = Math.min(left, CHUNK_BYTES);
        const words = buffers[which]!;
        // A chunk is whole words; only a tensor's last chunk can end inside one, and its tail bytes are not written.
        fill(words, Math.ceil(bytes / 4));
        await pending;
        pending = writeAll(handle, new Uint8Array(words.buffer, 0, bytes));
        which ^= 1;
        left -= bytes;
      }
    }
    await pending;
    await handle.close();
  } catch (err) {
    await pending.catch(() => undefined);
    await handle.close().catch(() => undefined);
    await fsp.rm(file, { force: true });
    throw err;
  }
}

async function writeAll(handle: FileHandle, bytes: Uint8Array): Promise<void> {
  for (let done = 0; done < bytes.byteLength; ) {
    const { bytesWritten } = await handle.write(bytes, done, bytes.byteLength - done);
    if (bytesWritten === 0) throw new Error('the file system took no bytes');
    done += bytesWritten;
  }
}

/** Fills the first `count` words of a chunk. */
type Fill = (words: Uint32Array, count: number) => void;

function constantFill(word: number): Fill {
  return (words, count) => words.fill(word, 0, count);
}

/** A word holding the encoding of `value` as every element it holds (two for 16-bit dtypes). */
function constantWords(dtype: RandomDType, value: number): number {
  if (dtype === 'F32') return new Uint32Array(new Float32Array([value]).buffer)[0]!;
  const half = dtype === 'BF16' ? f32ToBf16(value) : f32ToF16(value);
  return (half | (half << 16)) >>> 0;
}

/**
 * 65536 encodings (in the dtype's bits) of std x the normal quantiles at (i + 0.5) / 65536: any 16
 * random bits pick a sample from a normal distribution truncated at ±4.2 std, finer than bf16 can store.
 */
function normalTable(dtype: RandomDType, std: number): Uint32Array | Uint16Array {
  const table = dtype === 'F32' ? new Uint32Array(65536) : new Uint16Array(65536);
  const f32 = new Float32Array(1);
  const bits = new Uint32Array(f32.buffer);
  for (let i = 0; i < 65536; i++) {
    const v = std * normalQuantile((i + 0.5) / 65536);
    if (dtype === 'F32') {
      f32[0] = v;
      table[i] = bits[0]!;
    } else {
      table[i] = dtype === 'BF16' ? f32ToBf16(v) : f32ToF16(v);
    }
  }
  return table;
}

/**
 * Each 32-bit draw of sfc32 gives two 16-bit elements (little-endian: the first in the low half) or
 * one 32-bit one. The generator's step is written out inside each loop, with its state in locals, as
 * a closure call per draw made filling three times slower.
 */
function normalFill(table: Uint32Array | Uint16Array, seed: number): Fill {
  const state = sfc32State(seed);
  if (table instanceof Uint32Array) {
    return (words, count) => {
      let [a, b, c, d] = state as unknown as [number, number, number, number];
      for (let i = 0; i < count; i++) {
        const t = (((a + b) | 0) + d) | 0;
        d = (d + 1) | 0;
        a = b ^ (b >>> 9);
        b = (c + (c << 3)) | 0;
        c = (c << 21) | (c >>> 11);
        c = (c + t) | 0;
        words[i] = table[t & 0xffff]!;
      }
      state.set([a, b, c, d]);
    };
  }
  return (words, count) => {
    let [a, b, c, d] = state as unknown as [number, number, number, number];
    for (let i = 0; i < count; i++) {
      const t = (((a + b) | 0) + d) | 0;
      d = (d + 1) | 0;
      a = b ^ (b >>> 9);
      b = (c + (c << 3)) | 0;
      c = (c << 21) | (c >>> 11);
      c = (c + t) | 0;
      words[i] = table[t & 0xffff]! | (table[t >>> 16]! << 16);
    }
    state.set([a, b, c, d]);
  };
}

/** The run's seed mixed with the tensor's name (FNV-1a), so every tensor has its own stream. */
function tensorSeed(seed: number, name: string): number {
  let h = (0x811c9dc5 ^ seed) >>> 0;
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}

/**
 * sfc32's state (a small generator with 128 bits of state, seeded so the same seed gives the same
 * checkpoint on every machine; Math.random cannot be seeded), advanced past its first outputs, which
 * still carry the seed's bit pattern.
 */
function sfc32State(seed: number): Int32Array {
  let [a, b, c, d] = [0x9e3779b9 | 0, 0x243f6a88, 0xb7e15162 | 0, seed | 0];
  for (let i = 0; i < 16; i++) {
    const t = (((a + b) | 0) + d) | 0;
    d = (d + 1) | 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) | 0;
    c = (c << 21) | (c >>> 11);
    c = (c + t) | 0;
  }
  return Int32Array.from([a, b, c, d]);
}

/** The standard normal's inverse CDF (Acklam's rational approximation, relative error below 1.2e-9). */
export function normalQuantile(p: number): number {
  const a = [-3.969683028665376e1, 2.209460984245205e2, -2.759285104469687e2, 1.38357751867269e2, -3.066479806614716e1, 2.506628277459239];
  const b = [-5.447609879822406e1, 1.615858368580409e2, -1.556989798598866e2, 6.680131188771972e1, -1.328068155288572e1];
  const c = [-7.784894002430293e-3, -3.223964580411365e-1, -2.400758277161838, -2.549732539343734, 4.374664141464968, 2.938163982698783];
  const d = [7.784695709041462e-3, 3.224671290700398e-1, 2.445134137142996, 3.754408661907416];
  const low = 0.02425;
  if (p < low) {
    const q = Math.sqrt(-2 * Math.log(p));
    return (((((c[0]! * q + c[1]!) * q + c[2]!) * q + c[3]!) * q + c[4]!) * q + c[5]!) / ((((d[0]! * q + d[1]!) * q + d[2]!) * q + d[3]!) * q + 1);
  }
  if (p > 1 - low) return -normalQuantile(1 - p);
  const q = p - 0.5;
  const r = q * q;
  return ((((((a[0]! * r + a[1]!) * r + a[2]!) * r + a[3]!) * r + a[4]!) * r + a[5]!) * q) / (((((b[0]! * r + b[1]!) * r + b[2]!) * r + b[3]!) * r + b[4]!) * r + 1);
}

/** Temp folders of runs that were killed would otherwise pile up gigabytes beside the cache. */
async function removeAbandonedTemps(dir: string): Promise<void> {
  const parent = path.dirname(dir);
  const prefix = `${path.basename(dir)}.tmp-`;
  const names = await fsp.readdir(parent).catch(() => [] as string[]);
  for (const name of names) {
    if (!name.startsWith(prefix)) continue;
    const pid = Number(name.slice(prefix.length));
    if (Number.isSafeInteger(pid) && pid !== process.pid && !pidAlive(pid)) {
      await fsp.rm(path.join(parent, name), { recursive: true, force: true });
    }
  }
}
