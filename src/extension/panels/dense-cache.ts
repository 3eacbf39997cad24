import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import type { PerplexityResult } from '../../engine/evaluate/perplexity';
import type { FileHashes } from '../file-hashes';

/** Dense evaluations kept; each is one float per evaluated token (about 600 KB for the bundled text). */
const KEEP = 16;

/**
 * The dense model's perplexity and per-token losses for a (model, text, seqlen), kept in the extension's
 * storage (never in the checkpoint) so that every Apply and Export of the same model after the first
 * evaluates only the pruned model. Keyed by the sha256 of every file the evaluation reads, so an edited
 * checkpoint or text is evaluated again.
 */
export class DenseCache {
  constructor(
    private readonly dir: string,
    private readonly hashes: FileHashes,
  ) {}

  async key(files: readonly string[], textFile: string, seqlen: number): Promise<string> {
    const [model, text] = await Promise.all([this.hashes.of(files), this.hashes.of([textFile])]);
    return createHash('sha256').update(JSON.stringify({ version: 1, model, text, seqlen })).digest('hex').slice(0, 32);
  }

  async read(key: string): Promise<PerplexityResult | undefined> {
    try {
      const header = JSON.parse(await fs.readFile(this.file(key, 'json'), 'utf8')) as Omit<PerplexityResult, 'tokenNll'>;
      const bytes = await fs.readFile(this.file(key, 'bin'));
      const tokenNll = new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
      if (tokenNll.length !== header.targets || typeof header.ppl !== 'number') return undefined;
      return { ...header, tokenNll };
    } catch {
      return undefined;
    }
  }

  async write(key: string, result: PerplexityResult): Promise<void> {
    await fs.mkdir(this.dir, { recursive: true });
    const { tokenNll, ppl, nll, windows, seqlen, tokens, targets, textTokens, seconds } = result;
    const header = { ppl, nll, windows, seqlen, tokens, targets, textTokens, seconds };
    // The losses first and the header last: a header is only ever read beside complete losses.
    const bin = this.file(key, 'bin');
    await fs.writeFile(`${bin}.partial-${process.pid}`, new Uint8Array(tokenNll.buffer, tokenNll.byteOffset, tokenNll.byteLength));
    await fs.rename(`${bin}.partial-${process.pid}`, bin);
    const json = this.file(key, 'json');
    await fs.writeFile(`${json}.partial-${process.pid}`, JSON.stringify(header));
    await fs.rename(`${json}.partial-${process.pid}`, json);
    await this.trim();
  }

  private file(key: string, ext: 'json' | 'bin'): string {
    return path.join(this.dir, `dense-${key}.${ext}`);
  }

  private async trim(): Promise<void> {
    const names = (await fs.readdir(this.dir)).filter((n) => /^dense-[0-9a-f]+\.json$/.test(n));
    if (names.length <= KEEP) return;
    const dated = await Promise.all(names.map(async (n) => ({ n, t: (await fs.stat(path.join(this.dir, n))).mtimeMs })));
    dated.sort((a, b) => b.t - a.t);
    for (const { n } of dated.slice(KEEP)) {
      await fs.rm(path.join(this.dir, n), { force: true });
      await fs.rm(path.join(this.dir, n.replace(/\.json$/, '.bin')), { force: true });
    }
  }
}
