import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { PruneLensError } from '../../../src/engine/errors';
import {
  DTYPE_BYTES,
  bf16ToF32,
  decodeToF32,
  encodeFromF32,
  f16ToF32,
  f32ToBf16,
  f32ToF16,
  isDType,
  tensorByteLength,
} from '../../../src/engine/io/dtype';
import { seededRandom } from '../../helpers/seeded-random';

const isF16NaN = (bits: number): boolean => (bits & 0x7c00) === 0x7c00 && (bits & 0x3ff) !== 0;
const isBf16NaN = (bits: number): boolean => (bits & 0x7f80) === 0x7f80 && (bits & 0x7f) !== 0;

function u16Bytes(values: number[]): Uint8Array {
  return new Uint8Array(new Uint16Array(values).buffer);
}

function assertCheckpointError(fn: () => unknown, pattern: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof PruneLensError, `expected a PruneLensError, got ${String(err)}`);
    assert.equal(err.kind, 'checkpoint');
    assert.match(err.message, pattern);
    return true;
  });
}

/** Reference rounding with plain double arithmetic: |x| scaled by its ulp is an exact double, so floor and compare are exact. */
function roundToFormat(x: number, mantissaBits: number, minExponent: number, overflowAt: number): number {
  if (Number.isNaN(x)) return NaN;
  const a = Math.abs(x);
  const sign = x < 0 || Object.is(x, -0) ? -1 : 1;
  if (a >= overflowAt) return sign * Infinity;
  if (a === 0) return sign * 0;
  let e = Math.floor(Math.log2(a));
  if (2 ** e > a) e--;
  if (2 ** (e + 1) <= a) e++;
  const ulp = 2 ** (Math.max(e, minExponent) - mantissaBits);
  const q = a / ulp;
  let r = Math.floor(q);
  const fraction = q - r;
  if (fraction > 0.5 || (fraction === 0.5 && r % 2 === 1)) r++;
  return sign * r * ulp;
}


describe('dtype table', () => {
  test('element sizes', () => {
    assert.deepEqual(DTYPE_BYTES, {
      F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, BOOL: 1, U16: 2, U32: 4, U64: 8,
      F8_E4M3: 1, F8_E5M2: 1,
    });
  });

  test('isDType accepts exactly the table keys', () => {
    for (const name of Object.keys(DTYPE_BYTES)) assert.ok(isDType(name), name);
    for (const name of ['f32', 'F4', '', 'toString', '__proto__', 'constructor', 'hasOwnProperty']) {
      assert.equal(isDType(name), false, name);
    }
  });

  test('tensorByteLength multiplies with overflow checks', () => {
    assert.equal(tensorByteLength('F32', [512, 64], 'w'), 131072);
    assert.equal(tensorByteLength('BF16', [], 'w'), 2);
    assert.equal(tensorByteLength('F16', [0, 2 ** 52], 'w'), 0);
    assertCheckpointError(() => tensorByteLength('F32', [2 ** 26, 2 ** 26, 2 ** 26], 'w'), /^w: shape \[67108864, 67108864, 67108864\] has more than 2\^53 - 1 elements$/);
    assertCheckpointError(() => tensorByteLength('F32', [2 ** 52], 'w'), /4503599627370496 x 4 bytes, more than 2\^53 - 1/);
  });
});

describe('scalar codecs', () => {
  test('f16ToF32 known values', () => {
    assert.equal(f16ToF32(0x3c00), 1);
    assert.equal(f16ToF32(0xc000), -2);
    assert.equal(f16ToF32(0x7bff), 65504);
    assert.equal(f16ToF32(0x0400), 2 ** -14); // smallest normal, 6.1035e-5
    assert.equal(f16ToF32(0x03ff), 1023 * 2 ** -24); // largest subnormal, 6.0976e-5
    assert.equal(f16ToF32(0x0001), 2 ** -24);
    assert.equal(f16ToF32(0x3555), 0.333251953125);
    assert.equal(f16ToF32(0x7c00), Infinity);
    assert.equal(f16ToF32(0xfc00), -Infinity);
    assert.ok(Number.isNaN(f16ToF32(0x7e00)));
    assert.ok(Number.isNaN(f16ToF32(0xfc01)));
    assert.ok(Object.is(f16ToF32(0x8000), -0));
    assert.ok(Object.is(f16ToF32(0x0000), 0));
  });

  test('bf16ToF32 known values', () => {
    assert.equal(bf16ToF32(0x3f80), 1);
    assert.equal(bf16ToF32(0xc000), -2);
    assert.equal(bf16ToF32(0x7f7f), 3.3895313892515355e38);
    assert.equal(bf16ToF32(0x0001), 2 ** -133);
    assert.equal(bf16ToF32(0x0080), 2 ** -126);
    assert.equal(bf16ToF32(0x7f80), Infinity);
    assert.equal(bf16ToF32(0xff80), -Infinity);
    assert.ok(Number.isNaN(bf16ToF32(0x7fc0)));
    assert.ok(Object.is(bf16ToF32(0x8000), -0));
  });

  test('f32ToF16 known values, overflow and subnormals', () => {
    assert.equal(f32ToF16(1), 0x3c00);
    assert.equal(f32ToF16(-2), 0xc000);
    assert.equal(f32ToF16(65504), 0x7bff);
    assert.equal(f32ToF16(65519), 0x7bff); // below the halfway point to 65536
    assert.equal(f32ToF16(65520), 0x7c00); // halfway, ties to the even 65536, which overflows
    assert.equal(f32ToF16(1e6), 0x7c00);
    assert.equal(f32ToF16(-1e6), 0xfc00);
    assert.equal(f32ToF16(Infinity), 0x7c00);
    assert.equal(f32ToF16(-Infinity), 0xfc00);
    assert.equal(f32ToF16(6.1e-5), 0x03ff); // subnormal: 6.1e-5 / 2^-24 = 1023.4
    assert.equal(f32ToF16(2 ** -14), 0x0400);
    assert.equal(f32ToF16(2 ** -24), 0x0001);
    assert.equal(f32ToF16(1e-10), 0x0000);
    assert.equal(f32ToF16(-1e-10), 0x8000);
    assert.equal(f32ToF16(-0), 0x8000);
    assert.ok(isF16NaN(f32ToF16(NaN)));
  });

  test('f32ToF16 rounds ties to even', () => {
    assert.equal(f32ToF16(1 + 2 ** -11), 0x3c00); // halfway between 1 (even) and 1 + 2^-10
    assert.equal(f32ToF16(1 + 3 * 2 ** -11), 0x3c02); // halfway between 0x3c01 and the even 0x3c02
    assert.equal(f32ToF16(1 + 2 ** -11 + 2 ** -20), 0x3c01); // just above halfway
    assert.equal(f32ToF16(2 ** -25), 0x0000); // halfway between 0 and the smallest subnormal
    assert.equal(f32ToF16(3 * 2 ** -25), 0x0002); // halfway between subnormals 1 and 2
    assert.equal(f32ToF16(5 * 2 ** -25), 0x0002); // halfway between subnormals 2 and 3
    assert.equal(f32ToF16(2047 * 2 ** -25), 0x0400); // rounds up out of the subnormals into the smallest normal
  });

  test('f32ToBf16 known values and ties to even', () => {
    assert.equal(f32ToBf16(1), 0x3f80);
    assert.equal(f32ToBf16(-2), 0xc000);
    assert.equal(f32ToBf16(Infinity), 0x7f80);
    assert.equal(f32ToBf16(-Infinity), 0xff80);
    assert.equal(f32ToBf16(3.4028234663852886e38), 0x7f80); // f32 max rounds up to infinity
    assert.equal(f32ToBf16(1 + 2 ** -8), 0x3f80); // halfway, even stays
    assert.equal(f32ToBf16(1 + 3 * 2 ** -8), 0x3f82); // halfway, rounds to even
    assert.equal(f32ToBf16(1 + 2 ** -8 + 2 ** -20), 0x3f81);
    assert.equal(f32ToBf16(-0), 0x8000);
    assert.ok(isBf16NaN(f32ToBf16(NaN)));
    // A NaN whose payload lives only in the low 16 bits must not truncate to infinity.
    const f = new Float32Array(new Uint32Array([0x7f800001]).buffer)[0]!;
    assert.ok(isBf16NaN(f32ToBf16(f)));
  });

  test('f32ToF16 and f32ToBf16 match a reference rounding on 200,000 random f32 values', () => {
    const random = seededRandom(12345);
    const bits = new Uint32Array(1);
    const f32 = new Float32Array(bits.buffer);
    for (let i = 0; i < 200_000; i++) {
      // Half uniform over all bit patterns, half concentrated near the fp16 range.
      bits[0] = i % 2 ? (random() * 2 ** 32) >>> 0 : ((random() < 0.5 ? 0x80000000 : 0) | ((0x30 + Math.floor(random() * 0x18)) << 23) | Math.floor(random() * 2 ** 23)) >>> 0;
      const x = f32[0]!;
      const half = f16ToF32(f32ToF16(x));
      const expectedHalf = roundToFormat(x, 10, -14, 65520);
      assert.ok(Object.is(half, expectedHalf), `f16 of ${x} (bits 0x${bits[0]!.toString(16)}): got ${half}, expected ${expectedHalf}`);
      const brain = bf16ToF32(f32ToBf16(x));
      const expectedBrain = roundToFormat(x, 7, -126, 2 ** 128 * (1 - 2 ** -9));
      assert.ok(Object.is(brain, expectedBrain), `bf16 of ${x} (bits 0x${bits[0]!.toString(16)}): got ${brain}, expected ${expectedBrain}`);
    }
  });

  test('all 65536 f16 patterns survive decode then encode', () => {
    for (let bits = 0; bits < 65536; bits++) {
      const back = f32ToF16(f16ToF32(bits));
      if (isF16NaN(bits)) assert.ok(isF16NaN(back), `NaN 0x${bits.toString(16)} became 0x${back.toString(16)}`);
      else assert.equal(back, bits, `0x${bits.toString(16)}`);
    }
  });

  test('all 65536 bf16 patterns survive decode then encode', () => {
    for (let bits = 0; bits < 65536; bits++) {
      const back = f32ToBf16(bf16ToF32(bits));
      if (isBf16NaN(bits)) assert.ok(isBf16NaN(back), `NaN 0x${bits.toString(16)} became 0x${back.toString(16)}`);
      else assert.equal(back, bits, `0x${bits.toString(16)}`);
    }
  });
});

describe('bulk codecs', () => {
  test('decodeToF32 reads each float dtype little-endian', () => {
    const f32 = new Uint8Array(new Float32Array([1, -2, 0.1, 65504]).buffer);
    assert.deepEqual(decodeToF32('F32', f32, 'w'), new Float32Array([1, -2, 0.1, 65504]));
    assert.deepEqual(decodeToF32('F16', u16Bytes([0x3c00, 0xc000, 0x7bff, 0x0001]), 'w'), new Float32Array([1, -2, 65504, 2 ** -24]));
    assert.deepEqual(decodeToF32('BF16', u16Bytes([0x3f80, 0xc000, 0x7f80]), 'w'), new Float32Array([1, -2, Infinity]));
    const f64 = new Uint8Array(new Float64Array([1, -2, 0.1, 1e300]).buffer);
    assert.deepEqual(decodeToF32('F64', f64, 'w'), new Float32Array([1, -2, Math.fround(0.1), Infinity]));
    // Spelled out byte by byte, so the test does not depend on the host's byte order.
    assert.deepEqual(decodeToF32('F16', new Uint8Array([0x00, 0x3c, 0x00, 0xc0]), 'w'), new Float32Array([1, -2]));
  });

  test('decodeToF32 handles data at an unaligned offset and does not alias it', () => {
    const values = new Float64Array([1.5, -3.25, 7]);
    for (const dtype of ['F32', 'F16', 'BF16', 'F64'] as const) {
      const encoded = dtype === 'F64' ? new Uint8Array(values.buffer) : encodeFromF32(dtype, new Float32Array(values), 'w');
      const shifted = new Uint8Array(encoded.byteLength + 1);
      shifted.set(encoded, 1);
      const view = shifted.subarray(1);
      const decoded = decodeToF32(dtype, view, 'w');
      assert.deepEqual(decoded, new Float32Array(values), dtype);
      decoded[0] = 99;
      assert.deepEqual(decodeToF32(dtype, view, 'w'), new Float32Array(values), `${dtype} result must not share memory with the input`);
    }
  });

  test('decoding and encoding into a given array give the bytes a new one would, in that array', () => {
    const values = new Float32Array([1.5, -3.25, 7, -0, 65504, 1e-8]);
    for (const dtype of ['F32', 'F16', 'BF16'] as const) {
      const fresh = encodeFromF32(dtype, values, 'w');
      const scratch = new Uint8Array(fresh.byteLength + 8).fill(0xff);
      const into = encodeFromF32(dtype, values, 'w', scratch);
      assert.deepEqual(into, fresh, dtype);
      assert.equal(into.buffer, scratch.buffer, `${dtype} was encoded into the scratch buffer`);
      const target = new Float32Array(values.length).fill(NaN);
      assert.equal(decodeToF32(dtype, fresh, 'w', target), target);
      assert.deepEqual(target, decodeToF32(dtype, fresh, 'w'), dtype);
    }
  });

  test('decodeToF32 keeps every bf16 NaN a NaN and maps all 65536 f16 patterns like f16ToF32', () => {
    const all = new Uint16Array(65536).map((_, i) => i);
    const halves = decodeToF32('F16', new Uint8Array(all.buffer), 'w');
    const brains = decodeToF32('BF16', new Uint8Array(all.buffer), 'w');
    for (let bits = 0; bits < 65536; bits++) {
      assert.ok(Object.is(halves[bits], Math.fround(f16ToF32(bits))), `f16 0x${bits.toString(16)}`);
      assert.ok(Object.is(brains[bits], bf16ToF32(bits)), `bf16 0x${bits.toString(16)}`);
    }
  });

  test('decodeToF32 refuses non-float dtypes and partial elements, naming the place', () => {
    assertCheckpointError(() => decodeToF32('I64', new Uint8Array(8), 'model.safetensors: tensor "x"'), /^model\.safetensors: tensor "x": dtype I64 cannot be read as floating point$/);
    assertCheckpointError(() => decodeToF32('U8', new Uint8Array(1), 'w'), /dtype U8 cannot be read as floating point/);
    assertCheckpointError(() => decodeToF32('F16', new Uint8Array(5), 'w'), /^w: 5 bytes are not a whole number of F16 elements \(2 bytes each\)$/);
  });

  test('encodeFromF32 writes every zero as +0.0, even tiny negatives that round to zero', () => {
    const values = new Float32Array([-0, 0, -1e-30, 1.5, -1.5]);
    const f32 = new Uint32Array(encodeFromF32('F32', values, 'w').buffer);
    assert.deepEqual([...f32], [0, 0, new Uint32Array(new Float32Array([-1e-30]).buffer)[0], 0x3fc00000, 0xbfc00000]);
    assert.deepEqual([...new Uint16Array(encodeFromF32('F16', values, 'w').buffer)], [0, 0, 0, 0x3e00, 0xbe00]);
    assert.deepEqual([...new Uint16Array(encodeFromF32('BF16', new Float32Array([-0, -1e-45, 1.5]), 'w').buffer)], [0, 0, 0x3fc0]);
  });

  test('encodeFromF32 rounds like the scalar codecs and keeps inf and NaN', () => {
    const values = new Float32Array([1 + 2 ** -11, 1 + 3 * 2 ** -11, 65520, -Infinity, NaN, 6.1e-5]);
    const halves = new Uint16Array(encodeFromF32('F16', values, 'w').buffer);
    assert.deepEqual([...halves].slice(0, 4), [0x3c00, 0x3c02, 0x7c00, 0xfc00]);
    assert.ok(isF16NaN(halves[4]!));
    assert.equal(halves[5], 0x03ff);
    const brains = new Uint16Array(encodeFromF32('BF16', values, 'w').buffer);
    assert.ok(isBf16NaN(brains[4]!));
    assert.equal(brains[3], 0xff80);
  });

  test('encodeFromF32 reads a Float32Array that is a view into a larger buffer', () => {
    const backing = new Float32Array([9, 1, 2, 9]);
    const bytes = encodeFromF32('F32', backing.subarray(1, 3), 'w');
    assert.deepEqual(new Float32Array(bytes.buffer), new Float32Array([1, 2]));
  });

  test('encodeFromF32 refuses non-float dtypes', () => {
    assertCheckpointError(() => encodeFromF32('I8', new Float32Array(2), 'out.safetensors: tensor "y"'), /^out\.safetensors: tensor "y": dtype I8 cannot be written from floating point$/);
    assertCheckpointError(() => encodeFromF32('F64', new Float32Array(2), 'w'), /dtype F64 cannot be written from floating point/);
  });
});
