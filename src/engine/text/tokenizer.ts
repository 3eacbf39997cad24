import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import { PruneLensError } from '../errors';

/** The checkpoint's own tokenizer, read from tokenizer.json and tokenizer_config.json. */
export class TextTokenizer {
  private constructor(
    private readonly tokenizer: Tokenizer,
    readonly source: string,
  ) {}

  static async load(dir: string): Promise<TextTokenizer> {
    const file = path.join(dir, 'tokenizer.json');
    const json = await readJsonFile(file, true);
    const config = await readJsonFile(path.join(dir, 'tokenizer_config.json'), false);
    try {
      return new TextTokenizer(new Tokenizer(json, config ?? {}), file);
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
