import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import { PruneLensError } from '../errors';

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

/** The checkpoint's own tokenizer, read from tokenizer.json and tokenizer_config.json. */
export class TextTokenizer {
  private readonly added: ReadonlyMap<number, AddedTokenInfo>;

  private constructor(
    private readonly tokenizer: Tokenizer,
    readonly source: string,
    readonly pipeline: TokenizerPipeline,
  ) {
    this.added = new Map([...tokenizer.get_added_tokens_decoder()].map(([id, t]) => [id, { content: t.content, special: t.special, lstrip: t.lstrip, rstrip: t.rstrip }]));
  }

  static async load(dir: string): Promise<TextTokenizer> {
    const file = path.join(dir, 'tokenizer.json');
    const json = await readJsonFile(file, true);
    const config = await readJsonFile(path.join(dir, 'tokenizer_config.json'), false);
    try {
      return new TextTokenizer(new Tokenizer(json, config ?? {}), file, pipelineOf(json));
    } catch (err) {
      throw new PruneLensError('checkpoint', `cannot build the tokenizer: ${(err as Error).message}`, file);
    }
  }

  /** Token ids of a whole text, with the special tokens the tokenizer's post-processor adds (BOS for Llama). */
  encode(text: string): Int32Array {
    return Int32Array.from(this.tokenizer.encode(text).ids);
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

async function readJsonFile(file: string, required: true): Promise<object>;
async function readJsonFile(file: string, required: false): Promise<object | undefined>;
async function readJsonFile(file: string, required: boolean): Promise<object | undefined> {
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT' && !required) return undefined;
    throw new PruneLensError('checkpoint', `cannot read the tokenizer: ${(err as Error).message}`, file);
  }
  try {
    return JSON.parse(text) as object;
  } catch (err) {
    throw new PruneLensError('checkpoint', `invalid JSON: ${(err as Error).message}`, file);
  }
}
