/**
 * GGUF files PruneLens makes only to run them (the dense model beside a pruned one, a run that was
 * never exported), kept in the cache under the sha256 of what decides their bytes: the checkpoint's
 * files and the GGUF type. A second "try" or measurement of the same model reads the file instead of
 * exporting again; a model whose weights changed gets a new entry.
 */
import { createHash } from 'node:crypto';
import { createReadStream, promises as fs } from 'node:fs';
import * as path from 'node:path';
import { Checkpoint } from '../io/checkpoint';
import { exportGguf } from '../export/gguf/export-gguf';
import type { GgufType } from '../export/gguf/ggml-types';
import type { RunControl } from '../progress';
import { tokenCacheDir } from '../text/token-cache';
import { pidAlive } from '../process-alive';

/** Beside the token cache: $PRUNELENS_CACHE/gguf (the extension's global storage), else ~/.cache/prunelens/gguf. */
export function ggufCacheDir(): string {
  return path.join(path.dirname(tokenCacheDir()), 'gguf');
}

/** The files a GGUF export reads: config.json, the tokenizer's files, every safetensors file. */
async function sourceFiles(model: string): Promise<string[]> {
  const checkpoint = await Checkpoint.open(model);
  const dir = checkpoint.dir;
  const weights = checkpoint.files;
  await checkpoint.close();
  const names = await fs.readdir(dir);
  const others = names.filter((n) => n === 'config.json' || n.startsWith('tokenizer') || n === 'special_tokens_map.json').map((n) => path.join(dir, n));
  return [...others.sort(), ...[...weights].sort()];
}

async function contentHash(files: readonly string[]): Promise<string> {
  const all = createHash('sha256');
  for (const file of files) {
    all.update(`${path.basename(file)}\0`);
    await new Promise<void>((resolve, reject) => {
      createReadStream(file)
        .on('data', (chunk) => all.update(chunk))
        .on('error', reject)
        .on('end', () => resolve());
    });
  }
  return all.digest('hex');
}

/** The cached GGUF of `model` at `type`, exported into the cache first when it is not there. */
export async function cachedGguf(model: string, type: GgufType, control: RunControl = {}): Promise<{ file: string; exported: boolean }> {
  const key = await contentHash(await sourceFiles(model));
  const file = path.join(ggufCacheDir(), `${key.slice(0, 32)}-${type}.gguf`);
  if (await fs.stat(file).then((s) => s.isFile(), () => false)) return { file, exported: false };
  await fs.mkdir(path.dirname(file), { recursive: true });
  await removeAbandoned(file);
  control.log?.info(`exporting ${model} to ${file} (${type}) for llama.cpp`);
  await exportGguf({ model, type, out: file, signal: control.signal, onProgress: control.onProgress, log: control.log });
  return { file, exported: true };
}

/** Unfinished copies of `file` whose writer is gone (a killed engine process cannot remove its own). */
async function removeAbandoned(file: string): Promise<void> {
  const prefix = `${path.basename(file)}.partial-`;
  for (const entry of await fs.readdir(path.dirname(file))) {
    const pid = Number(entry.slice(prefix.length));
    if (!entry.startsWith(prefix) || !Number.isInteger(pid) || pidAlive(pid)) continue;
    await fs.rm(path.join(path.dirname(file), entry), { force: true });
  }
}
