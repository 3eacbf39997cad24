import { createHash, randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

/**
 * Tokenized texts on disk, keyed by what decides the ids (the tokenizer files, the encoder's version
 * and the texts), so a second run or a second plan reads ids instead of tokenizing again.
 *
 * One file per entry: magic, document count, each document's length, the ids (int32 little-endian),
 * then the SHA-256 of everything before it. Written under a temporary name and renamed into place, so
 * a reader never sees half a file; an entry that is short, long or fails its checksum is treated as
 * missing and written again. There is no eviction: entries are about 4 bytes per token.
 */
const MAGIC = Buffer.from('PLTOKEN1', 'ascii');
const CHECKSUM = 32;

/**
 * Where entries go: `explicit` (the extension passes its global storage), else $PRUNELENS_CACHE,
 * else $XDG_CACHE_HOME/prunelens, else ~/.cache/prunelens; entries live in its `tokens/` folder.
 */
export function tokenCacheDir(explicit?: string): string {
  const env = process.env;
  const root = explicit || env['PRUNELENS_CACHE'] || path.join(env['XDG_CACHE_HOME'] || path.join(os.homedir(), '.cache'), 'prunelens');
  return path.join(path.resolve(root), 'tokens');
}

/** The entry name for texts tokenized by a tokenizer whose fingerprint is given. */
export function tokenCacheKey(tokenizerFingerprint: string, texts: readonly string[]): string {
  const hash = createHash('sha256').update(tokenizerFingerprint).update(`\0${texts.length}\0`);
  for (const text of texts) hash.update(`${text.length}\0`).update(text, 'utf8');
  return hash.digest('hex');
}

export class TokenCache {
  constructor(readonly dir: string) {}

  private file(key: string): string {
    return path.join(this.dir, `${key}.ids`);
  }

  /** The documents' ids, or undefined when there is no valid entry (a damaged one is removed). */
  async get(key: string): Promise<Int32Array[] | undefined> {
    if (os.endianness() !== 'LE') return undefined;
    let bytes: Buffer;
    try {
      bytes = await fs.readFile(this.file(key));
    } catch {
      return undefined;
    }
    const docs = decode(bytes);
    if (!docs) await fs.rm(this.file(key), { force: true }).catch(() => undefined);
    return docs;
  }

  /** Stores an entry; a cache that cannot be written costs only speed, so failures are returned, not thrown. */
  async put(key: string, docs: readonly Int32Array[]): Promise<Error | undefined> {
    if (os.endianness() !== 'LE') return undefined;
    const target = this.file(key);
    const temporary = `${target}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
    try {
      await fs.mkdir(this.dir, { recursive: true });
      await fs.writeFile(temporary, encode(docs));
      await fs.rename(temporary, target);
      return undefined;
    } catch (err) {
      await fs.rm(temporary, { force: true }).catch(() => undefined);
      return err as Error;
    }
  }
}

function encode(docs: readonly Int32Array[]): Buffer {
  const total = docs.reduce((n, d) => n + d.length, 0);
  const header = MAGIC.length + 4 + 4 * docs.length;
  const bytes = Buffer.alloc(header + 4 * total + CHECKSUM);
  MAGIC.copy(bytes, 0);
  bytes.writeUInt32LE(docs.length, MAGIC.length);
  let at = header;
  docs.forEach((d, i) => {
    bytes.writeUInt32LE(d.length, MAGIC.length + 4 + 4 * i);
    Buffer.from(d.buffer, d.byteOffset, d.byteLength).copy(bytes, at);
    at += d.byteLength;
  });
  createHash('sha256').update(bytes.subarray(0, at)).digest().copy(bytes, at);
  return bytes;
}

function decode(bytes: Buffer): Int32Array[] | undefined {
  if (bytes.length < MAGIC.length + 4 + CHECKSUM || !bytes.subarray(0, MAGIC.length).equals(MAGIC)) return undefined;
  const count = bytes.readUInt32LE(MAGIC.length);
  const header = MAGIC.length + 4 + 4 * count;
  if (header + CHECKSUM > bytes.length) return undefined;
  let total = 0;
  for (let i = 0; i < count; i++) total += bytes.readUInt32LE(MAGIC.length + 4 + 4 * i);
  const end = header + 4 * total;
  if (end + CHECKSUM !== bytes.length) return undefined;
  if (!createHash('sha256').update(bytes.subarray(0, end)).digest().equals(bytes.subarray(end))) return undefined;
  const docs: Int32Array[] = [];
  let at = header;
  for (let i = 0; i < count; i++) {
    const n = bytes.readUInt32LE(MAGIC.length + 4 + 4 * i);
    // Copied out: the file buffer's offset need not be a multiple of 4.
    const ids = new Int32Array(n);
    Buffer.from(ids.buffer).set(bytes.subarray(at, at + 4 * n));
    docs.push(ids);
    at += 4 * n;
  }
  return docs;
}
