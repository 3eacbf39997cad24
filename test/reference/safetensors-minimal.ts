/**
 * Minimal, independent F32-only safetensors reader for tests.
 * Does NOT import anything from src/ (it is a ground-truth helper).
 *
 * Format: [u64 LE header length N][N bytes JSON header][raw data].
 * Header: { name: { dtype, shape, data_offsets: [begin, end] }, "__metadata__"?: {...} },
 * offsets relative to the start of the data section.
 */
import * as fs from 'node:fs';

export interface RefTensor {
  shape: number[];
  data: Float64Array;
}

interface HeaderEntry {
  dtype: string;
  shape: number[];
  data_offsets: [number, number];
}

export function loadF32Tensors(path: string): Map<string, RefTensor> {
  const buf = fs.readFileSync(path);
  const headerLen = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.toString('utf8', 8, 8 + headerLen)) as Record<string, unknown>;
  const dataStart = 8 + headerLen;
  const out = new Map<string, RefTensor>();
  for (const [name, raw] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    const e = raw as HeaderEntry;
    if (e.dtype !== 'F32') throw new Error(`safetensors-minimal: ${name} has dtype ${e.dtype}, only F32 supported`);
    const [begin, end] = e.data_offsets;
    const n = (end - begin) / 4;
    const data = new Float64Array(n);
    const base = dataStart + begin;
    for (let i = 0; i < n; i++) data[i] = buf.readFloatLE(base + 4 * i);
    out.set(name, { shape: e.shape.slice(), data });
  }
  return out;
}
