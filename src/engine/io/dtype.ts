/**
 * Safetensors element types and the float codecs the engine needs.
 *
 * The typed-array views below read and write in host byte order; safetensors is little-endian,
 * and so is every platform onnxruntime-node ships for, so no byte swapping is done.
 */
import { PruneLensError } from '../errors';

export type DType =
  | 'F64'
  | 'F32'
  | 'F16'
  | 'BF16'
  | 'I64'
  | 'I32'
  | 'I16'
  | 'I8'
  | 'U8'
  | 'BOOL'
  | 'U16'
  | 'U32'
  | 'U64'
  | 'F8_E4M3'
  | 'F8_E5M2';

export const DTYPE_BYTES: Record<DType, number> = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U8: 1,
  BOOL: 1,
  U16: 2,
  U32: 4,
  U64: 8,
  F8_E4M3: 1,
  F8_E5M2: 1,
};

// Object.hasOwn so that names such as "toString" or "__proto__" are not taken for dtypes.
export function isDType(s: string): s is DType {
  return Object.hasOwn(DTYPE_BYTES, s);
}

/** "[512, 64]", shortened for shapes from untrusted headers that list thousands of dimensions. */
export function formatShape(shape: readonly number[]): string {
  const shown = shape.length > 16 ? `${shape.slice(0, 16).join(', ')}, … (${shape.length} dimensions)` : shape.join(', ');
  return `[${shown}]`;
}

/** Bytes a tensor holds; refuses counts past 2^53 - 1, where doubles stop counting exactly. */
export function tensorByteLength(dtype: DType, shape: readonly number[], where: string): number {
  let count = 1;
  for (const dim of shape) {
    if (dim !== 0 && count > Math.floor(Number.MAX_SAFE_INTEGER / dim)) {
      throw new PruneLensError('checkpoint', `shape ${formatShape(shape)} has more than 2^53 - 1 elements`, where);
    }
    count *= dim;
  }
  const size = DTYPE_BYTES[dtype];
  if (count > Math.floor(Number.MAX_SAFE_INTEGER / size)) {
    throw new PruneLensError(
      'checkpoint',
      `shape ${formatShape(shape)} of ${dtype} needs ${count} x ${size} bytes, more than 2^53 - 1`,
      where,
    );
  }
  return count * size;
}

export function f16ToF32(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >>> 10) & 0x1f;
  const mantissa = bits & 0x3ff;
  if (exponent === 0) return sign * mantissa * 2 ** -24;
  if (exponent === 0x1f) return mantissa ? NaN : sign * Infinity;
  return sign * (1024 + mantissa) * 2 ** (exponent - 25);
}

const scratchF32 = new Float32Array(1);
const scratchU32 = new Uint32Array(scratchF32.buffer);

export function bf16ToF32(bits: number): number {
  scratchU32[0] = (bits & 0xffff) << 16;
  return scratchF32[0]!;
}

export function f32ToF16(x: number): number {
  scratchF32[0] = x;
  return f32BitsToF16(scratchU32[0]!);
}

export function f32ToBf16(x: number): number {
  scratchF32[0] = x;
  return f32BitsToBf16(scratchU32[0]!);
}

function f32BitsToF16(bits: number): number {
  const sign = (bits >>> 16) & 0x8000;
  const exponent = (bits >>> 23) & 0xff;
  const mantissa = bits & 0x7fffff;
  // Infinity stays infinity; a NaN keeps its top payload bits and gets the quiet bit so it cannot become infinity.
  if (exponent === 0xff) return sign | 0x7c00 | (mantissa ? 0x200 | (mantissa >>> 13) : 0);
  const e = exponent - 112; // rebias 127 -> 15
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    // fp16 subnormal (or zero): value = m * 2^-24 with m = full 24-bit significand >> shift.
    if (e < -10) return sign; // below half the smallest subnormal
    const significand = mantissa | 0x800000;
    const shift = 14 - e;
    let half = significand >>> shift;
    const rest = significand & ((1 << shift) - 1);
    const halfway = 1 << (shift - 1);
    if (rest > halfway || (rest === halfway && half & 1)) half++; // a carry into 0x400 is the smallest normal, as it should be
    return sign | half;
  }
  let half = (e << 10) | (mantissa >>> 13);
  const rest = mantissa & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && half & 1)) half++; // a carry into the exponent rounds up to the next binade or to infinity
  return sign | half;
}

function f32BitsToBf16(bits: number): number {
  if ((bits & 0x7fffffff) > 0x7f800000) return (bits >>> 16) | 0x40; // NaN: quiet bit set so truncation cannot make it infinity
  // Adding 0x7fff plus the lowest kept bit rounds to nearest, ties to even; overflow carries into infinity.
  return ((bits + 0x7fff + ((bits >>> 16) & 1)) >>> 16) & 0xffff;
}

let f16Table: Float32Array | undefined;

/** All 65536 fp16 values, so decoding is one table lookup per element. */
function f16Lookup(): Float32Array {
  if (!f16Table) {
    f16Table = new Float32Array(65536);
    for (let bits = 0; bits < 65536; bits++) f16Table[bits] = f16ToF32(bits);
  }
  return f16Table;
}

/** Decodes into `into` when given (exactly as many elements), else into new memory. */
export function decodeToF32(dtype: DType, bytes: Uint8Array, where: string, into?: Float32Array<ArrayBuffer>): Float32Array<ArrayBuffer> {
  if (dtype !== 'F32' && dtype !== 'F16' && dtype !== 'BF16' && dtype !== 'F64') {
    throw new PruneLensError('checkpoint', `dtype ${dtype} cannot be read as floating point`, where);
  }
  const size = DTYPE_BYTES[dtype];
  if (bytes.byteLength % size !== 0) {
    throw new PruneLensError(
      'checkpoint',
      `${bytes.byteLength} bytes are not a whole number of ${dtype} elements (${size} bytes each)`,
      where,
    );
  }
  const n = bytes.byteLength / size;
  // Typed-array views need an offset aligned to the element size; a copy always starts at 0.
  const aligned = bytes.byteOffset % size === 0 ? bytes : new Uint8Array(bytes);
  if (into && into.length !== n) throw new Error(`decodeToF32: ${where} has ${n} elements, the array given ${into.length}`);
  const out = into ?? allocateF32(n, where);
  switch (dtype) {
    case 'F32':
      out.set(new Float32Array(aligned.buffer, aligned.byteOffset, n));
      break;
    case 'F64': {
      const src = new Float64Array(aligned.buffer, aligned.byteOffset, n);
      for (let i = 0; i < n; i++) out[i] = src[i]!;
      break;
    }
    case 'F16': {
      const src = new Uint16Array(aligned.buffer, aligned.byteOffset, n);
      const table = f16Lookup();
      for (let i = 0; i < n; i++) out[i] = table[src[i]!]!;
      break;
    }
    case 'BF16': {
      // bf16 is the top half of an f32, so widening is a shift and keeps every bit, NaN payloads included.
      const src = new Uint16Array(aligned.buffer, aligned.byteOffset, n);
      const dst = new Uint32Array(out.buffer, out.byteOffset, n);
      for (let i = 0; i < n; i++) dst[i] = src[i]! << 16;
      break;
    }
  }
  return out;
}

/** Dtypes `encodeFromF32` writes: what a pruned tensor can be stored as. */
export const WRITABLE_DTYPES: readonly DType[] = ['F32', 'F16', 'BF16'];

/** Encodes into the start of `into` when given (at least as many bytes as the encoding), else into new memory. */
export function encodeFromF32(dtype: DType, values: Float32Array, where: string, into?: Uint8Array<ArrayBuffer>): Uint8Array<ArrayBuffer> {
  const n = values.length;
  const bytesOf = (size: number): Uint8Array<ArrayBuffer> => (into ? into.subarray(0, n * size) : allocateBytes(n * size, where));
  const bits = new Uint32Array(values.buffer, values.byteOffset, n); // Float32Array offsets are always 4-aligned
  // Every zero is written as +0.0: sparse kernels test the bit pattern, and -0.0 is not all-zero bits.
  switch (dtype) {
    case 'F32': {
      const bytes = bytesOf(4);
      const out = new Uint32Array(bytes.buffer, bytes.byteOffset, n);
      for (let i = 0; i < n; i++) {
        const b = bits[i]!;
        out[i] = b === 0x80000000 ? 0 : b;
      }
      return bytes;
    }
    case 'F16': {
      const bytes = bytesOf(2);
      const out = new Uint16Array(bytes.buffer, bytes.byteOffset, n);
      for (let i = 0; i < n; i++) {
        const h = f32BitsToF16(bits[i]!);
        out[i] = h === 0x8000 ? 0 : h; // also catches tiny negatives that round to -0
      }
      return bytes;
    }
    case 'BF16': {
      const bytes = bytesOf(2);
      const out = new Uint16Array(bytes.buffer, bytes.byteOffset, n);
      for (let i = 0; i < n; i++) {
        const h = f32BitsToBf16(bits[i]!);
        out[i] = h === 0x8000 ? 0 : h;
      }
      return bytes;
    }
    default:
      throw new PruneLensError('checkpoint', `dtype ${dtype} cannot be written from floating point`, where);
  }
}

function allocateF32(n: number, where: string): Float32Array<ArrayBuffer> {
  return new Float32Array(allocateBytes(n * 4, where).buffer);
}

/**
 * Tensor sizes come from checkpoint headers, so an allocation the runtime refuses is reported as a
 * checkpoint problem rather than escaping as a RangeError.
 */
function allocateBytes(byteLength: number, where: string): Uint8Array<ArrayBuffer> {
  try {
    return new Uint8Array(byteLength);
  } catch (err) {
    throw new PruneLensError(
      'checkpoint',
      `cannot allocate ${byteLength} bytes for this tensor (${(err as Error).message})`,
      where,
    );
  }
}
