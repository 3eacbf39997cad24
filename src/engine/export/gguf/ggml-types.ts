/**
 * The ggml tensor types PruneLens writes and their encoders from float32. Layouts as ggml defines them
 * (ggml/src/ggml-common.h, ggml-quants.c): F32, F16 (IEEE half), BF16 (top half of a float32, rounded
 * to nearest even) and Q8_0 (blocks of 32 values: an fp16 scale d = max|x| / 127, then 32 int8
 * round(x / d), rounding half away from zero as C's roundf does).
 */
import { f32ToBf16, f32ToF16 } from '../../io/dtype';

export const GGUF_TYPES = ['f32', 'f16', 'bf16', 'q8_0'] as const;
export type GgufType = (typeof GGUF_TYPES)[number];

export function isGgufType(s: string): s is GgufType {
  return (GGUF_TYPES as readonly string[]).includes(s);
}

/** ggml_type ids (ggml.h). */
export const GGML_TYPE_ID: Record<GgufType, number> = { f32: 0, f16: 1, q8_0: 8, bf16: 30 };

/** llama_ftype ids for general.file_type: what most of the weights are stored as. */
export const FILE_TYPE_ID: Record<GgufType, number> = { f32: 0, f16: 1, q8_0: 7, bf16: 32 };

export const Q8_0_BLOCK = 32;
const Q8_0_BLOCK_BYTES = 2 + Q8_0_BLOCK;

/** Bytes of a tensor whose fastest dimension (a row) has `rowLength` elements. */
export function ggmlByteLength(type: GgufType, elements: number): number {
  switch (type) {
    case 'f32':
      return elements * 4;
    case 'f16':
    case 'bf16':
      return elements * 2;
    case 'q8_0':
      return (elements / Q8_0_BLOCK) * Q8_0_BLOCK_BYTES;
  }
}

/** Encodes row-major float32 values; for q8_0 the caller guarantees rows are a multiple of 32 long. */
export function encodeGgml(type: GgufType, values: Float32Array): Uint8Array {
  switch (type) {
    case 'f32':
      return new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
    case 'f16':
    case 'bf16': {
      const out = new Uint16Array(values.length);
      const convert = type === 'f16' ? f32ToF16 : f32ToBf16;
      for (let i = 0; i < values.length; i++) out[i] = convert(values[i]!);
      return new Uint8Array(out.buffer);
    }
    case 'q8_0':
      return encodeQ8_0(values);
  }
}

function encodeQ8_0(values: Float32Array): Uint8Array {
  const blocks = values.length / Q8_0_BLOCK;
  const out = new Uint8Array(blocks * Q8_0_BLOCK_BYTES);
  const view = new DataView(out.buffer);
  const qs = new Int8Array(out.buffer);
  for (let b = 0; b < blocks; b++) {
    const base = b * Q8_0_BLOCK;
    let amax = 0;
    for (let j = 0; j < Q8_0_BLOCK; j++) amax = Math.max(amax, Math.abs(values[base + j]!));
    // ggml computes d and its inverse in float32; Math.fround keeps the rounding the same.
    const d = Math.fround(amax / 127);
    const id = d !== 0 ? Math.fround(1 / d) : 0;
    const at = b * Q8_0_BLOCK_BYTES;
    view.setUint16(at, f32ToF16(d), true);
    for (let j = 0; j < Q8_0_BLOCK; j++) {
      const x = Math.fround(values[base + j]! * id);
      qs[at + 2 + j] = Math.sign(x) * Math.round(Math.abs(x));
    }
  }
  return out;
}
