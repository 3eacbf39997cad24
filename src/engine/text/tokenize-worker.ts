/**
 * The worker that tokenizes (bundled as dist/tokenize-worker.js): builds the tokenizer from the files
 * it is given, encodes the texts and posts, as it goes, the step it is in (so the thread that watches
 * the time budget can say which tokenizer.json pattern was running) and how far it got.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { PruneLensError } from '../errors';
import { buildEncoding, FAST_BPE, type TokenizerFiles } from './tokenizer';

export interface TokenizeJob {
  files: TokenizerFiles;
  texts: string[];
}

export type TokenizeMessage =
  | { type: 'phase'; label: string }
  | { type: 'progress'; done: number }
  | { type: 'result'; ids: Int32Array[] }
  | { type: 'error'; kind: PruneLensError['kind'] | 'internal'; message: string; where?: string };

function post(message: TokenizeMessage, transfer: ArrayBuffer[] = []): void {
  parentPort!.postMessage(message, transfer);
}

function run(job: TokenizeJob): void {
  post({ type: 'phase', label: 'loading the tokenizer' });
  const { encoding } = buildEncoding(job.files);
  const ids: Int32Array[] = [];
  let before = 0;
  let phase = '';
  const hooks = {
    phase: (label: string): void => {
      if (label !== phase) post({ type: 'phase', label: (phase = label) });
    },
    progress: (done: number): void => post({ type: 'progress', done: before + done }),
  };
  for (const text of job.texts) {
    hooks.phase(encoding.kind === FAST_BPE ? 'BPE' : `encoding with the ${encoding.kind}`);
    ids.push(encoding.encode(text, hooks));
    before += text.length;
    post({ type: 'progress', done: before });
  }
  post({ type: 'result', ids }, ids.map((a) => a.buffer as ArrayBuffer));
}

try {
  run(workerData as TokenizeJob);
} catch (err) {
  if (err instanceof PruneLensError) post({ type: 'error', kind: err.kind, message: err.message.replace(`${err.where}: `, ''), where: err.where });
  else post({ type: 'error', kind: 'internal', message: (err as Error)?.stack ?? String(err) });
}
