import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { PruneLensError } from '../../../src/engine/errors';
import { SafetensorsReader } from '../../../src/engine/io/safetensors-reader';

const FIXTURE = path.resolve(process.cwd(), 'models/stories260K/model.safetensors');

let dir: string;
before(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'prunelens-'));
});
after(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

/** 8-byte little-endian length, header text, then `data` (a byte count of a ramp, or the bytes themselves). */
function safetensorsBytes(header: string | object, data: number | Uint8Array = 0, declaredLength?: bigint): Buffer {
  const json = Buffer.from(typeof header === 'string' ? header : JSON.stringify(header), 'utf8');
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(declaredLength ?? BigInt(json.length));
  const body = typeof data === 'number' ? Uint8Array.from({ length: data }, (_, i) => i & 0xff) : data;
  return Buffer.concat([prefix, json, body]);
}

function writeFile(name: string, bytes: Uint8Array): string {
  const file = path.join(dir, name);
  fs.writeFileSync(file, bytes);
  return file;
}

/** Checks the failure is a checkpoint PruneLensError naming the file (and the tensor, when given) with the specifics. */
async function assertRejects(run: () => Promise<unknown>, file: string, pattern: RegExp, tensor?: string): Promise<void> {
  await assert.rejects(run, (err: unknown) => {
    assert.ok(err instanceof PruneLensError, `expected a PruneLensError, got ${String(err)}`);
    assert.equal(err.kind, 'checkpoint');
    assert.ok(err.message.startsWith(`${file}: `), `message should start with the file: ${err.message}`);
    if (tensor !== undefined) assert.equal(err.where, `${file}: tensor "${tensor}"`);
    assert.match(err.message, pattern);
    return true;
  });
}

async function assertOpenFails(name: string, bytes: Uint8Array, pattern: RegExp, tensor?: string): Promise<void> {
  const file = writeFile(name, bytes);
  await assertRejects(() => SafetensorsReader.open(file), file, pattern, tensor);
}

const f32 = (shape: number[], begin: number, end: number) => ({ dtype: 'F32', shape, data_offsets: [begin, end] });

/** The header parsed by hand, as another loader would, to check the reader against. */
function parseIndependently(bytes: Buffer): { header: Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>; span(name: string): Buffer } {
  const n = Number(bytes.readBigUInt64LE(0));
  const header = JSON.parse(bytes.subarray(8, 8 + n).toString('utf8'));
  return {
    header,
    span: (name) => bytes.subarray(8 + n + header[name].data_offsets[0], 8 + n + header[name].data_offsets[1]),
  };
}

describe('SafetensorsReader on the stories260K fixture', () => {
  test('lists every tensor with its shape, in data order, and the metadata', async () => {
    const bytes = fs.readFileSync(FIXTURE);
    const { header } = parseIndependently(bytes);
    const reader = await SafetensorsReader.open(FIXTURE);
    try {
      assert.equal(reader.fileSize, bytes.length);
      assert.deepEqual(reader.metadata, { format: 'pt' });
      const expected = Object.entries(header)
        .filter(([name]) => name !== '__metadata__')
        .sort(([, a], [, b]) => a.data_offsets[0] - b.data_offsets[0])
        .map(([name, info]) => [name, info.shape]);
      assert.deepEqual([...reader.entries.values()].map((e) => [e.name, e.shape]), expected);
      assert.equal(reader.entries.size, 47);
      assert.deepEqual(reader.entries.get('model.embed_tokens.weight')?.shape, [512, 64]);
      assert.deepEqual(reader.entries.get('model.norm.weight')?.shape, [64]);
      assert.deepEqual(reader.entries.get('model.layers.4.mlp.down_proj.weight')?.shape, [64, 172]);
      for (const entry of reader.entries.values()) assert.equal(entry.dtype, 'F32');
    } finally {
      await reader.close();
    }
  });

  test('model.norm.weight matches an independent parse of the file', async () => {
    const { span } = parseIndependently(fs.readFileSync(FIXTURE));
    const expected = new Float32Array(Uint8Array.from(span('model.norm.weight')).buffer);
    const reader = await SafetensorsReader.open(FIXTURE);
    try {
      const values = await reader.readF32('model.norm.weight');
      assert.equal(values.length, 64);
      assert.deepEqual(values, expected);
      assert.ok(values.some((v) => v !== 0));
    } finally {
      await reader.close();
    }
  });

  test('every tensor reads back byte for byte', async () => {
    const { span } = parseIndependently(fs.readFileSync(FIXTURE));
    const reader = await SafetensorsReader.open(FIXTURE);
    try {
      const all = await Promise.all([...reader.entries.keys()].map(async (name) => [name, await reader.readBytes(name)] as const));
      for (const [name, bytes] of all) {
        assert.deepEqual(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength), span(name), name);
        assert.equal(bytes.byteOffset, 0);
      }
    } finally {
      await reader.close();
    }
  });
});

describe('SafetensorsReader accepts valid files', () => {
  test('entries come in data-offset order with absolute offsets; spaces pad the header; zero-size tensors work', async () => {
    const header = {
      b: f32([2], 8, 16),
      __metadata__: { format: 'pt', note: 'x' },
      empty: { dtype: 'F16', shape: [0, 3], data_offsets: [8, 8] },
      a: { dtype: 'I64', shape: [1], data_offsets: [0, 8] },
      scalar: f32([], 16, 20),
    };
    const text = `${JSON.stringify(header)}    `;
    const file = writeFile('valid.safetensors', safetensorsBytes(text, 20));
    const reader = await SafetensorsReader.open(file);
    try {
      const start = 8 + Buffer.byteLength(text);
      assert.deepEqual([...reader.entries.values()], [
        { name: 'a', dtype: 'I64', shape: [1], byteOffset: start, byteLength: 8 },
        { name: 'empty', dtype: 'F16', shape: [0, 3], byteOffset: start + 8, byteLength: 0 },
        { name: 'b', dtype: 'F32', shape: [2], byteOffset: start + 8, byteLength: 8 },
        { name: 'scalar', dtype: 'F32', shape: [], byteOffset: start + 16, byteLength: 4 },
      ]);
      assert.deepEqual(reader.metadata, { format: 'pt', note: 'x' });
      assert.deepEqual([...(await reader.readBytes('b'))], [8, 9, 10, 11, 12, 13, 14, 15]);
      assert.equal((await reader.readBytes('empty')).length, 0);
      assert.equal((await reader.readF32('empty')).length, 0);
    } finally {
      await reader.close();
    }
  });

  test('a header with no tensors and no data is valid', async () => {
    const reader = await SafetensorsReader.open(writeFile('empty.safetensors', safetensorsBytes('{}')));
    assert.equal(reader.entries.size, 0);
    assert.deepEqual(reader.metadata, {});
    await reader.close();
    await reader.close(); // closing twice is harmless
  });

  test('readF32 decodes F16 and BF16 tensors', async () => {
    const data = new Uint8Array(new Uint16Array([0x3c00, 0xc000, 0x3f80, 0x4040]).buffer);
    const header = { h: { dtype: 'F16', shape: [2], data_offsets: [0, 4] }, b: { dtype: 'BF16', shape: [2], data_offsets: [4, 8] } };
    const reader = await SafetensorsReader.open(writeFile('halves.safetensors', safetensorsBytes(header, data)));
    try {
      assert.deepEqual(await reader.readF32('h'), new Float32Array([1, -2]));
      assert.deepEqual(await reader.readF32('b'), new Float32Array([1, 3]));
    } finally {
      await reader.close();
    }
  });
});

describe('SafetensorsReader rejects broken files', () => {
  test('file shorter than 8 bytes', async () => {
    await assertOpenFails('short.safetensors', new Uint8Array(5), /file is 5 bytes, shorter than the 8-byte header length/);
    await assertOpenFails('zero.safetensors', new Uint8Array(0), /file is 0 bytes/);
  });

  test('header length over 100,000,000', async () => {
    await assertOpenFails('huge-header.safetensors', safetensorsBytes('{}', 0, 100_000_001n), /header too large: header length 100000001 exceeds the 100000000-byte limit \(file size 10;/);
    await assertOpenFails('max-header.safetensors', safetensorsBytes('{}', 0, 2n ** 64n - 1n), /header length 18446744073709551615 exceeds the 100000000-byte limit/);
  });

  test('header length past the end of the file', async () => {
    await assertOpenFails('truncated-header.safetensors', safetensorsBytes('{"a":', 0, 1000n), /header length 1000 exceeds the file size 13 minus the 8-byte length \(truncated file\?\)/);
  });

  test('header that is not UTF-8', async () => {
    const bytes = safetensorsBytes('{"a":"xx"}');
    bytes[13] = 0xff;
    bytes[14] = 0xfe;
    await assertOpenFails('latin1.safetensors', bytes, /header \(10 bytes\) is not valid UTF-8/);
  });

  test('header that does not start with "{"', async () => {
    await assertOpenFails('leading-space.safetensors', safetensorsBytes(' {}'), /header \(3 bytes\) must be a JSON object starting with "\{" but starts with " \{\}"/);
    await assertOpenFails('bom.safetensors', safetensorsBytes('\ufeff{}'), /must be a JSON object starting with "\{" but starts with "\ufeff\{\}"/);
    await assertOpenFails('array.safetensors', safetensorsBytes('[]'), /starts with "\[\]"/);
    await assertOpenFails('zero-length.safetensors', safetensorsBytes(''), /header \(0 bytes\) must be a JSON object/);
  });

  test('header that is not JSON, with the parser\'s reason', async () => {
    await assertOpenFails('bad-json.safetensors', safetensorsBytes('{"a":1x}'), /header \(8 bytes\) is not valid JSON \(.*position 6/);
    await assertOpenFails('cut-json.safetensors', safetensorsBytes('{"a":{"dtype":'), /header \(14 bytes\) is not valid JSON \(Unexpected end of JSON input\)/);
  });

  test('__metadata__ that is not an object of strings', async () => {
    await assertOpenFails('meta-array.safetensors', safetensorsBytes({ __metadata__: ['pt'] }), /__metadata__ is an array of 1 items, not an object of strings/);
    await assertOpenFails('meta-number.safetensors', safetensorsBytes({ __metadata__: { format: 'pt', step: 7 } }), /__metadata__ entry "step" is 7, not a string/);
    await assertOpenFails('meta-null.safetensors', safetensorsBytes({ __metadata__: null }), /__metadata__ is null, not an object of strings/);
  });

  test('empty tensor name', async () => {
    await assertOpenFails('empty-name.safetensors', safetensorsBytes({ '': f32([1], 0, 4) }, 4), /a tensor has an empty name/);
  });

  test('tensor entry that is not an object', async () => {
    await assertOpenFails('entry-number.safetensors', safetensorsBytes({ w: 5 }), /header entry is 5, not an object with dtype, shape and data_offsets/, 'w');
    await assertOpenFails('entry-array.safetensors', safetensorsBytes({ w: [1, 2] }), /header entry is an array of 2 items/, 'w');
  });

  test('unknown or missing dtype, listing the known ones', async () => {
    const known = 'F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL, U16, U32, U64, F8_E4M3, F8_E5M2';
    await assertOpenFails('f4.safetensors', safetensorsBytes({ w: { dtype: 'F4', shape: [2], data_offsets: [0, 1] } }, 1), new RegExp(`dtype "F4" is not one of the known dtypes: ${known}$`), 'w');
    await assertOpenFails('no-dtype.safetensors', safetensorsBytes({ w: { shape: [1], data_offsets: [0, 4] } }, 4), /dtype missing is not one of the known dtypes/, 'w');
    await assertOpenFails('proto-dtype.safetensors', safetensorsBytes({ w: { dtype: 'toString', shape: [1], data_offsets: [0, 4] } }, 4), /dtype "toString" is not one of/, 'w');
  });

  test('shape that is not an array of non-negative safe integers', async () => {
    const bad = (shape: unknown) => safetensorsBytes({ w: { dtype: 'F32', shape, data_offsets: [0, 4] } }, 4);
    await assertOpenFails('shape-missing.safetensors', bad(undefined), /shape is missing, not an array of non-negative integers/, 'w');
    await assertOpenFails('shape-string.safetensors', bad('4'), /shape is "4", not an array/, 'w');
    await assertOpenFails('shape-negative.safetensors', bad([2, -1]), /shape item 1 is -1, not a non-negative integer below 2\^53/, 'w');
    await assertOpenFails('shape-fraction.safetensors', bad([1.5]), /shape item 0 is 1\.5, not a non-negative integer/, 'w');
    await assertOpenFails('shape-unsafe.safetensors', safetensorsBytes('{"w":{"dtype":"F32","shape":[9007199254740993],"data_offsets":[0,4]}}', 4), /shape item 0 is 9007199254740992, not a non-negative integer below 2\^53/, 'w');
    await assertOpenFails('shape-infinite.safetensors', safetensorsBytes('{"w":{"dtype":"F32","shape":[1e400],"data_offsets":[0,4]}}', 4), /shape item 0 is Infinity/, 'w');
    await assertOpenFails('shape-nested.safetensors', bad([[1]]), /shape item 0 is an array of 1 items/, 'w');
  });

  test('data_offsets that are not [begin, end] with end >= begin', async () => {
    const bad = (offsets: unknown) => safetensorsBytes({ w: { dtype: 'F32', shape: [1], data_offsets: offsets } }, 4);
    await assertOpenFails('offsets-one.safetensors', bad([4]), /data_offsets has 1 numbers instead of \[begin, end\]/, 'w');
    await assertOpenFails('offsets-three.safetensors', bad([0, 4, 8]), /data_offsets has 3 numbers/, 'w');
    await assertOpenFails('offsets-negative.safetensors', bad([-4, 0]), /data_offsets item 0 is -4, not a non-negative integer/, 'w');
    await assertOpenFails('offsets-huge.safetensors', bad([0, 2 ** 64]), /data_offsets item 1 is 18446744073709552000, not a non-negative integer below 2\^53/, 'w');
    await assertOpenFails('offsets-backwards.safetensors', bad([8, 4]), /data_offsets \[8, 4\] end before they begin/, 'w');
  });

  test('element count that overflows 2^53', async () => {
    const header = { w: { dtype: 'F32', shape: [2 ** 20, 2 ** 20, 2 ** 20], data_offsets: [0, 4] } };
    await assertOpenFails('overflow.safetensors', safetensorsBytes(header, 4), /shape \[1048576, 1048576, 1048576\] has more than 2\^53 - 1 elements/, 'w');
    const bytesOverflow = { w: { dtype: 'F64', shape: [2 ** 51], data_offsets: [0, 4] } };
    await assertOpenFails('overflow-bytes.safetensors', safetensorsBytes(bytesOverflow, 4), /shape \[2251799813685248\] of F64 needs 2251799813685248 x 8 bytes, more than 2\^53 - 1/, 'w');
  });

  test('byte span that disagrees with shape and dtype', async () => {
    await assertOpenFails('mismatch.safetensors', safetensorsBytes({ 'model.norm.weight': f32([64], 0, 100) }, 100), /tensor "model\.norm\.weight": data_offsets \[0, 100\] hold 100 bytes but shape \[64\] of F32 needs 256$/, 'model.norm.weight');
  });

  test('overlapping tensors, naming both', async () => {
    const header = { first: f32([4], 0, 16), second: f32([4], 8, 24) };
    await assertOpenFails('overlap.safetensors', safetensorsBytes(header, 24), /tensor "second": data_offsets \[8, 24\] overlap tensor "first" at \[0, 16\]/, 'second');
    const same = { first: f32([4], 0, 16), twin: f32([4], 0, 16) };
    await assertOpenFails('duplicate-span.safetensors', safetensorsBytes(same, 16), /data_offsets \[0, 16\] overlap tensor "(first|twin)" at \[0, 16\]/);
  });

  test('holes between tensors or before the first', async () => {
    const header = { first: f32([4], 0, 16), second: f32([4], 20, 36) };
    await assertOpenFails('hole.safetensors', safetensorsBytes(header, 36), /tensor "second": data_offsets \[20, 36\] leave a hole of 4 bytes after tensor "first", which ends at 16/, 'second');
    await assertOpenFails('hole-start.safetensors', safetensorsBytes({ only: f32([1], 4, 8) }, 8), /data_offsets \[4, 8\] leave a hole of 4 bytes after the start of the data \(0\)/, 'only');
  });

  test('data shorter than the header says (truncation)', async () => {
    const header = { a: f32([4], 0, 16), last: f32([4], 16, 32) };
    await assertOpenFails('truncated-data.safetensors', safetensorsBytes(header, 28), /4 bytes are missing \(truncated file\?\): the last tensor, "last", ends at data offset 32 but the file size \d+ leaves 28 bytes after the \d+-byte header/);
  });

  test('trailing bytes after the last tensor', async () => {
    const header = { a: f32([4], 0, 16) };
    const bytes = safetensorsBytes(header, 24);
    await assertOpenFails('trailing.safetensors', bytes, new RegExp(`8 trailing bytes follow the last tensor: the last tensor, "a", ends at data offset 16 but the file size ${bytes.length} leaves 24 bytes`));
    await assertOpenFails('trailing-no-tensors.safetensors', safetensorsBytes('{}', 3), /3 trailing bytes follow the last tensor: there are no tensors, so the data ends at data offset 0/);
  });

  test('a path that is missing or not a file', async () => {
    const missing = path.join(dir, 'missing.safetensors');
    await assertRejects(() => SafetensorsReader.open(missing), missing, /cannot open the file \(ENOENT/);
    const folder = path.join(dir, 'folder.safetensors');
    fs.mkdirSync(folder);
    await assertRejects(() => SafetensorsReader.open(folder), folder, /not a regular file/);
  });

  test('failed opens do not leak file handles', async (t) => {
    if (!fs.existsSync('/proc/self/fd')) return t.skip('needs /proc/self/fd');
    const file = writeFile('leak.safetensors', safetensorsBytes({ w: 5 }));
    const before = fs.readdirSync('/proc/self/fd').length;
    for (let i = 0; i < 50; i++) await SafetensorsReader.open(file).catch(() => undefined);
    assert.ok(fs.readdirSync('/proc/self/fd').length <= before + 2);
  });
});

describe('SafetensorsReader reading tensors', () => {
  test('an unknown name is reported without listing the file contents', async () => {
    const file = writeFile('names.safetensors', safetensorsBytes({ w: f32([1], 0, 4) }, 4));
    const reader = await SafetensorsReader.open(file);
    try {
      await assertRejects(() => reader.readBytes('model.missing.weight'), file, /no tensor named "model\.missing\.weight" in this file$/);
      await assertRejects(() => reader.readF32('x'.repeat(10_000)), file, /no tensor named "x{200}…" in this file$/);
    } finally {
      await reader.close();
    }
  });

  test('a file truncated after it was opened gives a truncation error naming file and tensor', async () => {
    const header = { a: f32([4], 0, 16), b: f32([4], 16, 32) };
    const bytes = safetensorsBytes(header, 32);
    const file = writeFile('shrinks.safetensors', bytes);
    const reader = await SafetensorsReader.open(file);
    try {
      fs.truncateSync(file, bytes.length - 6);
      assert.equal((await reader.readBytes('a')).length, 16);
      await assertRejects(() => reader.readBytes('b'), file, /truncated: the file ended after 10 of the 16 bytes at offset \d+/, 'b');
    } finally {
      await reader.close();
    }
  });

  test('readF32 of an integer tensor says it is not floating point', async () => {
    const file = writeFile('ints.safetensors', safetensorsBytes({ ids: { dtype: 'I64', shape: [2], data_offsets: [0, 16] } }, 16));
    const reader = await SafetensorsReader.open(file);
    try {
      await assertRejects(() => reader.readF32('ids'), file, /dtype I64 cannot be read as floating point/, 'ids');
    } finally {
      await reader.close();
    }
  });
});
