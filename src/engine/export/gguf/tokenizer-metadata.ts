/**
 * tokenizer.ggml.* metadata that makes llama.cpp split text into the ids PruneLens's tokenizer
 * (Hugging Face tokenizers over tokenizer.json) gives. Two kinds of vocabulary are carried:
 *
 * - SentencePiece-style BPE (`tokenizer.ggml.model = llama`): byte fallback to `<0xNN>` tokens and `▁`
 *   for spaces. llama.cpp merges the adjacent pair whose joined text is the highest-scoring vocabulary
 *   entry, so each token's score is minus the rank of the merge that makes it: the same order
 *   tokenizer.json's merge list gives.
 * - GPT-2-style byte-level BPE (`gpt2`): the byte-level token strings and the merge list as is, plus
 *   `tokenizer.ggml.pre`, the name under which llama.cpp keeps the pre-tokenizer's regular expressions;
 *   PruneLens recognises the pre-tokenizers whose expressions llama.cpp reproduces and refuses others.
 *
 * Anything else (Unigram, WordPiece, unknown pre-tokenizers) is refused: llama.cpp would tokenize
 * differently and every perplexity it reported would be off.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { PruneLensError } from '../../errors';
import type { GgufValue } from './gguf-writer';

/** llama_token_type (llama.cpp's vocabulary attribute ids). */
const TOKEN_TYPE = { normal: 1, unknown: 2, control: 3, userDefined: 4, unused: 5, byte: 6 } as const;

/** Pre-tokenizer expressions llama.cpp implements, by the name convert_hf_to_gguf.py gives them. */
const LLAMA3_REGEX = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const QWEN2_REGEX = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

interface AddedToken {
  id: number;
  content: string;
  special: boolean;
}

type Json = Record<string, unknown>;

export interface TokenizerMetadataOptions {
  /** The checkpoint folder (tokenizer.json, tokenizer_config.json). */
  dir: string;
  /** config.json, for bos/eos ids when tokenizer_config.json does not name them. */
  config: Json;
  /** Rows of the embedding: the vocabulary is padded with unused tokens up to this. */
  vocabSize: number;
}

export async function tokenizerMetadata(options: TokenizerMetadataOptions): Promise<Map<string, GgufValue>> {
  const file = path.join(options.dir, 'tokenizer.json');
  const json = (await readJson(file, true))!;
  const tokenizerConfig = (await readJson(path.join(options.dir, 'tokenizer_config.json'), false)) ?? {};
  const model = asObject(json['model']);
  if (model['type'] !== 'BPE') {
    throw new PruneLensError('architecture', `tokenizer model ${JSON.stringify(model['type'] ?? null)} cannot be written to GGUF; supported: BPE (SentencePiece-style with byte fallback, or GPT-2-style byte-level)`, file);
  }
  const vocab = asObject(model['vocab']);
  const added = (Array.isArray(json['added_tokens']) ? json['added_tokens'] : []).map((t) => {
    const o = asObject(t);
    return { id: Number(o['id']), content: String(o['content']), special: o['special'] === true } satisfies AddedToken;
  });
  let size = options.vocabSize;
  for (const id of [...Object.values(vocab).map(Number), ...added.map((t) => t.id)]) size = Math.max(size, id + 1);
  if (size > options.vocabSize) {
    throw new PruneLensError('config', `the tokenizer has ids up to ${size - 1} but the embedding has only ${options.vocabSize} rows`, file);
  }
  const tokens: string[] = new Array<string>(size);
  for (const [text, id] of Object.entries(vocab)) tokens[Number(id)] = text;
  for (const t of added) tokens[t.id] = t.content;
  const merges = mergeList(model['merges'], file);

  const meta = new Map<string, GgufValue>();
  const style = model['byte_fallback'] === true ? 'llama' : 'gpt2';
  const types = new Int32Array(size);
  for (let id = 0; id < size; id++) {
    if (tokens[id] === undefined) {
      // Rows of the embedding no token names (vocabularies padded to a round size): unreachable by text.
      tokens[id] = `[PAD${id}]`;
      types[id] = TOKEN_TYPE.unused;
    } else if (style === 'llama' && /^<0x[0-9A-F]{2}>$/.test(tokens[id]!)) {
      types[id] = TOKEN_TYPE.byte;
    } else {
      types[id] = TOKEN_TYPE.normal;
    }
  }
  for (const t of added) {
    types[t.id] = t.content === model['unk_token'] ? TOKEN_TYPE.unknown : t.special ? TOKEN_TYPE.control : TOKEN_TYPE.userDefined;
  }

  meta.set('tokenizer.ggml.model', { type: 'string', value: style });
  if (style === 'llama') {
    checkSentencePieceStyle(json, file);
    const scores = new Float32Array(size).fill(-1e9);
    merges.forEach(([a, b], rank) => {
      const id = vocab[a + b];
      if (typeof id === 'number') scores[id] = Math.max(scores[id]!, -rank);
    });
    // Single characters and specials are never the result of a merge; llama.cpp reads their score only for that.
    for (let id = 0; id < size; id++) if (scores[id] === -1e9 && (types[id] !== TOKEN_TYPE.normal || [...tokens[id]!].length === 1)) scores[id] = 0;
    meta.set('tokenizer.ggml.tokens', { type: 'string[]', value: tokens });
    meta.set('tokenizer.ggml.scores', { type: 'f32[]', value: scores });
    meta.set('tokenizer.ggml.token_type', { type: 'i32[]', value: types });
    meta.set('tokenizer.ggml.add_space_prefix', { type: 'bool', value: addsSpacePrefix(json) });
  } else {
    meta.set('tokenizer.ggml.pre', { type: 'string', value: preTokenizerName(json['pre_tokenizer'], file) });
    meta.set('tokenizer.ggml.tokens', { type: 'string[]', value: tokens });
    meta.set('tokenizer.ggml.token_type', { type: 'i32[]', value: types });
    meta.set('tokenizer.ggml.merges', { type: 'string[]', value: merges.map(([a, b]) => `${a} ${b}`) });
  }

  const idOf = (key: string): number | undefined => {
    const raw = tokenizerConfig[key];
    const text = typeof raw === 'string' ? raw : typeof raw === 'object' && raw !== null ? (raw as Json)['content'] : undefined;
    if (typeof text === 'string') {
      const id = added.find((t) => t.content === text)?.id ?? vocab[text];
      if (typeof id === 'number') return id;
    }
    const fromConfig = options.config[`${key}_id`];
    return typeof fromConfig === 'number' ? fromConfig : undefined;
  };
  const special = { bos: idOf('bos_token'), eos: idOf('eos_token'), unk: idOf('unk_token'), padding: idOf('pad_token') };
  for (const [name, id] of Object.entries(special)) {
    if (id !== undefined) meta.set(`tokenizer.ggml.${name === 'unk' ? 'unknown' : name}_token_id`, { type: 'u32', value: id });
  }
  const template = postProcessorTemplate(json['post_processor']);
  meta.set('tokenizer.ggml.add_bos_token', { type: 'bool', value: template.first !== undefined });
  meta.set('tokenizer.ggml.add_eos_token', { type: 'bool', value: template.last !== undefined });
  if (template.first !== undefined) meta.set('tokenizer.ggml.bos_token_id', { type: 'u32', value: template.first });
  return meta;
}

/** The ids the post-processor puts before and after a single sequence (BOS for Llama's TemplateProcessing). */
function postProcessorTemplate(raw: unknown): { first?: number; last?: number } {
  if (typeof raw !== 'object' || raw === null) return {};
  const pp = raw as Json;
  if (pp['type'] === 'Sequence' && Array.isArray(pp['processors'])) {
    return pp['processors'].map(postProcessorTemplate).reduce((a, b) => ({ first: a.first ?? b.first, last: a.last ?? b.last }), {});
  }
  if (pp['type'] !== 'TemplateProcessing' || !Array.isArray(pp['single'])) return {};
  const specials = asObject(pp['special_tokens'] ?? {});
  const idOf = (piece: unknown): number | undefined => {
    const name = (asObject(piece)['SpecialToken'] as Json | undefined)?.['id'];
    if (typeof name !== 'string') return undefined;
    const ids = asObject(specials[name] ?? {})['ids'];
    return Array.isArray(ids) && typeof ids[0] === 'number' ? ids[0] : undefined;
  };
  const single = pp['single'];
  return { first: idOf(single[0]), last: single.length > 1 ? idOf(single[single.length - 1]) : undefined };
}

/** SentencePiece-style: spaces become `▁` (normalizer or Metaspace), no other pre-tokenization. */
function checkSentencePieceStyle(json: Json, file: string): void {
  const pre = json['pre_tokenizer'];
  const metaspace = typeof pre === 'object' && pre !== null && (pre as Json)['type'] === 'Metaspace';
  if (pre !== null && pre !== undefined && !metaspace) {
    throw new PruneLensError('architecture', `a byte-fallback BPE tokenizer with pre_tokenizer ${JSON.stringify((pre as Json)['type'])} has no llama.cpp equivalent; supported: none or Metaspace`, file);
  }
}

function addsSpacePrefix(json: Json): boolean {
  const steps = (n: unknown): Json[] => {
    if (typeof n !== 'object' || n === null) return [];
    const o = n as Json;
    return o['type'] === 'Sequence' && Array.isArray(o['normalizers']) ? o['normalizers'].map(asObject) : [o];
  };
  if (steps(json['normalizer']).some((s) => s['type'] === 'Prepend' && s['prepend'] === '▁')) return true;
  const pre = json['pre_tokenizer'];
  if (typeof pre === 'object' && pre !== null && (pre as Json)['type'] === 'Metaspace') {
    const scheme = (pre as Json)['prepend_scheme'];
    return scheme === undefined ? (pre as Json)['add_prefix_space'] !== false : scheme !== 'never';
  }
  return false;
}

/**
 * llama.cpp's name for a GPT-2-style pre-tokenizer, from its structure and expression: the byte-level
 * split of GPT-2, SmolLM's digits-then-byte-level, and the Llama 3 and Qwen2 expressions.
 */
export function preTokenizerName(raw: unknown, file: string): string {
  const o = typeof raw === 'object' && raw !== null ? (raw as Json) : {};
  const steps = o['type'] === 'Sequence' && Array.isArray(o['pretokenizers']) ? o['pretokenizers'].map(asObject) : [o];
  const signature = steps
    .map((s) => {
      if (s['type'] === 'ByteLevel') return s['use_regex'] === false ? 'bytes' : 'bytes+gpt2';
      if (s['type'] === 'Digits') return s['individual_digits'] === true ? 'digits' : 'digit-runs';
      if (s['type'] === 'Split') {
        const pattern = asObject(s['pattern'] ?? {})['Regex'];
        return pattern === LLAMA3_REGEX ? 'llama3' : pattern === QWEN2_REGEX ? 'qwen2' : 'split?';
      }
      return String(s['type']);
    })
    .join(',');
  const known: Record<string, string> = {
    'bytes+gpt2': 'gpt-2',
    'digits,bytes+gpt2': 'smollm',
    'llama3,bytes': 'llama-bpe',
    'qwen2,bytes': 'qwen2',
  };
  const name = known[signature];
  if (!name) {
    throw new PruneLensError(
      'architecture',
      `the byte-level pre-tokenizer (${signature}) is not one llama.cpp reproduces; supported: GPT-2's ByteLevel, SmolLM's Digits + ByteLevel, the Llama 3 and Qwen2 Split expressions`,
      file,
    );
  }
  return name;
}

function mergeList(raw: unknown, file: string): [string, string][] {
  if (!Array.isArray(raw)) throw new PruneLensError('checkpoint', 'the BPE model has no merges list', file);
  return raw.map((m, i) => {
    if (Array.isArray(m) && m.length === 2) return [String(m[0]), String(m[1])];
    if (typeof m === 'string') {
      const at = m.indexOf(' ', 1);
      if (at > 0) return [m.slice(0, at), m.slice(at + 1)];
    }
    throw new PruneLensError('checkpoint', `merges[${i}] is neither "a b" nor ["a", "b"]`, file);
  });
}

function asObject(v: unknown): Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Json) : {};
}

async function readJson(file: string, required: boolean): Promise<Json | undefined> {
  const text = await fs.readFile(file, 'utf8').catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT' && !required) return undefined;
    throw new PruneLensError('checkpoint', `cannot read: ${err.message}`, file);
  });
  if (text === undefined) return undefined;
  try {
    return asObject(JSON.parse(text));
  } catch (err) {
    throw new PruneLensError('checkpoint', `invalid JSON: ${(err as Error).message}`, file);
  }
}
