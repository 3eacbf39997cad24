import { PruneLensError } from '../errors';
import type { TextTokenizer } from './tokenizer';

export interface TokenSpans {
  /** [starts[i], ends[i]) is token i's span in the text, in UTF-16 code units. */
  starts: Int32Array;
  ends: Int32Array;
}

/**
 * The character span of every token of `ids = tokenizer.encode(text)`. The tokenizer library gives no
 * offsets, so each token's vocabulary string is turned back into the bytes it stands for and walked
 * along the text with one cursor (O(text length)); every character a token spells must equal the text
 * at the cursor, or this throws rather than guess.
 *
 * - SentencePiece style (`▁` for a space; Llama, Mistral): `▁` is a space, `<0xNN>` tokens are raw
 *   bytes (with byte fallback). The `▁` that the normalizer or Metaspace puts before a section that
 *   does not start with one stands for nothing.
 * - Byte-level BPE (GPT-2, Llama 3, Qwen2): characters of the GPT-2 bytes-to-unicode map stand for
 *   bytes; an `add_prefix_space` space stands for nothing.
 *
 * A character whose UTF-8 bytes are split over several tokens belongs wholly to the token that
 * completes it: the tokens before get an empty span where it starts. A UTF-16 offset cannot point
 * inside a character, and the completing token is the one whose prediction settles which character
 * it is. Added tokens found in the text (`<|endoftext|>`) span their text; those the post-processor
 * inserts (BOS) get an empty span at the cursor. Whitespace that an added token's lstrip/rstrip
 * removed belongs to no token, so spans are in order and never overlap but may leave gaps.
 *
 * Limits: a normalizer that changes characters (NFKC, lowercase, NFC on decomposed text) or an
 * unknown token makes this throw; other tokenizer families (WordPiece, Unigram without `▁`) throw too.
 */
export function tokenOffsets(tokenizer: TextTokenizer, text: string, ids: Int32Array): TokenSpans {
  const spelling = spellingOf(tokenizer);
  const unkId = tokenizer.pipeline.unkToken === undefined ? undefined : tokenizer.tokenId(tokenizer.pipeline.unkToken);
  const starts = new Int32Array(ids.length);
  const ends = new Int32Array(ids.length);
  let cursor = 0;
  let sectionStart = true;
  let phantomSpace = false;
  // The UTF-8 decoder's state: the code point so far and how many continuation bytes it still needs.
  let code = 0;
  let need = 0;

  const fail = (i: number, message: string): never => {
    throw new PruneLensError('text', `token ${i} (id ${ids[i]}, ${JSON.stringify(tokenizer.tokenString(ids[i]!))}) ${message}`, tokenizer.source);
  };
  const place = (i: number, cp: number): void => {
    if (phantomSpace) {
      phantomSpace = false;
      return;
    }
    const found = text.codePointAt(cursor);
    if (found === cp || (cp === 0x20 && found === spelling.space)) {
      cursor += cp > 0xffff ? 2 : 1;
      return;
    }
    const where = found === undefined ? 'past the end of the text' : `where the text has ${JSON.stringify(String.fromCodePoint(found))}`;
    fail(
      i,
      `spells ${JSON.stringify(String.fromCodePoint(cp))} ${where} (offset ${cursor}): the ids are not this text's encoding, ` +
        `or the tokenizer changes such text before splitting it (normalizer: ${typeNames(tokenizer.pipeline.normalizer, 'normalizers')})`,
    );
  };

  for (let i = 0; i < ids.length; i++) {
    const id = ids[i]!;
    const added = tokenizer.addedToken(id);
    if (added || id === unkId) {
      if (need > 0) fail(i, `interrupts a character whose UTF-8 bytes the previous tokens began (offset ${cursor})`);
      const at = added ? findAdded(text, cursor, added.content, added.lstrip) : -1;
      if (at < 0) {
        if (id === unkId) fail(i, `is the unknown token: the tokenizer could not spell the text at offset ${cursor}, so its span is unknown`);
        starts[i] = ends[i] = cursor;
        continue;
      }
      starts[i] = at;
      ends[i] = cursor = at + added!.content.length;
      if (added!.rstrip) cursor = skipWhitespace(text, cursor);
      sectionStart = true;
      continue;
    }
    if (sectionStart) {
      sectionStart = false;
      phantomSpace = spelling.prefixSpace && hasPhantomSpace(text, cursor, ids, i, tokenizer, spelling);
    }
    starts[i] = cursor;
    for (const b of spelling.bytes(id)) {
      if (need === 0) {
        if (b < 0x80) {
          place(i, b);
          continue;
        }
        need = (b & 0xe0) === 0xc0 ? 1 : (b & 0xf0) === 0xe0 ? 2 : (b & 0xf8) === 0xf0 ? 3 : 0;
        if (need === 0) fail(i, `holds byte 0x${b.toString(16)}, which cannot start a UTF-8 character (offset ${cursor})`);
        code = b & (0x3f >> need);
      } else {
        if ((b & 0xc0) !== 0x80) fail(i, `breaks off a UTF-8 character with byte 0x${b.toString(16)} (offset ${cursor})`);
        code = (code << 6) | (b & 0x3f);
        if (--need === 0) place(i, code);
      }
    }
    ends[i] = cursor;
  }
  if (need > 0) throw new PruneLensError('text', 'the tokens end inside a UTF-8 character', tokenizer.source);
  if (cursor !== text.length) {
    throw new PruneLensError('text', `the tokens spell the first ${cursor} of the text's ${text.length} characters; the ids are not this text's encoding`, tokenizer.source);
  }
  return { starts, ends };
}

interface Spelling {
  /** The bytes a (non-added) token stands for, a space as 0x20. */
  bytes(id: number): Uint8Array;
  /** A text character, besides ' ', that a spelled space may stand for (a literal `▁`); -1 if none. */
  space: number;
  /** The tokenizer may put a space before a section that the text does not have. */
  prefixSpace: boolean;
}

type Node = Record<string, unknown>;

function spellingOf(tokenizer: TextTokenizer): Spelling {
  const { pipeline } = tokenizer;
  const normalizers = flatten(pipeline.normalizer, 'normalizers');
  const preTokenizers = flatten(pipeline.preTokenizer, 'pretokenizers');
  const decoders = flatten(pipeline.decoder, 'decoders');
  const cache = new Map<number, Uint8Array>();
  const cached = (convert: (token: string) => Uint8Array) => (id: number): Uint8Array => {
    let bytes = cache.get(id);
    if (!bytes) cache.set(id, (bytes = convert(tokenizer.tokenString(id))));
    return bytes;
  };

  const byteLevel = preTokenizers.find((n) => n['type'] === 'ByteLevel') ?? decoders.find((n) => n['type'] === 'ByteLevel');
  if (byteLevel) {
    const toByte = unicodeToBytes();
    return {
      bytes: cached((token) => {
        const bytes = new Uint8Array(token.length);
        for (let k = 0; k < token.length; k++) {
          const b = toByte[token.charCodeAt(k)];
          if (b === undefined || b < 0) {
            throw new PruneLensError('text', `token ${JSON.stringify(token)} is not spelled in the byte-level alphabet`, tokenizer.source);
          }
          bytes[k] = b;
        }
        return bytes;
      }),
      space: -1,
      prefixSpace: preTokenizers.some((n) => n['type'] === 'ByteLevel' && n['add_prefix_space'] === true),
    };
  }

  const replace = normalizers.find((n) => n['type'] === 'Replace' && (n['pattern'] as Node | undefined)?.['String'] === ' ' && typeof n['content'] === 'string');
  const metaspace = preTokenizers.find((n) => n['type'] === 'Metaspace');
  const metaspaceDecoder = decoders.find((n) => n['type'] === 'Metaspace');
  if (replace || metaspace || metaspaceDecoder) {
    const replacement = String(replace?.['content'] ?? metaspace?.['replacement'] ?? metaspaceDecoder?.['replacement'] ?? '\u2581');
    const encoder = new TextEncoder();
    return {
      bytes: cached((token) => {
        const byte = pipeline.byteFallback ? /^<0x([0-9A-Fa-f]{2})>$/.exec(token) : null;
        return byte ? Uint8Array.of(parseInt(byte[1]!, 16)) : encoder.encode(token.replaceAll(replacement, ' '));
      }),
      space: replacement.codePointAt(0)!,
      prefixSpace:
        normalizers.some((n) => n['type'] === 'Prepend' && n['prepend'] === replacement) ||
        (metaspace !== undefined && metaspace['prepend_scheme'] !== 'never'),
    };
  }

  throw new PruneLensError(
    'text',
    `token offsets are known for SentencePiece-style ("▁" for a space) and byte-level BPE tokenizers, not for this ${pipeline.model} tokenizer ` +
      `(normalizer: ${typeNames(pipeline.normalizer, 'normalizers')}, pre-tokenizer: ${typeNames(pipeline.preTokenizer, 'pretokenizers')}, ` +
      `decoder: ${typeNames(pipeline.decoder, 'decoders')})`,
    tokenizer.source,
  );
}

/**
 * Whether the spaces the tokens spell from token i on are one more than the text has at the cursor:
 * then the first is the prefix the tokenizer added. Counting the whole run (not just the first
 * character) matters when the text itself starts with spaces: `"  a"` may become `▁▁▁a`.
 */
function hasPhantomSpace(text: string, cursor: number, ids: Int32Array, i: number, tokenizer: TextTokenizer, spelling: Spelling): boolean {
  let inText = 0;
  for (let c = cursor; c < text.length; c++, inText++) {
    const ch = text.charCodeAt(c);
    if (ch !== 0x20 && ch !== spelling.space) break;
  }
  let spelled = 0;
  for (let j = i; j < ids.length && spelled <= inText + 1; j++) {
    if (tokenizer.addedToken(ids[j]!)) break;
    const bytes = spelling.bytes(ids[j]!);
    let k = 0;
    while (k < bytes.length && bytes[k] === 0x20) k++;
    spelled += k;
    if (k < bytes.length) break;
  }
  return spelled === inText + 1;
}

/** Where an added token's content lies at the cursor, after the whitespace its lstrip removed; -1 if not there. */
function findAdded(text: string, cursor: number, content: string, lstrip: boolean): number {
  if (text.startsWith(content, cursor)) return cursor;
  if (!lstrip) return -1;
  const at = skipWhitespace(text, cursor);
  return text.startsWith(content, at) ? at : -1;
}

function skipWhitespace(text: string, cursor: number): number {
  while (cursor < text.length && /\s/.test(text[cursor]!)) cursor++;
  return cursor;
}

/** GPT-2's bytes_to_unicode, inverted: char code -> byte, -1 for characters outside the alphabet. */
function unicodeToBytes(): Int16Array {
  const table = new Int16Array(512).fill(-1);
  let extra = 0;
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
    table[printable ? b : 256 + extra++] = b;
  }
  return table;
}

/** A Sequence's members, depth first; `key` is the Sequence's list ("normalizers", "pretokenizers", "decoders"). */
function flatten(node: unknown, key: string): Node[] {
  if (typeof node !== 'object' || node === null || Array.isArray(node)) return [];
  const n = node as Node;
  return n['type'] === 'Sequence' && Array.isArray(n[key]) ? (n[key] as unknown[]).flatMap((m) => flatten(m, key)) : [n];
}

function typeNames(node: unknown, key: string): string {
  const names = flatten(node, key).map((n) => String(n['type']));
  return names.length > 0 ? names.join(' + ') : 'none';
}
