import { promises as fs } from 'node:fs';
import { PruneLensError } from '../engine/errors';

/** A JSON file's content, or undefined when the file is not there; unreadable or invalid JSON is an error naming the file. */
export async function readOptionalJson(file: string): Promise<unknown> {
  const text = await fs.readFile(file, 'utf8').catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT' || err.code === 'ENOTDIR') return undefined;
    throw new PruneLensError('output', `cannot read: ${err.message}`, file);
  });
  if (text === undefined) return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw new PruneLensError('output', `invalid JSON: ${(err as Error).message}`, file);
  }
}
