import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { PruneLensError } from '../../../src/engine/errors';
import { encodeFromF32, f16ToF32, f32ToF16 } from '../../../src/engine/io/dtype';
import { SafetensorsReader } from '../../../src/engine/io/safetensors-reader';
import { SafetensorsWriter, TensorSpec, buildHeader, writeSafetensors } from '../../../src/engine/io/safetensors-writer';

let dir: string;
before(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'prunelens-'));
});
after(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

/** A loader that shares no code with the engine: length prefix, JSON.parse, spans by data_offsets. */
function foreignLoad(bytes: Buffer): {
  n: number;
  text: string;
  header: Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] } | Record<string, string>>;
  span(name: string): Buffer;
} {
  const n = Number(bytes.readBigUInt64LE(0));
  const text = bytes.subarray(8, 8 + n).toString('utf8');
  const header = JSON.parse(text);
  return { n, text, header, span: (name) => bytes.subarray(8 + n + header[name].data_offsets[0], 8 + n + header[name].data_offsets[1]) };
}

function randomBytes(length: number, seed: number): Uint8Array {
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    out[i] = seed >>> 24;
  }
  return out;
}

const specs: TensorSpec[] = [
  { name: 'model.embed_tokens.weight', dtype: 'F32', shape: [3, 5] },
  { name: 'model.layers.0.mlp.up_proj.weight', dtype: 'F16', shape: [7] },
  { name: 'model.norm.weight', dtype: 'BF16', shape: [3] },
  { name: 'position_ids', dtype: 'I64', shape: [1, 2] },
  { name: 'empty', dtype: 'F32', shape: [0, 4] },
];
const sizes = [60, 14, 6, 16, 0];
const payloads = specs.map((_, i) => randomBytes(sizes[i]!, i + 1));
const metadata = { format: 'pt', pruned_by: 'PruneLens', sparsity: '0.5' };

async function assertWriteFails(file: string, run: () => Promise<void>, kind: string, pattern: RegExp): Promise<void> {
  await assert.rejects(run, (err: unknown) => {
    assert.ok(err instanceof PruneLensError, `expected a PruneLensError, got ${String(err)}`);
    assert.equal(err.kind, kind);
    assert.match(err.message, pattern);
    return true;
  });
  assert.equal(fs.existsSync(file), false, 'no partial file may be left behind');
}

describe('writeSafetensors', () => {
  test('F32, F16, BF16 and I64 tensors and metadata round-trip bit-exactly through the reader', async () => {
    const file = path.join(dir, 'roundtrip.safetensors');
    await writeSafetensors(file, specs, (spec) => payloads[specs.indexOf(spec)]!, metadata);
    const reader = await SafetensorsReader.open(file);
    try {
      assert.deepEqual(reader.metadata, metadata);
      assert.deepEqual(
        [...reader.entries.values()].map(({ name, dtype, shape }) => ({ name, dtype, shape })),
        specs,
      );
      for (const [i, spec] of specs.entries()) assert.deepEqual(await reader.readBytes(spec.name), payloads[i], spec.name);
    } finally {
      await reader.close();
    }
  });

  test('a foreign loader reads the file: aligned header, metadata first, contiguous spans, same bytes', async () => {
    const file = path.join(dir, 'foreign.safetensors');
    await writeSafetensors(file, specs, async (spec) => payloads[specs.indexOf(spec)]!, metadata);
    const bytes = fs.readFileSync(file);
    const { n, text, header, span } = foreignLoad(bytes);
    assert.equal((8 + n) % 8, 0);
    assert.ok(text.startsWith('{"__metadata__":'));
    assert.match(text, /^[^]*\} *$/);
    assert.deepEqual(header['__metadata__'], metadata);
    assert.deepEqual(Object.keys(header), ['__metadata__', ...specs.map((s) => s.name)]);
    let offset = 0;
    for (const [i, spec] of specs.entries()) {
      assert.deepEqual(header[spec.name], { dtype: spec.dtype, shape: spec.shape, data_offsets: [offset, offset + sizes[i]!] });
      assert.deepEqual(new Uint8Array(span(spec.name)), payloads[i]);
      offset += sizes[i]!;
    }
    assert.equal(bytes.length, 8 + n + offset);
  });

  test('encoded half-precision weights come back as the rounded values', async () => {
    const file = path.join(dir, 'halves.safetensors');
    const values = new Float32Array([0.1, -0.2, 3.14159, 70000, -0]);
    const halfSpec: TensorSpec = { name: 'w', dtype: 'F16', shape: [5] };
    await writeSafetensors(file, [halfSpec], () => encodeFromF32('F16', values, 'w'));
    const reader = await SafetensorsReader.open(file);
    try {
      const back = await reader.readF32('w');
      assert.deepEqual([...back], [...values].map((v) => (v === 0 ? 0 : Math.fround(f16ToF32(f32ToF16(v))))));
      assert.ok(Object.is(back[4], 0));
    } finally {
      await reader.close();
    }
  });

  test('streams: asks for one tensor at a time, in order, after the previous one was written', async () => {
    const file = path.join(dir, 'streaming.safetensors');
    const asked: string[] = [];
    let inFlight = 0;
    await writeSafetensors(file, specs, async (spec) => {
      inFlight++;
      assert.equal(inFlight, 1);
      asked.push(spec.name);
      await new Promise((resolve) => setTimeout(resolve, 2));
      inFlight--;
      return payloads[specs.indexOf(spec)]!;
    });
    assert.deepEqual(asked, specs.map((s) => s.name));
    assert.equal(fs.statSync(file).size, buildHeader(specs).length + sizes.reduce((a, b) => a + b, 0));
  });

  test('no tensors at all is a valid file', async () => {
    const file = path.join(dir, 'nothing.safetensors');
    await writeSafetensors(file, [], () => new Uint8Array(0));
    const reader = await SafetensorsReader.open(file);
    assert.equal(reader.entries.size, 0);
    await reader.close();
  });

  test('data of the wrong length is an error and leaves no file', async () => {
    const file = path.join(dir, 'wrong-length.safetensors');
    await assertWriteFails(
      file,
      () => writeSafetensors(file, specs, (spec) => (spec.name === 'model.norm.weight' ? new Uint8Array(4) : payloads[specs.indexOf(spec)]!)),
      'checkpoint',
      /wrong-length\.safetensors: tensor "model\.norm\.weight": the data for this tensor has 4 bytes but shape \[3\] of BF16 needs 6$/,
    );
  });

  test('an error thrown by the data callback is rethrown unchanged and leaves no file', async () => {
    const file = path.join(dir, 'callback-throws.safetensors');
    const cancelled = new PruneLensError('cancelled', 'cancelled by the user');
    await assert.rejects(
      writeSafetensors(file, specs, (spec) => {
        if (spec.dtype === 'I64') throw cancelled;
        return payloads[specs.indexOf(spec)]!;
      }),
      (err) => err === cancelled,
    );
    assert.equal(fs.existsSync(file), false);
  });

  test('invalid specs are refused before any file is created', async () => {
    const file = path.join(dir, 'bad-spec.safetensors');
    const one = (spec: Partial<TensorSpec>): TensorSpec[] => [{ name: 'w', dtype: 'F32', shape: [1], ...spec }];
    const data = () => new Uint8Array(4);
    await assertWriteFails(file, () => writeSafetensors(file, [...one({}), ...one({})], data), 'checkpoint', /tensor "w": the tensor name appears twice/);
    await assertWriteFails(file, () => writeSafetensors(file, one({ name: '' }), data), 'checkpoint', /"" cannot be a tensor name/);
    await assertWriteFails(file, () => writeSafetensors(file, one({ name: '__metadata__' }), data), 'checkpoint', /"__metadata__" cannot be a tensor name/);
    await assertWriteFails(file, () => writeSafetensors(file, one({ shape: [2, -1] }), data), 'checkpoint', /shape dimension 1 is -1, not a non-negative integer/);
    await assertWriteFails(file, () => writeSafetensors(file, one({ dtype: 'F4' as never }), data), 'checkpoint', /unknown dtype "F4"/);
    await assertWriteFails(file, () => writeSafetensors(file, one({}), data, { step: 3 as never }), 'checkpoint', /metadata entry "step" is a number, not a string/);
  });

  test('a full disk is an output error and the partial file is removed', async (t) => {
    if (!fs.existsSync('/dev/full')) return t.skip('needs /dev/full');
    // A link to /dev/full: writes fail with ENOSPC, and the cleanup removes only the link.
    const file = path.join(dir, 'full.safetensors');
    fs.symlinkSync('/dev/full', file);
    await assertWriteFails(file, () => writeSafetensors(file, specs, (spec) => payloads[specs.indexOf(spec)]!), 'output', /full\.safetensors: no space left on device while writing the header \(at byte 0 of \d+\)/);
    assert.ok(fs.existsSync('/dev/full'));
  });

  test('an unwritable location is an output error', async () => {
    const file = path.join(dir, 'no-such-folder', 'model.safetensors');
    await assertWriteFails(file, () => writeSafetensors(file, specs, (spec) => payloads[specs.indexOf(spec)]!), 'output', /creating the file failed \(ENOENT/);
  });
});

describe('SafetensorsWriter', () => {
  test('takes tensors in any order and gives the same file as a sequential write', async () => {
    const sequential = path.join(dir, 'sequential.safetensors');
    const shuffled = path.join(dir, 'shuffled.safetensors');
    await writeSafetensors(sequential, specs, (spec) => payloads[specs.indexOf(spec)]!, { format: 'pt' });
    const writer = await SafetensorsWriter.create(shuffled, specs, { format: 'pt' });
    for (const i of specs.map((_, i) => i).reverse()) await writer.writeTensor(specs[i]!.name, payloads[i]!);
    await writer.close();
    assert.deepEqual(fs.readFileSync(shuffled), fs.readFileSync(sequential));
  });

  test('refuses to close with a tensor missing, a tensor written twice, or an unknown name', async () => {
    const file = path.join(dir, 'incomplete.safetensors');
    const writer = await SafetensorsWriter.create(file, specs);
    await writer.writeTensor(specs[0]!.name, payloads[0]!);
    await assert.rejects(writer.writeTensor(specs[0]!.name, payloads[0]!), /not a tensor of this file, or written already/);
    await assert.rejects(writer.writeTensor('nope', payloads[0]!), /incomplete\.safetensors: tensor "nope": not a tensor of this file/);
    await assert.rejects(writer.close(), new RegExp(`${specs.length - 1} tensor\\(s\\) never written, first "${specs[1]!.name}"`));
    await writer.abort();
    assert.equal(fs.existsSync(file), false);
  });
});

describe('buildHeader', () => {
  test('pads with spaces to a multiple of 8 for every header length', () => {
    for (let length = 1; length <= 16; length++) {
      const header = buildHeader([{ name: 'x'.repeat(length), dtype: 'U8', shape: [1] }]);
      const n = Number(Buffer.from(header).readBigUInt64LE(0));
      assert.equal(header.length, 8 + n);
      assert.equal(header.length % 8, 0);
      const text = Buffer.from(header.subarray(8)).toString('utf8');
      assert.match(text, /^\{.*\} {0,7}$/);
      assert.deepEqual(JSON.parse(text), { ['x'.repeat(length)]: { dtype: 'U8', shape: [1], data_offsets: [0, 1] } });
    }
  });

  test('keeps the given order even for integer-like names, and omits __metadata__ when not given', () => {
    const header = buildHeader([
      { name: 'b', dtype: 'F32', shape: [2] },
      { name: '10', dtype: 'F16', shape: [] },
      { name: 'ü "quoted"', dtype: 'I8', shape: [3, 0] },
      { name: '2', dtype: 'BOOL', shape: [1] },
    ]);
    const text = Buffer.from(header.subarray(8)).toString('utf8').trimEnd();
    assert.equal(
      text,
      '{"b":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"10":{"dtype":"F16","shape":[],"data_offsets":[8,10]},' +
        '"ü \\"quoted\\"":{"dtype":"I8","shape":[3,0],"data_offsets":[10,10]},"2":{"dtype":"BOOL","shape":[1],"data_offsets":[10,11]}}',
    );
  });

  test('errors from buildHeader name the tensor', () => {
    assert.throws(
      () => buildHeader([{ name: 'w', dtype: 'F32', shape: [2 ** 30, 2 ** 30, 2 ** 30] }]),
      (err: unknown) => err instanceof PruneLensError && err.kind === 'checkpoint' && /^tensor "w": shape \[1073741824, 1073741824, 1073741824\] has more than 2\^53 - 1 elements$/.test(err.message),
    );
  });
});
