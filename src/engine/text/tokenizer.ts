import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import { PruneLensError } from '../errors';
import { FastEncoder, type EncodeHooks } from './fast-encoder';

/** Part of every token cache key: raise it whenever a change could alter the ids a tokenizer gives. */
const ENCODER_VERSION = 'prunelens-encoder-1 @huggingface/tokenizers-0.2.0';

/**
 * The parts of tokenizer.json that decide how token strings spell the text, kept as written (the
 * library does not expose them): token-offsets.ts reads them to map tokens back to character spans.
 */
export interface TokenizerPipeline {
  /** The `model` entry's type (BPE, Unigram, WordPiece), without its vocabulary. */
  model: string;
  /** Unknown characters become `<0xNN>` byte tokens (SentencePiece BPE). */
  byteFallback: boolean;
  /** What the model emits for text it cannot spell; such a token's span cannot be known. */
  unkToken?: string;
  normalizer: unknown;
  preTokenizer: unknown;
  decoder: unknown;
}

/** A token of `added_tokens`: matched in the raw text before normalization, or inserted (BOS). */
export interface AddedTokenInfo {
  content: string;
  special: boolean;
  lstrip: boolean;
  rstrip: boolean;
}

/** The tokenizer files as read: what a worker needs to build the same tokenizer, and what the token cache keys on. */
export interface TokenizerFiles {
  /** tokenizer.json's path, for messages. */
  source: string;
  json: string;
  /** tokenizer_config.json, when the checkpoint has one. */
  config?: string;
}

/** TextEncoding.kind of the fast encoder. */
export const FAST_BPE = 'fast BPE';

/** Encodes whole texts: the fast encoder where it covers the tokenizer, the reference library otherwise. */
export interface TextEncoding {
  encode(text: string, hooks?: EncodeHooks): Int32Array;
  /** What encodes, for messages and the benchmark: "fast BPE" or "reference (a Unigram model)". */
  readonly kind: string;
}

/** Builds the encoder for tokenizer files; throws a located error when the library cannot build the tokenizer. */
export function buildEncoding(files: TokenizerFiles): { reference: Tokenizer; encoding: TextEncoding; json: object } {
  const json = parseJson(files.json, files.source);
  const config = files.config === undefined ? {} : parseJson(files.config, path.join(path.dirname(files.source), 'tokenizer_config.json'));
  let reference: Tokenizer;
  try {
    reference = new Tokenizer(json, config);
  } catch (err) {
    throw new PruneLensError('checkpoint', `cannot build the tokenizer: ${(err as Error).message}`, files.source);
  }
  const fast = FastEncoder.create(reference, json as Record<string, unknown>, config as Record<string, unknown>);
  const encoding: TextEncoding =
    typeof fast === 'string'
      ? { kind: `reference (${fast})`, encode: (text) => Int32Array.from(reference.encode(text).ids) }
      : { kind: FAST_BPE, encode: (text, hooks) => fast.encode(text, hooks) };
  return { reference, encoding, json };
}

/** The checkpoint's own tokenizer, read from tokenizer.json and tokenizer_config.json. */
export class TextTokenizer {
  private readonly added: ReadonlyMap<number, AddedTokenInfo>;
  /** SHA-256 over the tokenizer files and the encoder's version: equal fingerprints give equal ids. */
  readonly fingerprint: string;

  private constructor(
    private readonly tokenizer: Tokenizer,
    private readonly encoding: TextEncoding,
    readonly files: TokenizerFiles,
    readonly pipeline: TokenizerPipeline,
  ) {
    this.added = new Map([...tokenizer.get_added_tokens_decoder()].map(([id, t]) => [id, { content: t.content, special: t.special, lstrip: t.lstrip, rstrip: t.rstrip }]));
    this.fingerprint = createHash('sha256')
      .update(`${ENCODER_VERSION}\0${files.json.length}\0`)
      .update(files.json)
      .update(`\0${files.config ?? ''}`)
      .digest('hex');
  }

  static async load(dir: string): Promise<TextTokenizer> {
    const source = path.join(dir, 'tokenizer.json');
    const json = await readTextIfAny(source, true);
    const config = await readTextIfAny(path.join(dir, 'tokenizer_config.json'), false);
    const files: TokenizerFiles = { source, json, ...(config === undefined ? {} : { config }) };
    const { reference, encoding, json: parsed } = buildEncoding(files);
    return new TextTokenizer(reference, encoding, files, pipelineOf(parsed));
  }

  /** tokenizer.json's path. */
  get source(): string {
    return this.files.source;
  }

  /**
   * Encoding takes time linear in the text, whatever the text: the fast encoder, with no pattern of
   * tokenizer.json's own in the normalizer or pre-tokenizer (the patterns it runs otherwise are
   * literals, the GPT-2 split and the library's fixed ones, none of which can backtrack).
   */
  get linear(): boolean {
    return this.encoding.kind === FAST_BPE && !hasRegex(this.pipeline.normalizer) && !hasRegex(this.pipeline.preTokenizer);
  }

  /** What encodes this tokenizer's texts ("fast BPE", or the reference library and why). */
  get encoderKind(): string {
    return this.encoding.kind;
  }

  /**
   * Token ids of a whole text, with the special tokens the tokenizer's post-processor adds (BOS for
   * Llama), on this thread: for short texts (prompts). Files go through encodeText (encode-text.ts):
   * in a worker, with progress, a time budget and the token cache.
   */
  encode(text: string): Int32Array {
    return this.encoding.encode(text);
  }

  decode(ids: ArrayLike<number>): string {
    return this.tokenizer.decode(Array.from(ids), { skip_special_tokens: true });
  }

  /** The vocabulary's spelling of an id (`▁the`, `<0x0A>`, `Ġthe`, `<s>`). */
  tokenString(id: number): string {
    const token = this.tokenizer.id_to_token(id);
    if (token === undefined) throw new PruneLensError('text', `token id ${id} is not in the vocabulary`, this.source);
    return token;
  }

  /** The id of a token string, undefined when the vocabulary lacks it. */
  tokenId(token: string): number | undefined {
    return this.tokenizer.token_to_id(token);
  }

  addedToken(id: number): AddedTokenInfo | undefined {
    return this.added.get(id);
  }
}

/** A `{"Regex": ...}` pattern anywhere in a normalizer's or pre-tokenizer's JSON. */
function hasRegex(value: unknown): boolean {
  if (typeof value !== 'object' || value === null) return false;
  if (Array.isArray(value)) return value.some(hasRegex);
  return Object.entries(value).some(([key, v]) => key === 'Regex' || hasRegex(v));
}

function pipelineOf(json: object): TokenizerPipeline {
  const j = json as Record<string, unknown>;
  const model = typeof j['model'] === 'object' && j['model'] !== null ? (j['model'] as Record<string, unknown>) : {};
  return {
    model: typeof model['type'] === 'string' ? model['type'] : 'unknown',
    byteFallback: model['byte_fallback'] === true,
    unkToken: typeof model['unk_token'] === 'string' ? model['unk_token'] : undefined,
    normalizer: j['normalizer'] ?? null,
    preTokenizer: j['pre_tokenizer'] ?? null,
    decoder: j['decoder'] ?? null,
  };
}

async function readTextIfAny(file: string, required: true): Promise<string>;
async function readTextIfAny(file: string, required: false): Promise<string | undefined>;
async function readTextIfAny(file: string, required: boolean): Promise<string | undefined> {
  try {
    return await fs.readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT' && !required) return undefined;
    throw new PruneLensError('checkpoint', `cannot read the tokenizer: ${(err as Error).message}`, file);
  }
}

function parseJson(text: string, file: string): object {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new PruneLensError('checkpoint', `invalid JSON: ${(err as Error).message}`, file);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new PruneLensError('checkpoint', 'not a JSON object', file);
  return value;
}
