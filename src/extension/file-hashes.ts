import { createHash } from 'node:crypto';
import { createReadStream, promises as fs } from 'node:fs';
import * as path from 'node:path';

/**
 * sha256 of files' contents, remembered per path, size and modification time (in memory and in a small
 * index in the extension's storage), so a multi-gigabyte checkpoint is read once, not on every lookup.
 * What keys the extension's caches of a checkpoint: never anything written into the checkpoint.
 */
export class FileHashes {
  private readonly memo = new Map<string, Promise<string>>();
  private index?: Promise<Record<string, string>>;
  /** Index writes in turn: files hashed together finish together, and each write replaces the last. */
  private writing: Promise<void> = Promise.resolve();

  constructor(private readonly dir: string) {}

  /** One hash over the contents of all `files`, in order. */
  async of(files: readonly string[]): Promise<string> {
    const hashes = await Promise.all(files.map((f) => this.file(f)));
    return createHash('sha256').update(hashes.join('\n')).digest('hex');
  }

  private async file(file: string): Promise<string> {
    const s = await fs.stat(file);
    const stamp = `${path.resolve(file)}\0${s.size}\0${s.mtimeMs}`;
    let known = this.memo.get(stamp);
    if (!known) {
      known = this.lookup(stamp, file);
      this.memo.set(stamp, known);
      known.catch(() => this.memo.delete(stamp));
    }
    return known;
  }

  private async lookup(stamp: string, file: string): Promise<string> {
    const index = await this.readIndex();
    if (index[stamp]) return index[stamp];
    const hash = await new Promise<string>((resolve, reject) => {
      const h = createHash('sha256');
      createReadStream(file)
        .on('data', (chunk) => h.update(chunk))
        .on('error', reject)
        .on('end', () => resolve(h.digest('hex')));
    });
    index[stamp] = hash;
    this.writing = this.writing.then(() => this.writeIndex(index)).catch(() => {
      // The index only saves hashing again; a failed write costs that, nothing else.
    });
    await this.writing;
    return hash;
  }

  private async writeIndex(index: Record<string, string>): Promise<void> {
    await fs.mkdir(this.dir, { recursive: true });
    const target = path.join(this.dir, 'hashes.json');
    const partial = `${target}.partial-${process.pid}`;
    await fs.writeFile(partial, JSON.stringify(index));
    await fs.rename(partial, target);
  }

  private readIndex(): Promise<Record<string, string>> {
    this.index ??= fs
      .readFile(path.join(this.dir, 'hashes.json'), 'utf8')
      .then((t) => JSON.parse(t) as Record<string, string>)
      .catch(() => ({}));
    return this.index;
  }
}
