import { promises as fs } from 'node:fs';
import { PruneLensError } from '../errors';

/** Reads a UTF-8 text file, refusing a missing, empty or non-text one with a message naming it. */
export async function readTextFile(file: string): Promise<string> {
  let bytes: Buffer;
  try {
    bytes = await fs.readFile(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new PruneLensError('text', code === 'ENOENT' ? 'file not found' : `cannot read: ${(err as Error).message}`, file);
  }
  return decodeText(bytes, file);
}

/** The same rule for every text PruneLens reads: UTF-8 (a bad byte is an error, not a U+FFFD), and not blank. */
export function decodeText(bytes: Uint8Array, file: string): string {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw new PruneLensError('text', 'not UTF-8 text', file);
  }
  if (text.trim().length === 0) throw new PruneLensError('text', 'the file is empty', file);
  return text;
}
