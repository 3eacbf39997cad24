import { promises as fs, type Stats } from 'node:fs';
import * as path from 'node:path';
import { PruneLensError } from '../errors';

/** The file that marks a folder as PruneLens output. */
export const RECORD_FILE = 'prunelens.json';
/** Every file PruneLens wrote into an output, with its size: what --overwrite may delete, and nothing else. */
export const MANIFEST_FILE = 'prunelens-manifest.json';

export interface Manifest {
  format: 'prunelens.manifest';
  version: 1;
  /** File name -> size in bytes, as committed. */
  files: Record<string, number>;
}

/**
 * The real path of `p`: symbolic links resolved in every component that exists, the rest appended
 * as given. Comparing real paths is what makes "is the output inside the source?" answerable when
 * either is reached through a link.
 */
export async function realPath(p: string): Promise<string> {
  const tail: string[] = [];
  let head = path.resolve(p);
  for (;;) {
    try {
      return path.join(await fs.realpath(head), ...tail.reverse());
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT' && code !== 'ENOTDIR') throw ioError(err, 'cannot resolve the path', p);
      const parent = path.dirname(head);
      if (parent === head) throw ioError(err, 'cannot resolve the path', p);
      tail.push(path.basename(head));
      head = parent;
    }
  }
}

/** True when `child` is `parent` or lies inside it (both real, absolute paths). */
export function isSameOrInside(child: string, parent: string): boolean {
  const rel = path.relative(parent, child);
  return rel === '' || (rel !== '..' && !rel.startsWith(`..${path.sep}`) && !path.isAbsolute(rel));
}

/** Where a checkpoint's files really are: its folder, and the files its links point to (a Hugging Face cache's blobs). */
export interface SourcePlace {
  dir: string;
  linkedFiles: string[];
}

/**
 * Refuses an output that is, is inside, or contains the source folder, or that contains a file the
 * source links to or the run reads (calibration, evaluation, plan): replacing such an output would
 * delete them. All paths are real paths.
 */
export function checkOutputPlacement(out: string, source: SourcePlace, inputs: readonly string[]): void {
  if (isSameOrInside(out, source.dir)) {
    throw new PruneLensError('output', `the output folder must not be the source checkpoint or inside it (${source.dir}); the source is never modified`, out);
  }
  if (isSameOrInside(source.dir, out)) {
    throw new PruneLensError('output', `the output folder contains the source checkpoint (${source.dir}); replacing it would delete the source`, out);
  }
  for (const file of source.linkedFiles) {
    if (isSameOrInside(file, out)) throw new PruneLensError('output', `the output folder contains ${file}, a file of the source checkpoint (its link points there)`, out);
  }
  for (const file of inputs) {
    if (isSameOrInside(file, out)) throw new PruneLensError('output', `the output folder contains ${file}, which this run reads`, out);
  }
}

export async function sourcePlace(dir: string): Promise<SourcePlace> {
  const linkedFiles: string[] = [];
  for (const entry of await fs.readdir(dir, { withFileTypes: true })) {
    if (entry.isSymbolicLink()) {
      const target = await fs.realpath(path.join(dir, entry.name)).catch(() => undefined);
      if (target) linkedFiles.push(target);
    }
  }
  return { dir: await realPath(dir), linkedFiles };
}

/** What stood at the output path when checked: nothing, or a folder identified by device and inode. */
export type OutputIdentity = { exists: false } | { exists: true; dev: number; ino: number };

export async function identityOf(out: string): Promise<OutputIdentity> {
  const stat = await lstat(out);
  return stat ? { exists: true, dev: stat.dev, ino: stat.ino } : { exists: false };
}

export function sameIdentity(a: OutputIdentity, b: OutputIdentity): boolean {
  return a.exists === b.exists && (!a.exists || (b.exists && a.dev === b.dev && a.ino === b.ino));
}

/**
 * May `out` be replaced? Only a real folder (not a link) that holds prunelens.json and a manifest,
 * every entry of which is a regular file the manifest lists with the size it had when PruneLens wrote
 * it. A sub-folder, a link, a file added or changed since: the folder holds something of the user's,
 * and it is refused. Returns normally when `out` does not exist.
 */
export async function checkReplaceable(out: string, overwrite: boolean): Promise<void> {
  const stat = await lstat(out);
  if (!stat) return;
  if (stat.isSymbolicLink()) throw new PruneLensError('output', 'is a symbolic link; give the folder it points to, or another folder', out);
  if (!stat.isDirectory()) throw new PruneLensError('output', 'already exists and is not a folder; choose another folder', out);
  const ours = await lstat(path.join(out, RECORD_FILE));
  if (!ours?.isFile()) throw new PruneLensError('output', 'already exists and is not a PruneLens output; choose another folder', out);
  if (!overwrite) {
    throw new PruneLensError('output', 'already exists (an earlier PruneLens output); pass --overwrite to replace it, or choose another folder', out);
  }
  const manifest = await readManifest(out);
  if (!manifest) {
    throw new PruneLensError(
      'output',
      `has no ${MANIFEST_FILE} (an output of an older PruneLens, or edited), so PruneLens cannot tell its files from yours and will not replace it; delete it yourself or choose another folder`,
      out,
    );
  }
  for (const entry of await fs.readdir(out)) {
    const where = path.join(out, entry);
    const entryStat = await lstat(where);
    const size = Object.hasOwn(manifest.files, entry) ? manifest.files[entry] : undefined;
    if (size === undefined || !entryStat?.isFile()) {
      throw new PruneLensError('output', `holds ${entryStat?.isDirectory() ? 'a folder' : entryStat?.isSymbolicLink() ? 'a link' : 'a file'} PruneLens did not write, so --overwrite will not replace it; move it out or choose another folder`, where);
    }
    if (entryStat.size !== size) {
      throw new PruneLensError('output', `changed since PruneLens wrote it (${entryStat.size} bytes, was ${size}), so --overwrite will not replace the folder; move it out or choose another folder`, where);
    }
  }
}

async function readManifest(out: string): Promise<Manifest | undefined> {
  const text = await fs.readFile(path.join(out, MANIFEST_FILE), 'utf8').catch(() => undefined);
  if (text === undefined) return undefined;
  try {
    const raw = JSON.parse(text) as Partial<Manifest>;
    if (raw.format !== 'prunelens.manifest' || typeof raw.files !== 'object' || raw.files === null) return undefined;
    if (!Object.values(raw.files).every((n) => Number.isSafeInteger(n))) return undefined;
    return raw as Manifest;
  } catch {
    return undefined;
  }
}

export async function lstat(p: string): Promise<Stats | undefined> {
  try {
    return await fs.lstat(p);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
    throw ioError(err, 'cannot inspect', p);
  }
}

/** A file-system failure in words: a read-only file system, a permission, a full disk are named as such. */
export function ioError(err: unknown, doing: string, where: string): PruneLensError {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  const reason =
    code === 'EROFS' ? 'the file system is read-only'
    : code === 'EACCES' || code === 'EPERM' ? 'permission denied'
    : code === 'ENOSPC' ? 'no space left on the device'
    : code === 'EDQUOT' ? 'the disk quota is exceeded'
    : code === 'ENOENT' ? 'no such file or folder'
    : (err as Error | undefined)?.message ?? String(err);
  return new PruneLensError('output', `${doing}: ${reason}`, where);
}
