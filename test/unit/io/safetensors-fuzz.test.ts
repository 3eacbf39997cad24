import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { PruneLensError } from '../../../src/engine/errors';
import { DTYPE_BYTES } from '../../../src/engine/io/dtype';
import { SafetensorsReader } from '../../../src/engine/io/safetensors-reader';
import { seededRandom } from '../../helpers/seeded-random';

const FIXTURE = path.resolve(process.cwd(), 'models/stories260K/model.safetensors');
// `npm run fuzz` runs 10,000; npm test keeps 5,000.
const MUTANTS = Number(process.env.PRUNELENS_FUZZ_MUTANTS ?? 5000);
const BASE_SEED = 0x5afe7e50;
const FLOATS = new Set(['F32', 'F16', 'BF16', 'F64']);

let dir: string;
before(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'prunelens-'));
});
after(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});


/** A file under construction: the 8-byte length, the header text (latin1, so bytes map 1:1 to chars), and the data. */
interface Mutant {
  length: Buffer;
  header: string;
  data: Buffer;
  lengthEdited: boolean;
  cutAt?: number; // file truncated to this many bytes
  log: string[];
}

type Random = () => number;
const pick = <T>(random: Random, items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
const below = (random: Random, n: number): number => Math.floor(random() * n);

const NUMBER = /-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?/g;
const OFFSETS = /"data_offsets":\[(\d+),(\d+)\]/g;
const ENTRY = /"([^"]*)":(\{"dtype":"[^"]*","shape":\[[^\]]*\],"data_offsets":\[\d+,\d+\]\})/g;
const METADATA = /"__metadata__":(\{[^}]*\})/;
const JSON_CHARS = '{}[],:" 0123456789-+.eE\\';

function tokens(text: string, pattern: RegExp): { index: number; text: string }[] {
  return [...text.matchAll(pattern)].map((m) => ({ index: m.index!, text: m[0] }));
}

function splice(text: string, index: number, remove: number, insert: string): string {
  return text.slice(0, index) + insert + text.slice(index + remove);
}

const mutations: Record<string, (m: Mutant, random: Random) => void> = {
  flipLengthBit(m, random) {
    const bit = below(random, 64);
    m.length[bit >> 3]! ^= 1 << (bit & 7);
    m.lengthEdited = true;
    m.log.push(`flip length bit ${bit}`);
  },
  replaceLengthByte(m, random) {
    const i = below(random, 8);
    m.length[i] = below(random, 256);
    m.lengthEdited = true;
    m.log.push(`length byte ${i} = ${m.length[i]}`);
  },
  setLength(m, random) {
    const n = BigInt(m.header.length);
    const total = BigInt(8 + m.header.length + m.data.length);
    const value = pick(random, [0n, 1n, 2n, n - 1n, n + 1n, n + 8n, total - 8n, total, 100_000_000n, 100_000_001n, 2n ** 32n, 2n ** 63n, 2n ** 64n - 1n, BigInt(below(random, Number(total)))]);
    m.length.writeBigUInt64LE(value);
    m.lengthEdited = true;
    m.log.push(`length = ${value}`);
  },
  flipHeaderBit(m, random) {
    const i = below(random, m.header.length);
    const bit = below(random, 8);
    m.header = splice(m.header, i, 1, String.fromCharCode(m.header.charCodeAt(i) ^ (1 << bit)));
    m.log.push(`flip header byte ${i} bit ${bit}`);
  },
  replaceHeaderByte(m, random) {
    const i = below(random, m.header.length);
    const char = random() < 0.2 ? String.fromCharCode(below(random, 256)) : pick(random, [...JSON_CHARS]);
    m.header = splice(m.header, i, 1, char);
    m.log.push(`header byte ${i} = ${JSON.stringify(char)}`);
  },
  replaceNumber(m, random) {
    const numbers = tokens(m.header, NUMBER);
    if (numbers.length === 0) return;
    const token = pick(random, numbers);
    const original = Number(token.text);
    const replacement = pick(random, [
      String(below(random, 1 << 20)),
      String(below(random, 1_100_000)),
      String(original + 1),
      String(Math.max(0, original - 1)),
      String(original * 2),
      '0',
      '-1',
      '-0',
      '1.5',
      '1e400',
      '-1e400',
      '9007199254740991',
      '9007199254740993',
      '18446744073709551616',
      '99999999999999999999999999999',
    ]);
    m.header = splice(m.header, token.index, token.text.length, replacement);
    m.log.push(`number at ${token.index} ${token.text} -> ${replacement}`);
  },
  swapOffsets(m, random) {
    const offsets = [...m.header.matchAll(OFFSETS)].flatMap((match) => {
      const begin = match.index! + '"data_offsets":['.length;
      return [
        { index: begin, text: match[1]! },
        { index: begin + match[1]!.length + 1, text: match[2]! },
      ];
    });
    if (offsets.length === 0) return;
    const x = pick(random, offsets);
    const y = pick(random, offsets);
    if (x.index === y.index) return;
    const [a, b] = x.index < y.index ? [x, y] : [y, x];
    m.header = splice(splice(m.header, b.index, b.text.length, a.text), a.index, a.text.length, b.text);
    m.log.push(`swap offsets ${a.text}@${a.index} and ${b.text}@${b.index}`);
  },
  swapOffsetPairs(m, random) {
    // Swapping whole [begin, end] pairs of two same-sized tensors keeps the file valid: the reader must accept it.
    const pairs = [...m.header.matchAll(OFFSETS)].map((match) => ({ index: match.index!, text: match[0] }));
    if (pairs.length === 0) return;
    const a = pick(random, pairs);
    const b = pick(random, pairs);
    if (a.index === b.index) return;
    const [first, second] = a.index < b.index ? [a, b] : [b, a];
    m.header = splice(splice(m.header, second.index, second.text.length, first.text), first.index, first.text.length, second.text);
    m.log.push(`swap offset pairs at ${first.index} and ${second.index}`);
  },
  replaceDtype(m, random) {
    const dtypes = tokens(m.header, /"F32"/g);
    if (dtypes.length === 0) return;
    const token = pick(random, dtypes);
    const dtype = pick(random, ['"F16"', '"BF16"', '"I64"', '"F64"', '"U8"', '"F4"', '"f32"', '""', '1', 'null', '["F32"]']);
    m.header = splice(m.header, token.index, token.text.length, dtype);
    m.log.push(`dtype at ${token.index} -> ${dtype}`);
  },
  copyOffsetPair(m, random) {
    // Giving a tensor the span of another tensor of the same size makes an overlap (and a hole).
    const pairs = [...m.header.matchAll(OFFSETS)].map((match) => ({ index: match.index!, text: match[0], size: Number(match[2]) - Number(match[1]) }));
    if (pairs.length === 0) return;
    const from = pick(random, pairs);
    const to = pick(random, pairs.filter((pair) => pair.size === from.size));
    m.header = splice(m.header, to.index, to.text.length, from.text);
    m.log.push(`copy offsets at ${from.index} to ${to.index}`);
  },
  renameTensor(m, random) {
    const entries = [...m.header.matchAll(ENTRY)];
    if (entries.length === 0) return;
    const entry = pick(random, entries);
    const name = pick(random, ['', 'ü', '__proto__', 'toString', pick(random, entries)[1]!]);
    m.header = splice(m.header, entry.index! + 1, entry[1]!.length, name);
    m.log.push(`rename ${entry[1]} -> ${JSON.stringify(name)}`);
  },
  replaceEntry(m, random) {
    const entries = [...m.header.matchAll(ENTRY)];
    if (entries.length === 0) return;
    const entry = pick(random, entries);
    const value = pick(random, ['5', 'null', '[]', '"F32"', '{}', '{"dtype":"F32"}', '{"dtype":"F32","shape":[],"data_offsets":[0,4]}']);
    m.header = splice(m.header, entry.index! + entry[1]!.length + 3, entry[2]!.length, value);
    m.log.push(`entry ${entry[1]} = ${value}`);
  },
  replaceMetadata(m, random) {
    const match = METADATA.exec(m.header);
    if (!match) return;
    const value = pick(random, ['[]', 'null', '"pt"', '{"format":1}', '{"format":null}', '{"format":{}}', '{}', '{"a":"b","format":"pt"}']);
    m.header = splice(m.header, match.index + '"__metadata__":'.length, match[1]!.length, value);
    m.log.push(`__metadata__ = ${value}`);
  },
  deleteChars(m, random) {
    const i = below(random, m.header.length);
    const count = 1 + below(random, 8);
    m.header = splice(m.header, i, count, '');
    m.log.push(`delete ${count} at ${i}`);
  },
  insertChars(m, random) {
    const i = below(random, m.header.length + 1);
    let text = '';
    for (let k = 1 + below(random, 4); k > 0; k--) text += random() < 0.7 ? pick(random, [...JSON_CHARS]) : String.fromCharCode(below(random, 256));
    m.header = splice(m.header, i, 0, text);
    m.log.push(`insert ${JSON.stringify(text)} at ${i}`);
  },
  truncate(m, random) {
    const headerEnd = 8 + m.header.length;
    const total = headerEnd + m.data.length;
    m.cutAt = pick(random, [below(random, 8), below(random, headerEnd + 64), below(random, total)]);
    m.log.push(`truncate at ${m.cutAt}`);
  },
  appendBytes(m, random) {
    const extra = 1 + below(random, 16);
    m.data = Buffer.concat([m.data, Buffer.alloc(extra, 0x20)]);
    m.log.push(`append ${extra} bytes`);
  },
};
const names = Object.keys(mutations);

function mutate(seed: number, original: { header: string; data: Buffer }): Mutant {
  const random = seededRandom(seed);
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(BigInt(original.header.length));
  const m: Mutant = { length, lengthEdited: false, header: original.header, data: original.data, log: [] };
  // Most mutants keep the length in step with the edited header, so they get past it to the deeper checks.
  const keepLengthInStep = random() < 0.7;
  for (let count = 1 + below(random, 3); count > 0; count--) mutations[pick(random, names)]!(m, random);
  if (keepLengthInStep && !m.lengthEdited) m.length.writeBigUInt64LE(BigInt(m.header.length));
  return m;
}

function writeMutant(file: string, m: Mutant): void {
  let pieces = [m.length, Buffer.from(m.header, 'latin1'), m.data];
  if (m.cutAt !== undefined) {
    let left = m.cutAt;
    pieces = pieces.map((piece) => {
      const kept = piece.subarray(0, Math.max(0, Math.min(piece.length, left)));
      left -= kept.length;
      return kept;
    });
  }
  const fd = fs.openSync(file, 'w');
  try {
    fs.writevSync(fd, pieces);
  } finally {
    fs.closeSync(fd);
  }
}

const CATEGORIES: [string, RegExp][] = [
  ['file shorter than 8 bytes', /shorter than the 8-byte header length/],
  ['header too large', /header too large/],
  ['header past end of file', /exceeds the file size/],
  ['header not UTF-8', /is not valid UTF-8/],
  ['header not starting with {', /must be a JSON object starting with/],
  ['header not JSON', /is not valid JSON/],
  ['bad __metadata__', /__metadata__/],
  ['empty tensor name', /empty name/],
  ['entry not an object', /header entry is/],
  ['unknown dtype', /not one of the known dtypes/],
  ['element or byte count overflow', /more than 2\^53 - 1/],
  ['bad shape', /shape (is|item)/],
  ['bad data_offsets', /data_offsets (is|item|has)/],
  ['offsets end before they begin', /end before they begin/],
  ['span size mismatch', /hold \d+ bytes but shape/],
  ['overlap', /overlap tensor/],
  ['hole', /leave a hole/],
  ['data truncated', /bytes are missing/],
  ['trailing bytes', /trailing bytes/],
];

test(`${MUTANTS} seeded mutants of the fixture open cleanly or fail with a PruneLensError`, { timeout: 60 * MUTANTS }, async (t) => {
  const bytes = fs.readFileSync(FIXTURE);
  const n = Number(bytes.readBigUInt64LE(0));
  const original = { header: bytes.subarray(8, 8 + n).toString('latin1'), data: bytes.subarray(8 + n) };
  const tally = new Map<string, number>();
  const count = (key: string) => tally.set(key, (tally.get(key) ?? 0) + 1);
  const file = path.join(dir, 'mutant.safetensors');

  for (let i = 0; i < MUTANTS; i++) {
    const seed = BASE_SEED + i;
    const m = mutate(seed, original);
    writeMutant(file, m);
    const context = `mutation seed ${seed} (${m.log.join('; ')})`;
    let reader: SafetensorsReader | undefined;
    try {
      reader = await SafetensorsReader.open(file);
      let total = 0;
      for (const entry of reader.entries.values()) {
        const data = await reader.readBytes(entry.name);
        assert.equal(data.length, entry.byteLength, context);
        if (FLOATS.has(entry.dtype)) {
          assert.equal((await reader.readF32(entry.name)).length, entry.byteLength / DTYPE_BYTES[entry.dtype], context);
        }
        total += entry.byteLength;
      }
      const last = [...reader.entries.values()].at(-1);
      assert.equal(last ? last.byteOffset + last.byteLength : reader.fileSize, reader.fileSize, context);
      assert.ok(total <= reader.fileSize, context);
      count('opened and read every tensor');
    } catch (err) {
      if (!(err instanceof PruneLensError)) {
        assert.fail(`${context}: threw ${err instanceof Error ? `${err.constructor.name}: ${err.message}\n${err.stack}` : String(err)}`);
      }
      assert.equal(err.kind, 'checkpoint', `${context}: ${err.message}`);
      assert.ok(err.message.startsWith(`${file}: `), `${context}: message must name the file: ${err.message}`);
      assert.ok(err.message.length < 1000, `${context}: message too long (${err.message.length} chars)`);
      const category = CATEGORIES.find(([, pattern]) => pattern.test(err.message));
      count(category ? category[0] : `other: ${err.message.slice(file.length + 2, file.length + 80)}`);
    } finally {
      await reader?.close();
    }
  }

  t.diagnostic(`outcomes of ${MUTANTS} mutants:`);
  for (const [key, value] of [...tally].sort((a, b) => b[1] - a[1])) t.diagnostic(`${String(value).padStart(5)}  ${key}`);
  assert.ok((tally.get('opened and read every tensor') ?? 0) > 100, 'some mutants must stay valid');
  const errorKinds = [...tally.keys()].filter((key) => key !== 'opened and read every tensor');
  assert.ok(errorKinds.length >= 15, `mutations should reach most checks, reached: ${errorKinds.join(', ')}`);
});
