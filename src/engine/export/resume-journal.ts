import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { ioError } from './output-paths';

/** The journal of an unfinished output: it marks the folder as unfinished and says how far the run got. */
export const JOURNAL_FILE = 'prunelens-resume.json';
const ARRAY_PREFIX = 'prunelens-resume-';

export interface JournalData {
  format: 'prunelens.resume';
  version: 1;
  pid: number;
  started: string;
  /** What makes two runs the same job (options, input hashes, threads); a resume must match it exactly. */
  fingerprint: Record<string, unknown>;
  /** Whatever the job records as it goes (stages done, per-block results). */
  progress: Record<string, unknown>;
}

/**
 * The durable progress of a run inside its partial folder: a JSON journal replaced atomically (temporary
 * file, fsync, rename, fsync of the folder) and typed arrays saved the same way. A SIGKILL or power loss
 * at any instant leaves either the previous journal or the new one, never a torn one.
 */
export class ResumeJournal {
  private constructor(
    readonly dir: string,
    private data: JournalData,
  ) {}

  static async start(dir: string, fingerprint: Record<string, unknown>): Promise<ResumeJournal> {
    const journal = new ResumeJournal(dir, { format: 'prunelens.resume', version: 1, pid: process.pid, started: new Date().toISOString(), fingerprint, progress: {} });
    await journal.save({});
    return journal;
  }

  /** The journal in `dir`, or undefined when there is none or it cannot be read. */
  static async read(dir: string): Promise<ResumeJournal | undefined> {
    try {
      const data = JSON.parse(await fs.readFile(path.join(dir, JOURNAL_FILE), 'utf8')) as JournalData;
      if (data.format !== 'prunelens.resume' || data.version !== 1 || typeof data.progress !== 'object' || data.progress === null) return undefined;
      return new ResumeJournal(dir, data);
    } catch {
      return undefined;
    }
  }

  get fingerprint(): Record<string, unknown> {
    return this.data.fingerprint;
  }

  get progress(): Readonly<Record<string, unknown>> {
    return this.data.progress;
  }

  get started(): string {
    return this.data.started;
  }

  /** Merges `patch` into the progress and makes it durable before returning. */
  async save(patch: Record<string, unknown>): Promise<void> {
    this.data = { ...this.data, pid: process.pid, progress: { ...this.data.progress, ...patch } };
    await writeDurably(path.join(this.dir, JOURNAL_FILE), JSON.stringify(this.data));
  }

  async saveArray(name: string, values: Float32Array | Int32Array): Promise<void> {
    await writeDurably(this.arrayPath(name), new Uint8Array(values.buffer, values.byteOffset, values.byteLength));
  }

  async loadF32(name: string): Promise<Float32Array | undefined> {
    const bytes = await fs.readFile(this.arrayPath(name)).catch(() => undefined);
    return bytes && bytes.byteLength % 4 === 0 ? new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength)) : undefined;
  }

  async loadI32(name: string): Promise<Int32Array | undefined> {
    const bytes = await fs.readFile(this.arrayPath(name)).catch(() => undefined);
    return bytes && bytes.byteLength % 4 === 0 ? new Int32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength)) : undefined;
  }

  async removeArray(name: string): Promise<void> {
    await fs.rm(this.arrayPath(name), { force: true });
  }

  /** Deletes the journal and its arrays: done once the output is complete, just before the commit. */
  async remove(): Promise<void> {
    for (const entry of await fs.readdir(this.dir)) {
      if (entry.startsWith('prunelens-resume')) await fs.rm(path.join(this.dir, entry), { force: true });
    }
  }

  private arrayPath(name: string): string {
    return path.join(this.dir, `${ARRAY_PREFIX}${name}.bin`);
  }
}

/** Writes a file so that after a crash it holds either its old content or all of the new. */
export async function writeDurably(file: string, content: string | Uint8Array): Promise<void> {
  const tmp = `${file}.tmp`;
  try {
    const handle = await fs.open(tmp, 'w');
    try {
      await handle.writeFile(content);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await fs.rename(tmp, file);
  } catch (err) {
    await fs.rm(tmp, { force: true }).catch(() => undefined);
    throw ioError(err, 'cannot write', file);
  }
  await syncFolder(path.dirname(file));
}

export async function syncFolder(dir: string): Promise<void> {
  const handle = await fs.open(dir, 'r');
  try {
    await handle.sync();
  } catch {
    // Some file systems refuse fsync on a folder; the rename is then as durable as they make it.
  } finally {
    await handle.close();
  }
}

/** The names of the fields in which two fingerprints differ. */
export function fingerprintDifferences(a: Record<string, unknown>, b: Record<string, unknown>): string[] {
  const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
  return [...keys].filter((k) => JSON.stringify(a[k]) !== JSON.stringify(b[k])).sort();
}
