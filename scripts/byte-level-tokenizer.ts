/**
 * GPT-2-style byte-level BPE tokenizer.json files for the tests and the benchmark, with merges learned here by the plain
 * BPE training loop (count adjacent pairs over the words of a text, merge the most frequent, repeat):
 * no model file has to be downloaded, and the vocabulary is real enough that words merge deeply.
 * Three pipelines around the same vocabulary, as the families use them: GPT-2 (ByteLevel with its
 * regex), Llama 3 (a Split regex, then ByteLevel without one, ignore_merges, BOS by template) and
 * Qwen2 (NFC, a Split regex, ByteLevel).
 */
import { BYTE_CHARS, byteLevelSpelling } from '../src/engine/text/fast-encoder';

const GPT2_WORDS = /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu;
const LLAMA3_SPLIT = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const QWEN2_SPLIT = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

/** Learns `count` merges from `text`; returns the vocabulary (256 byte characters, then merge results) and the merges. */
export function trainByteLevelBpe(text: string, count: number): { vocab: Record<string, number>; merges: [string, string][] } {
  const frequency = new Map<string, number>();
  for (const m of text.matchAll(GPT2_WORDS)) {
    const spelled = byteLevelSpelling(m[0]);
    frequency.set(spelled, (frequency.get(spelled) ?? 0) + 1);
  }
  const words = [...frequency].map(([w, n]) => ({ symbols: [...w], n }));
  const vocab: Record<string, number> = {};
  BYTE_CHARS.forEach((c, i) => (vocab[c] = i));
  const merges: [string, string][] = [];
  while (merges.length < count) {
    const pairs = new Map<string, number>();
    for (const { symbols, n } of words) {
      for (let i = 0; i + 1 < symbols.length; i++) {
        const key = `${symbols[i]}\u0000${symbols[i + 1]}`;
        pairs.set(key, (pairs.get(key) ?? 0) + n);
      }
    }
    let best: string | undefined;
    let bestCount = 1;
    for (const [key, n] of pairs) if (n > bestCount) [best, bestCount] = [key, n];
    if (best === undefined) break;
    const [a, b] = best.split('\u0000') as [string, string];
    merges.push([a, b]);
    if (!(a + b in vocab)) vocab[a + b] = Object.keys(vocab).length;
    for (const word of words) {
      const s = word.symbols;
      for (let i = 0; i + 1 < s.length; i++) if (s[i] === a && s[i + 1] === b) s.splice(i, 2, a + b);
    }
  }
  return { vocab, merges };
}

export type ByteLevelFamily = 'gpt2' | 'llama3' | 'qwen2';

/** A tokenizer.json of `family`'s layout over the learned vocabulary; merges in the "a b" form for GPT-2, as pairs for the others. */
export function byteLevelTokenizerJson(family: ByteLevelFamily, learned: { vocab: Record<string, number>; merges: [string, string][] }): object {
  const size = Object.keys(learned.vocab).length;
  const byteLevel = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: family === 'gpt2' };
  const split = (regex: string) => ({ type: 'Split', pattern: { Regex: regex }, behavior: 'Isolated', invert: false });
  const special = (id: number, content: string) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });
  const model = {
    type: 'BPE',
    dropout: null,
    unk_token: null,
    continuing_subword_prefix: family === 'gpt2' ? '' : null,
    end_of_word_suffix: family === 'gpt2' ? '' : null,
    fuse_unk: false,
    byte_fallback: false,
    ignore_merges: family === 'llama3',
    vocab: learned.vocab,
    merges: family === 'gpt2' ? learned.merges.map(([a, b]) => `${a} ${b}`) : learned.merges,
  };
  switch (family) {
    case 'gpt2':
      return {
        version: '1.0', truncation: null, padding: null,
        added_tokens: [special(size, '<|endoftext|>')],
        normalizer: null,
        pre_tokenizer: byteLevel,
        post_processor: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: false, use_regex: true },
        decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
        model,
      };
    case 'llama3':
      return {
        version: '1.0', truncation: null, padding: null,
        added_tokens: [special(size, '<|begin_of_text|>'), special(size + 1, '<|end_of_text|>')],
        normalizer: null,
        pre_tokenizer: { type: 'Sequence', pretokenizers: [split(LLAMA3_SPLIT), byteLevel] },
        post_processor: {
          type: 'Sequence',
          processors: [
            { type: 'ByteLevel', add_prefix_space: true, trim_offsets: false, use_regex: true },
            {
              type: 'TemplateProcessing',
              single: [{ SpecialToken: { id: '<|begin_of_text|>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
              pair: [{ SpecialToken: { id: '<|begin_of_text|>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: { id: '<|begin_of_text|>', type_id: 1 } }, { Sequence: { id: 'B', type_id: 1 } }],
              special_tokens: { '<|begin_of_text|>': { id: '<|begin_of_text|>', ids: [size], tokens: ['<|begin_of_text|>'] } },
            },
          ],
        },
        decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
        model,
      };
    case 'qwen2':
      return {
        version: '1.0', truncation: null, padding: null,
        added_tokens: [special(size, '<|endoftext|>'), special(size + 1, '<|im_start|>')],
        normalizer: { type: 'NFC' },
        pre_tokenizer: { type: 'Sequence', pretokenizers: [split(QWEN2_SPLIT), byteLevel] },
        post_processor: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: false },
        decoder: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: false },
        model,
      };
  }
}
