import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { PruneLensError } from '../errors';
import { PythonRandom } from './python-random';
import type { TextTokenizer } from '../text/tokenizer';

export interface CalibrationRequest {
  file: string;
  nsamples: number;
  seqlen: number;
  seed: number;
}

/** The windows a run calibrated on, and everything needed to draw them again. */
export interface CalibrationSet extends CalibrationRequest {
  /** nsamples windows of seqlen token ids, back to back. */
  ids: Int32Array;
  sha256: string;
  format: 'text' | 'jsonl';
  documents: number;
  /** Tokens in the documents long enough to draw from. */
  tokens: number;
}

/**
 * Draws calibration windows exactly as the Wanda and SparseGPT scripts do, down to their random
 * numbers (CPython's generator, seeded the same way): `nsamples` windows of `seqlen` tokens, each
 * at a random offset in a random document longer than `seqlen`, with no BOS inserted per window.
 * A plain text file is one document, tokenized whole (their WikiText loader); JSON Lines (C4's
 * format) gives one document per line's "text", each tokenized on its own, and a document is drawn
 * again until one is long enough (their C4 loader).
 */
export async function drawCalibration(tokenizer: TextTokenizer, request: CalibrationRequest): Promise<CalibrationSet> {
  const { file, nsamples, seqlen, seed } = request;
  if (!Number.isInteger(nsamples) || nsamples < 1) throw new PruneLensError('usage', `nsamples must be a positive integer, got ${nsamples}`);
  const bytes = await fs.readFile(file).catch((err: NodeJS.ErrnoException) => {
    throw new PruneLensError('text', err.code === 'ENOENT' ? 'calibration file not found' : `cannot read: ${err.message}`, file);
  });
  const format = /\.jsonl?$/i.test(file) ? 'jsonl' : 'text';
  const texts = format === 'jsonl' ? jsonlTexts(bytes.toString('utf8'), file) : [bytes.toString('utf8')];
  const docs = texts.map((t) => tokenizer.encode(t));
  const usable = docs.filter((d) => d.length > seqlen);
  const tokens = usable.reduce((n, d) => n + d.length, 0);
  // Windows may overlap, as in the references, but a text shorter than the request would mostly repeat itself.
  if (tokens < nsamples * seqlen) {
    const have = usable.length === 0 ? `no document is longer than ${seqlen} tokens` : `its ${usable.length} document(s) longer than ${seqlen} tokens hold ${tokens} tokens`;
    throw new PruneLensError(
      'text',
      `too little calibration text: ${nsamples} windows of ${seqlen} tokens need at least ${nsamples * seqlen} tokens in documents longer than ${seqlen}, but ${have}; use more text, fewer samples or a shorter seqlen`,
      file,
    );
  }
  const random = new PythonRandom(seed);
  const ids = new Int32Array(nsamples * seqlen);
  for (let s = 0; s < nsamples; s++) {
    let doc = docs[0]!;
    if (format === 'jsonl') {
      do doc = docs[random.randint(0, docs.length - 1)]!;
      while (doc.length <= seqlen);
    }
    const start = random.randint(0, doc.length - seqlen - 1);
    ids.set(doc.subarray(start, start + seqlen), s * seqlen);
  }
  return {
    ...request,
    ids,
    sha256: createHash('sha256').update(bytes).digest('hex'),
    format,
    documents: docs.length,
    tokens,
  };
}

function jsonlTexts(content: string, file: string): string[] {
  const texts: string[] = [];
  for (const [i, line] of content.split('\n').entries()) {
    if (line.trim() === '') continue;
    let record: unknown;
    try {
      record = JSON.parse(line);
    } catch (err) {
      throw new PruneLensError('text', `line ${i + 1} is not valid JSON (${(err as Error).message})`, file);
    }
    const text = (record as { text?: unknown } | null)?.text;
    if (typeof text !== 'string') throw new PruneLensError('text', `line ${i + 1} has no string "text" field`, file);
    texts.push(text);
  }
  return texts;
}
