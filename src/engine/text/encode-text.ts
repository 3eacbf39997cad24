import { existsSync } from 'node:fs';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import { PruneLensError } from '../errors';
import { throwIfCancelled, type RunControl } from '../progress';
import { TokenCache, tokenCacheDir, tokenCacheKey } from './token-cache';
import type { TextTokenizer } from './tokenizer';
import type { TokenizeJob, TokenizeMessage } from './tokenize-worker';

export interface EncodeTextOptions extends RunControl {
  /** The file the text came from: named in the progress stage (`tokenize eval.txt`) and in messages. */
  source: string;
  /** The token cache's root folder (the extension passes its global storage); see tokenCacheDir. */
  cacheDir?: string;
  /**
   * Time allowed before the worker is stopped: `seconds` plus `secondsPerMb` per MB of text. The
   * default leaves ten times the time a loaded 2-core machine needs, so only a pattern that
   * backtracks without end (or nearly) reaches it.
   */
  budget?: { seconds: number; secondsPerMb: number };
}

const DEFAULT_BUDGET = { seconds: 20, secondsPerMb: 10 };

/**
 * A text up to this size, for a tokenizer that runs in linear time (TextTokenizer.linear), is
 * tokenized on the caller's thread: starting a worker costs ~70 ms on a 2-core machine, as much as
 * tokenizing 300 KB, its code runs cold there (WikiText-2's 1.3 MB: 425 ms cold, 210 ms once warm),
 * and the budget has nothing to guard. The caller's thread is the engine's (a worker in the
 * extension, the CLI's own), and it is held at most ~0.7 s; cancelling waits that long.
 */
const ON_THIS_THREAD_MAX_BYTES = 2_000_000;

/** Token ids of a text file's content, as TextTokenizer.encode gives them; see encodeDocuments. */
export async function encodeText(tokenizer: TextTokenizer, text: string, options: EncodeTextOptions): Promise<Int32Array> {
  return (await encodeDocuments(tokenizer, [text], options))[0]!;
}

/**
 * Token ids of each text, from the token cache when an earlier run stored them, else tokenized (in a
 * worker thread, so the caller's thread stays free, unless the text is short and the tokenizer
 * linear: ON_THIS_THREAD_MAX_BYTES) and then stored. The stage `tokenize <file>`
 * reports characters done; the signal stops the worker at once; a worker that runs past the time
 * budget is stopped too, with a message naming the tokenizer.json step that was running.
 */
export async function encodeDocuments(tokenizer: TextTokenizer, texts: string[], options: EncodeTextOptions): Promise<Int32Array[]> {
  throwIfCancelled(options.signal);
  const stage = `tokenize ${path.basename(options.source)}`;
  const total = texts.reduce((n, t) => n + t.length, 0);
  // No text at all (an empty JSON Lines file) is no stage: a bar of 0/0 would mean nothing.
  const onProgress = total > 0 ? options.onProgress : undefined;
  onProgress?.({ type: 'stage', stage, done: 0, total });
  const cache = cacheFor(tokenizer, options);
  const key = tokenCacheKey(tokenizer.fingerprint, texts);
  const cached = await cache?.get(key);
  if (cached) {
    options.log?.info(`${options.source}: token ids from the cache (${cache!.dir})`);
    onProgress?.({ type: 'stage', stage, done: total, total, detail: 'cached' });
    return cached;
  }
  const bytes = texts.reduce((n, t) => n + Buffer.byteLength(t, 'utf8'), 0);
  const ids = tokenizer.linear && bytes <= ON_THIS_THREAD_MAX_BYTES ? tokenizeHere(tokenizer, texts, total, stage, options) : await tokenizeInWorker(tokenizer, texts, bytes, total, stage, options);
  const failed = await cache?.put(key, ids);
  if (failed) options.onProgress?.({ type: 'warning', message: `token cache not written (${cache!.dir}): ${failed.message}` });
  return ids;
}

/** The cache, unless its folder lies inside the checkpoint (nothing is ever written there). */
function cacheFor(tokenizer: TextTokenizer, options: EncodeTextOptions): TokenCache | undefined {
  const dir = tokenCacheDir(options.cacheDir);
  const checkpoint = path.dirname(tokenizer.source);
  const relative = path.relative(checkpoint, dir);
  if (relative === '' || (!relative.startsWith('..') && !path.isAbsolute(relative))) {
    options.onProgress?.({ type: 'warning', message: `token cache not used: ${dir} is inside the checkpoint ${checkpoint}` });
    return undefined;
  }
  return new TokenCache(dir);
}

function tokenizeHere(tokenizer: TextTokenizer, texts: string[], total: number, stage: string, options: EncodeTextOptions): Int32Array[] {
  let before = 0;
  const ids = texts.map((text) => {
    const doc = tokenizer.encode(text);
    before += text.length;
    if (total > 0) options.onProgress?.({ type: 'stage', stage, done: before, total });
    return doc;
  });
  throwIfCancelled(options.signal);
  return ids;
}

function tokenizeInWorker(tokenizer: TextTokenizer, texts: string[], bytes: number, total: number, stage: string, options: EncodeTextOptions): Promise<Int32Array[]> {
  const budget = options.budget ?? DEFAULT_BUDGET;
  const mb = bytes / 1e6;
  const limitSeconds = budget.seconds + budget.secondsPerMb * mb;
  const job: TokenizeJob = { files: tokenizer.files, texts };
  const worker = new Worker(workerFile(), { workerData: job });
  return new Promise<Int32Array[]>((resolve, reject) => {
    let phase = 'starting the worker';
    let settled = false;
    const finish = (error: Error | undefined, ids?: Int32Array[]): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      options.signal?.removeEventListener('abort', onAbort);
      // Settled only once the thread has stopped: a stopped run leaves nothing spinning behind it.
      const settle = (): void => (error ? reject(error) : resolve(ids!));
      worker.terminate().then(settle, settle);
    };
    const onAbort = (): void => finish(new PruneLensError('cancelled', 'cancelled by the user'));
    options.signal?.addEventListener('abort', onAbort, { once: true });
    const timer = setTimeout(() => {
      const what = phase.startsWith('normalizer') || phase.startsWith('pre_tokenizer') ? `tokenizer.json ${phase}` : phase;
      finish(
        new PruneLensError(
          'text',
          `tokenizing ${path.basename(options.source)} (${mb >= 1 ? `${mb.toFixed(1)} MB` : `${Math.ceil(mb * 1000)} KB`}) took longer than ${limitSeconds.toFixed(0)} s ` +
            `(${budget.seconds} s + ${budget.secondsPerMb} s per MB) and was stopped while running ${what} on ${options.source}; ` +
            'a pattern that backtracks on this text never ends: fix the pattern in tokenizer.json or use another text',
          tokenizer.source,
        ),
      );
    }, limitSeconds * 1000);
    worker.on('message', (message: TokenizeMessage) => {
      switch (message.type) {
        case 'phase':
          phase = message.label;
          break;
        case 'progress':
          if (total > 0) options.onProgress?.({ type: 'stage', stage, done: message.done, total });
          break;
        case 'result':
          finish(undefined, message.ids);
          break;
        case 'error':
          finish(message.kind === 'internal' ? new Error(message.message) : new PruneLensError(message.kind, message.message, message.where));
          break;
      }
    });
    worker.on('error', (err) => finish(err));
    worker.on('exit', (code) => finish(new Error(`the tokenizer worker exited (code ${code}) without a result`)));
  });
}

/**
 * dist/tokenize-worker.js: beside the running bundle (dist/cli.js, dist/extension.js), or in the
 * dist folder of an ancestor (the unit tests run from out/test/...).
 */
function workerFile(): string {
  const name = 'tokenize-worker.js';
  const beside = path.join(__dirname, name);
  if (existsSync(beside)) return beside;
  for (let dir = __dirname; ; dir = path.dirname(dir)) {
    const candidate = path.join(dir, 'dist', name);
    if (existsSync(candidate)) return candidate;
    if (path.dirname(dir) === dir) break;
  }
  throw new Error(`${name} not found beside ${__dirname} or in a dist folder above it; run npm run build`);
}
