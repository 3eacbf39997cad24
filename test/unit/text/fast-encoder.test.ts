import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { before, describe, it } from 'node:test';
import { Tokenizer } from '@huggingface/tokenizers';
import { buildEncoding, type TextEncoding } from '../../../src/engine/text/tokenizer';
import { PythonRandom } from '../../../src/engine/calibrate/python-random';
import { EVAL_TEXT, FIXTURE_MODEL, SHARED_DATA } from '../../helpers/fixtures';
import { byteLevelTokenizerJson, trainByteLevelBpe, type ByteLevelFamily } from '../../../scripts/byte-level-tokenizer';

/**
 * The fast encoder against @huggingface/tokenizers, the library the engine encoded with before (the
 * independent reference): identical ids on the project's real texts, for the embedded SentencePiece-
 * style tokenizer and for GPT-2-style byte-level tokenizers in three families' layouts.
 */
const CALIB_TEXT = path.join(SHARED_DATA, 'tinystories', 'calibration.txt');
const WIKITEXT = path.join(SHARED_DATA, 'wikitext2', 'test_raw.txt');
const C4 = path.join(SHARED_DATA, 'c4', 'c4_en_train_first1000.jsonl');
const MIXED = 'Héllo  wörld!\n\n  🙂 中文, naïve\tcafé — 👩‍👩‍👧 ok   \n\nend  ';

const read = (file: string): string => fs.readFileSync(file, 'utf8');
const c4Documents = (): string[] =>
  read(C4)
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => (JSON.parse(l) as { text: string }).text);

function assertSameIds(fast: Int32Array, reference: number[], what: string): void {
  assert.equal(fast.length, reference.length, `${what}: ${fast.length} ids, the reference has ${reference.length}`);
  for (let i = 0; i < fast.length; i++) {
    if (fast[i] !== reference[i]) assert.fail(`${what}: id ${i} is ${fast[i]}, the reference has ${reference[i]} (ids ${i - 2}.. ${Array.from(fast.subarray(Math.max(0, i - 2), i + 3))} vs ${reference.slice(Math.max(0, i - 2), i + 3)})`);
  }
}

function encoders(json: object, config: object = {}): { fast: TextEncoding; reference: Tokenizer } {
  const { encoding } = buildEncoding({ source: 'tokenizer.json', json: JSON.stringify(json), config: JSON.stringify(config) });
  return { fast: encoding, reference: new Tokenizer(json, config) };
}

function compare(e: { fast: TextEncoding; reference: Tokenizer }, text: string, what: string): number {
  const ids = e.fast.encode(text);
  assertSameIds(ids, e.reference.encode(text).ids, what);
  return ids.length;
}

/** Random strings built from pieces of real text and awkward characters, for the corners whole texts rarely reach. */
function randomStrings(count: number, seed: number, alphabet: string[]): string[] {
  const random = new PythonRandom(seed);
  const out: string[] = [];
  for (let k = 0; k < count; k++) {
    let s = '';
    const n = random.randint(0, 40);
    for (let i = 0; i < n; i++) s += alphabet[random.randint(0, alphabet.length - 1)];
    out.push(s);
  }
  return out;
}

const AWKWARD = [' ', '  ', '\n', '\t', 'a', 'the', ' the', 'aaaa', "'s", "'LL", '12345', '!!', '🙂', '中', 'é', 'e\u0301', '\u2581', '<s>', '</s>', '<unk>', '<|endoftext|>', '<|begin_of_text|>', '\r\n', '\u00a0'];

describe('the fast encoder gives the reference library\'s ids: embedded SentencePiece-style tokenizer (byte fallback, no pre-tokenizer)', () => {
  let e: { fast: TextEncoding; reference: Tokenizer };
  before(() => {
    e = encoders(JSON.parse(read(path.join(FIXTURE_MODEL, 'tokenizer.json'))), JSON.parse(read(path.join(FIXTURE_MODEL, 'tokenizer_config.json'))));
  });

  it('covers the tokenizer with the fast path', () => assert.equal(e.fast.kind, 'fast BPE'));

  it('TinyStories evaluation and calibration texts, whole (152,506 and 304,110 ids)', () => {
    assert.equal(compare(e, read(EVAL_TEXT), 'eval.txt'), 152506);
    assert.equal(compare(e, read(CALIB_TEXT), 'calibration.txt'), 304110);
  });

  // The reference needs minutes for the whole of WikiText-2 in one piece (its queue grows with the
  // text); the first 150,000 characters hold headings, numbers and <unk> sections alike.
  it('WikiText-2 test (its first 150,000 characters, <unk> and all) and the first 150 C4 documents', () => {
    compare(e, read(WIKITEXT).slice(0, 150_000), 'wikitext');
    c4Documents()
      .slice(0, 150)
      .forEach((doc, i) => compare(e, doc, `C4 document ${i}`));
  });

  it('mixed scripts, emoji, added tokens in the text, empty and blank texts, long runs', () => {
    for (const text of [MIXED, '', ' ', '   \n', '<s>', 'a<s>b</s> <unk>c', 'x'.repeat(5000), '▁▁▁ ▁', '\u0000\uffff\ud800']) compare(e, text, JSON.stringify(text.slice(0, 20)));
    randomStrings(300, 1, AWKWARD).forEach((s, i) => compare(e, s, `random string ${i} ${JSON.stringify(s)}`));
  });
});

describe('the fast encoder gives the reference library\'s ids: byte-level BPE (GPT-2, Llama 3, Qwen2 layouts)', () => {
  let learned: ReturnType<typeof trainByteLevelBpe>;
  before(() => {
    learned = trainByteLevelBpe(read(CALIB_TEXT).slice(0, 60_000), 400);
  });

  // The whole texts once (GPT-2's layout); the other layouts differ before BPE only, so shorter texts suffice.
  for (const family of ['gpt2', 'llama3', 'qwen2'] as ByteLevelFamily[]) {
    const whole = family === 'gpt2';
    it(`${family}: TinyStories, WikiText-2 and C4 texts${whole ? ', whole' : ' (parts)'}, then random strings`, () => {
      const e = encoders(byteLevelTokenizerJson(family, learned));
      assert.equal(e.fast.kind, 'fast BPE');
      compare(e, read(EVAL_TEXT), 'eval.txt');
      if (whole) compare(e, read(CALIB_TEXT), 'calibration.txt');
      compare(e, whole ? read(WIKITEXT) : read(WIKITEXT).slice(0, 300_000), 'wikitext');
      const docs = c4Documents();
      if (whole) compare(e, docs.join('\n\n'), 'C4, all documents joined');
      docs.slice(0, 100).forEach((doc, i) => compare(e, doc, `C4 document ${i}`));
      compare(e, MIXED, 'mixed');
      randomStrings(300, 2, AWKWARD).forEach((s, i) => compare(e, s, `random string ${i} ${JSON.stringify(s)}`));
    });
  }

  it('merges the same in long pieces, where the merge loop switches to a heap', () => {
    // "a a" then "aa aa" then "aaaa aaaa"...: a 1000-character run is one piece with deep, overlapping merges.
    const vocab: Record<string, number> = { a: 0, b: 1, aa: 2, aaaa: 3, ab: 4, aaaaaaaa: 5, aab: 6 };
    const merges = ['a a', 'aa aa', 'a b', 'aaaa aaaa', 'aa b', 'a a'];
    const json = { version: '1.0', added_tokens: [], normalizer: null, pre_tokenizer: null, post_processor: null, decoder: null, model: { type: 'BPE', unk_token: null, vocab, merges } };
    const e = encoders(json);
    for (const text of ['a'.repeat(1000), 'ab'.repeat(300), 'a'.repeat(61) + 'b' + 'a'.repeat(77), randomStrings(50, 3, ['a', 'b', 'aa']).join('')]) compare(e, text, text.slice(0, 10));
  });
});

describe('the fast encoder gives the reference library\'s ids: variants of the embedded tokenizer', () => {
  const embedded = (): Record<string, unknown> => JSON.parse(read(path.join(FIXTURE_MODEL, 'tokenizer.json'))) as Record<string, unknown>;
  const model = (json: Record<string, unknown>): Record<string, unknown> => json['model'] as Record<string, unknown>;
  const texts = (): string[] => [read(EVAL_TEXT).slice(0, 40_000), MIXED, '🙂🙂 x 🙂', ...randomStrings(200, 4, AWKWARD)];

  it('Metaspace pre-tokenizer instead of the normalizer (newer Llama 2 and Mistral files), prepend_scheme first and always', () => {
    for (const scheme of ['first', 'always']) {
      const json = embedded();
      json['normalizer'] = null;
      json['pre_tokenizer'] = { type: 'Metaspace', replacement: '\u2581', prepend_scheme: scheme, split: false };
      const e = encoders(json);
      assert.equal(e.fast.kind, 'fast BPE');
      texts().forEach((t, i) => compare(e, t, `${scheme}: text ${i}`));
    }
  });

  it('no byte fallback: unknown characters become <unk>, runs of them fused or not', () => {
    for (const fuse of [true, false]) {
      const json = embedded();
      Object.assign(model(json), { byte_fallback: false, fuse_unk: fuse });
      const e = encoders(json);
      texts().forEach((t, i) => compare(e, t, `fuse_unk ${fuse}: text ${i}`));
    }
  });

  it('lstrip/rstrip added tokens, a normalized added token, and an EOS appended by the template', () => {
    const json = embedded();
    const added = json['added_tokens'] as Record<string, unknown>[];
    added.push({ id: 3, content: '<mask>', single_word: false, lstrip: true, rstrip: true, normalized: false, special: true });
    added.push({ id: 4, content: 'upon a', single_word: false, lstrip: false, rstrip: false, normalized: true, special: false });
    const processor = json['post_processor'] as Record<string, unknown[]>;
    processor['single']!.push({ SpecialToken: { id: '</s>', type_id: 0 } });
    const e = encoders(json);
    for (const t of ['Once upon a time <mask>  there', '  <mask>\n<mask>', 'upon a upon aupon a', ...texts()]) compare(e, t, JSON.stringify(t.slice(0, 30)));
  });
});

describe('tokenizers the fast path does not cover', () => {
  it('encode with the reference library and say why', () => {
    const json = {
      version: '1.0', added_tokens: [], normalizer: null, pre_tokenizer: { type: 'Whitespace' }, post_processor: null, decoder: null,
      model: { type: 'WordPiece', unk_token: '[UNK]', continuing_subword_prefix: '##', max_input_chars_per_word: 100, vocab: { '[UNK]': 0, the: 1, cat: 2, '##s': 3 } },
    };
    const e = encoders(json);
    assert.match(e.fast.kind, /^reference \(a WordPiece model\)$/);
    compare(e, 'the cats the dog', 'wordpiece');
  });
});
