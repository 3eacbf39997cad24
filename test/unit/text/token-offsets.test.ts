import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { before, describe, it } from 'node:test';
import { PruneLensError } from '../../../src/engine/errors';
import { tokenOffsets, type TokenSpans } from '../../../src/engine/text/token-offsets';
import { TextTokenizer } from '../../../src/engine/text/tokenizer';
import { EVAL_TEXT, FIXTURE_MODEL, tempDir } from '../../helpers/fixtures';

const MIXED = 'Héllo  wörld!\n\n  🙂 中文, naïve\tcafé — 👩‍👩‍👧 ok   \n\nend  ';

/** Spans in order, never overlapping, tiling the text from 0 to its end. */
function assertTiles(text: string, spans: TokenSpans, from = 0): void {
  let at = 0;
  for (let i = from; i < spans.starts.length; i++) {
    assert.equal(spans.starts[i], at, `token ${i} starts at ${spans.starts[i]}, the previous ended at ${at}`);
    assert.ok(spans.ends[i]! >= spans.starts[i]!, `token ${i} ends before it starts`);
    at = spans.ends[i]!;
  }
  assert.equal(at, text.length);
}

function writeTokenizer(json: object): Promise<TextTokenizer> {
  const dir = tempDir();
  fs.writeFileSync(path.join(dir, 'tokenizer.json'), JSON.stringify(json));
  return TextTokenizer.load(dir);
}

describe('token offsets of a SentencePiece-style tokenizer (the embedded model)', () => {
  let tokenizer: TextTokenizer;
  before(async () => {
    tokenizer = await TextTokenizer.load(FIXTURE_MODEL);
  });

  /** What token i spells, `▁` read as a space and the prefixed `▁` of the first text token dropped. */
  function assertSurfaces(text: string, ids: Int32Array, spans: TokenSpans): void {
    for (let i = 1; i < ids.length; i++) {
      const slice = text.slice(spans.starts[i], spans.ends[i]);
      const token = tokenizer.tokenString(ids[i]!);
      const byte = /^<0x([0-9A-F]{2})>$/.exec(token);
      if (byte) {
        // A byte token spans nothing, or the whole character whose last byte it is.
        if (slice === '') continue;
        assert.equal([...slice].length, 1, `byte token ${i} spans ${JSON.stringify(slice)}`);
        assert.equal(Buffer.from(slice).at(-1), parseInt(byte[1]!, 16), `byte token ${i}`);
        continue;
      }
      const spelled = token.replaceAll('\u2581', ' ');
      assert.equal(slice, i === 1 ? spelled.replace(/^ /, '') : spelled, `token ${i} ${JSON.stringify(token)}`);
    }
  }

  it('tiles the whole evaluation text, each token over the characters it spells (152,506 tokens)', () => {
    const text = fs.readFileSync(EVAL_TEXT, 'utf8');
    const ids = tokenizer.encode(text);
    assert.equal(ids.length, 152506);
    const start = performance.now();
    const spans = tokenOffsets(tokenizer, text, ids);
    const ms = performance.now() - start;
    assert.ok(ms < 5000, `took ${ms.toFixed(0)} ms`);
    assert.equal(tokenizer.tokenString(ids[0]!), '<s>');
    assert.deepEqual([spans.starts[0], spans.ends[0]], [0, 0], 'BOS spans nothing at the start');
    assertTiles(text, spans, 1);
    assertSurfaces(text, ids, spans);
  });

  it('places byte-fallback characters (emoji, CJK, accents) and runs of spaces and newlines', () => {
    const ids = tokenizer.encode(MIXED);
    const spans = tokenOffsets(tokenizer, MIXED, ids);
    assert.ok(ids.some((id) => tokenizer.tokenString(id).startsWith('<0x')), 'the text needs byte fallback');
    assertTiles(MIXED, spans, 1);
    assertSurfaces(MIXED, ids, spans);
    // 🙂 is F0 9F 99 82: four byte tokens, the last holding both UTF-16 units of the character.
    const smile = MIXED.indexOf('🙂');
    const last = spans.starts.findIndex((s, i) => s === smile && spans.ends[i] === smile + 2);
    assert.deepEqual([...ids.subarray(last - 3, last + 1)].map((id) => tokenizer.tokenString(id)), ['<0xF0>', '<0x9F>', '<0x99>', '<0x82>']);
    for (let i = last - 3; i < last; i++) assert.deepEqual([spans.starts[i], spans.ends[i]], [smile, smile]);
  });

  it('tells the prefixed "▁" from spaces the text starts with', () => {
    for (const text of ['a', ' a', '   two  spaces', '\nnewline first', 'x <s> y', 'x<s>  y', '▁literal ▁ marks']) {
      const ids = tokenizer.encode(text);
      const spans = tokenOffsets(tokenizer, text, ids);
      const covered = [...ids.keys()].map((i) => text.slice(spans.starts[i], spans.ends[i])).join('');
      assert.equal(covered, text, JSON.stringify(text));
      assertTiles(text, spans, 1);
    }
    const text = ' a';
    const ids = tokenizer.encode(text);
    const spans = tokenOffsets(tokenizer, text, ids);
    assert.equal(text.slice(spans.starts[1], spans.ends.at(-1)), ' a', 'the space the text has is covered');
  });

  it('gives an added token found in the text its span', () => {
    const text = 'x <s> y';
    const ids = tokenizer.encode(text);
    const spans = tokenOffsets(tokenizer, text, ids);
    const inText = ids.lastIndexOf(1);
    assert.ok(inText > 0);
    assert.equal(text.slice(spans.starts[inText], spans.ends[inText]), '<s>');
  });

  it('refuses ids that are not the encoding of the text', () => {
    const ids = tokenizer.encode('Once upon a time');
    assert.throws(
      () => tokenOffsets(tokenizer, 'Once upon a tide', ids),
      (err: unknown) => err instanceof PruneLensError && err.kind === 'text' && /spells "m" where the text has "d" \(offset 14\)/.test(err.message),
    );
    assert.throws(() => tokenOffsets(tokenizer, 'Once upon a time, again', ids), /spell the first 16 of the text's 23 characters/);
  });

  it('refuses a normalizer that changes the text', async () => {
    const json = JSON.parse(fs.readFileSync(path.join(FIXTURE_MODEL, 'tokenizer.json'), 'utf8')) as { normalizer: { normalizers: object[] } };
    json.normalizer.normalizers.unshift({ type: 'Lowercase' });
    const lower = await writeTokenizer(json);
    const text = 'Once upon a time';
    assert.throws(
      () => tokenOffsets(lower, text, lower.encode(text)),
      (err: unknown) => err instanceof PruneLensError && /where the text has "O" \(offset 0\).*normalizer: Lowercase \+ Prepend \+ Replace/.test(err.message),
    );
  });
});

/** GPT-2's bytes_to_unicode, written out as in the reference Python. */
function bytesToUnicode(): string[] {
  const bs: number[] = [];
  for (const [a, b] of [[0x21, 0x7e], [0xa1, 0xac], [0xae, 0xff]] as const) for (let x = a; x <= b; x++) bs.push(x);
  const cs = [...bs];
  let n = 0;
  for (let b = 0; b < 256; b++) {
    if (!bs.includes(b)) {
      bs.push(b);
      cs.push(256 + n++);
    }
  }
  const map: string[] = [];
  bs.forEach((b, i) => (map[b] = String.fromCharCode(cs[i]!)));
  return map;
}

/** A byte-level BPE with every byte and a few merges, some across character boundaries. */
function byteLevelJson(addPrefixSpace: boolean): object {
  const chars = bytesToUnicode();
  const spell = (s: string | number[]): string => [...(typeof s === 'string' ? Buffer.from(s) : s)].map((b) => chars[b]).join('');
  const vocab: Record<string, number> = {};
  chars.forEach((c) => (vocab[c] = Object.keys(vocab).length));
  const merges: string[] = [];
  const merge = (a: string, b: string): void => {
    merges.push(`${a} ${b}`);
    vocab[a + b] = Object.keys(vocab).length;
  };
  merge(spell(' '), spell('t'));
  merge(spell('h'), spell('e'));
  merge(spell(' t'), spell('he'));
  merge(spell('é')[0]!, spell('é')[1]!);
  // 中文 is E4 B8 AD E6 96 87: this merge joins the end of 中 to the start of 文.
  merge(spell([0xad]), spell([0xe6]));
  merge(spell([0x9f]), spell([0x99]));
  merge(spell(' '), spell(' '));
  const added = { id: Object.keys(vocab).length, content: '<|endoftext|>', single_word: false, lstrip: false, rstrip: false, normalized: false, special: true };
  return {
    version: '1.0',
    added_tokens: [added],
    normalizer: null,
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: addPrefixSpace, trim_offsets: true, use_regex: true },
    post_processor: null,
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: { type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: false, byte_fallback: false, vocab, merges },
  };
}

describe('token offsets of a byte-level BPE tokenizer (hand-written tokenizer.json)', () => {
  it('tiles text with emoji, CJK, accents and whitespace runs, a character to the token that completes it', async () => {
    const tokenizer = await writeTokenizer(byteLevelJson(false));
    const text = `${MIXED} the 中文<|endoftext|>the end`;
    const ids = tokenizer.encode(text);
    assert.equal(tokenizer.decode(ids), text.replace('<|endoftext|>', ''), 'the tokenizer round-trips the text');
    const spans = tokenOffsets(tokenizer, text, ids);
    assertTiles(text, spans);
    const slices = [...ids.keys()].map((i) => text.slice(spans.starts[i], spans.ends[i]));
    const cross = ids.indexOf(tokenizer.tokenId(bytesToUnicode()[0xad]! + bytesToUnicode()[0xe6]!)!);
    assert.deepEqual(slices.slice(cross - 2, cross + 3), ['', '', '中', '', '文']);
    assert.equal(slices[ids.indexOf(tokenizer.tokenId('Ã©')!)], 'é');
    assert.ok(slices.includes(' the'));
    assert.equal(slices[ids.indexOf(tokenizer.tokenId('<|endoftext|>')!)], '<|endoftext|>');
  });

  it('maps an add_prefix_space space to nothing', async () => {
    const tokenizer = await writeTokenizer(byteLevelJson(true));
    for (const text of ['the end', ' the end', '  the']) {
      const ids = tokenizer.encode(text);
      const spans = tokenOffsets(tokenizer, text, ids);
      assertTiles(text, spans);
      if (text === 'the end') assert.equal(text.slice(spans.starts[0], spans.ends[0]), 'the');
    }
  });
});

describe('token offsets of other tokenizers', () => {
  it('refuses a WordPiece tokenizer, naming its type', async () => {
    const tokenizer = await writeTokenizer({
      version: '1.0',
      added_tokens: [],
      normalizer: { type: 'Lowercase' },
      pre_tokenizer: { type: 'Whitespace' },
      post_processor: null,
      decoder: { type: 'WordPiece', prefix: '##', cleanup: true },
      model: { type: 'WordPiece', unk_token: '[UNK]', continuing_subword_prefix: '##', max_input_chars_per_word: 100, vocab: { '[UNK]': 0, hello: 1, '##s': 2 } },
    });
    assert.throws(
      () => tokenOffsets(tokenizer, 'hellos', tokenizer.encode('hellos')),
      (err: unknown) => err instanceof PruneLensError && err.kind === 'text' && /not for this WordPiece tokenizer \(normalizer: Lowercase, pre-tokenizer: Whitespace, decoder: WordPiece\)/.test(err.message),
    );
  });
});
