import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { PruneLensError } from '../errors';
import { checkTokenIds, type ModelConfig } from '../model/config';
import { PythonRandom } from './python-random';
import type { RunControl } from '../progress';
import { encodeDocuments, encodeText } from '../text/encode-text';
import { decodeText } from '../text/text-file';
import type { TextTokenizer } from '../text/tokenizer';

export interface CalibrationRequest {
  file: string;
  nsamples: number;
  seqlen: number;
  seed: number;
}

/**
 * The calibration the references use (128 windows, SparseGPT's and Wanda's scripts; 256 tokens, the
 * bundled texts' protocol; seed 0): the CLI's defaults and the extension's setting defaults.
 */
export const CALIBRATION_DEFAULTS = { nsamples: 128, seqlen: 256, seed: 0 } as const;

/** The windows a run calibrated on, and everything needed to draw them again. */
export interface CalibrationSet extends CalibrationRequest {
  /** nsamples windows of seqlen token ids, back to back. */
  ids: Int32Array;
  sha256: string;
  format: 'text' | 'jsonl';
  documents: number;
  /** Tokens in the documents that were tokenized (the whole text; the drawn JSON Lines documents). */
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
export async function drawCalibration(tokenizer: TextTokenizer, request: CalibrationRequest, control: RunControl = {}, cfg?: ModelConfig): Promise<CalibrationSet> {
  const { file, nsamples, seqlen, seed } = request;
  checkCalibrationRequest(request);
  const bytes = await fs.readFile(file).catch((err: NodeJS.ErrnoException) => {
    throw new PruneLensError('text', err.code === 'ENOENT' ? 'calibration file not found' : `cannot read: ${err.message}`, file);
  });
  const content = decodeText(bytes, file);
  const format = /\.jsonl?$/i.test(file) ? 'jsonl' : 'text';
  const random = new PythonRandom(seed);
  const ids = new Int32Array(nsamples * seqlen);
  let documents: number;
  let tokens: number;
  if (format === 'text') {
    const doc = await encodeText(tokenizer, content, { ...control, source: file });
    if (cfg) checkTokenIds(doc, cfg, file);
    documents = 1;
    tokens = doc.length;
    // Windows may overlap, as in the references, but a text shorter than the request would mostly repeat itself.
    if (doc.length <= seqlen || doc.length < nsamples * seqlen) {
      throw new PruneLensError(
        'text',
        `too little calibration text: ${nsamples} windows of ${seqlen} tokens need at least ${Math.max(nsamples * seqlen, seqlen + 1)} tokens, but the text has ${doc.length}; use more text, fewer samples or a shorter seqlen`,
        file,
      );
    }
    for (let s = 0; s < nsamples; s++) {
      const start = random.randint(0, doc.length - seqlen - 1);
      ids.set(doc.subarray(start, start + seqlen), s * seqlen);
    }
  } else {
    // All documents are tokenized at once (in a worker, then from the token cache); `tokens` counts the drawn ones, as the reference tokenizes only those.
    const texts = jsonlTexts(content, file);
    const docs = await encodeDocuments(tokenizer, texts, { ...control, source: file });
    const cache = new Map<number, Int32Array>();
    const tokenized = (i: number): Int32Array => {
      let doc = cache.get(i);
      if (!doc) {
        cache.set(i, (doc = docs[i]!));
        if (cfg) checkTokenIds(doc, cfg, `${file}: document ${i + 1}`);
      }
      return doc;
    };
    for (let s = 0; s < nsamples; s++) {
      let doc: Int32Array;
      do {
        doc = tokenized(random.randint(0, texts.length - 1));
        if (doc.length <= seqlen && cache.size === texts.length && [...cache.values()].every((d) => d.length <= seqlen)) {
          throw new PruneLensError('text', `too little calibration text: windows of ${seqlen} tokens need documents longer than ${seqlen} tokens, and none of the ${texts.length} is; use longer documents or a shorter seqlen`, file);
        }
      } while (doc.length <= seqlen);
      const start = random.randint(0, doc.length - seqlen - 1);
      ids.set(doc.subarray(start, start + seqlen), s * seqlen);
    }
    documents = texts.length;
    tokens = [...cache.values()].reduce((n, d) => n + d.length, 0);
  }
  return {
    ...request,
    ids,
    sha256: createHash('sha256').update(bytes).digest('hex'),
    format,
    documents,
    tokens,
  };
}

/** Windows are held as one Int32Array of nsamples x seqlen ids: a request past that is a usage error, not a RangeError. */
export function checkCalibrationRequest({ nsamples, seqlen }: CalibrationRequest): void {
  if (!Number.isSafeInteger(nsamples) || nsamples < 1) throw new PruneLensError('usage', `nsamples must be a positive integer, got ${nsamples}`);
  if (!Number.isSafeInteger(seqlen) || seqlen < 2) throw new PruneLensError('usage', `seqlen must be an integer of at least 2, got ${seqlen}`);
  if (nsamples * seqlen > 2 ** 31 - 1) {
    throw new PruneLensError('usage', `--nsamples ${nsamples} x --seqlen ${seqlen} is ${nsamples * seqlen} calibration tokens, more than can be held (2^31 - 1); use fewer samples or a shorter seqlen`);
  }
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
  if (!texts.some((t) => t.trim().length > 0)) throw new PruneLensError('text', 'no line has a non-blank "text": there is nothing to calibrate on', file);
  return texts;
}
