import * as path from 'node:path';
import { PruneLensError } from '../errors';
import type { PerplexityResult } from '../evaluate/perplexity';
import type { RunControl } from '../progress';
import { SafetensorsReader } from '../io/safetensors-reader';
import { writeSafetensors, type TensorSpec } from '../io/safetensors-writer';
import { tokenOffsets } from '../text/token-offsets';
import type { TextTokenizer } from '../text/tokenizer';

/** Beside prunelens.json in a pruned folder: what the inline loss view reads. */
export const TOKEN_LOSSES_FILE = 'prunelens-tokens.safetensors';

export interface TokenLosses {
  textFile: string;
  seqlen: number;
  windows: number;
  /** Per predicted token (window w, target t predicts ids[w*seqlen + t + 1]): its [start, end) span in the text. */
  starts: Int32Array;
  ends: Int32Array;
  /** NLL in nats, same length as starts. */
  dense: Float32Array;
  pruned: Float32Array;
}

const DTYPES = { starts: 'I32', ends: 'I32', dense: 'F32', pruned: 'F32' } as const;
type Column = keyof typeof DTYPES;
const COLUMNS = Object.keys(DTYPES) as Column[];

/** The per-target losses of two evaluations of the same windows, each placed on the text it predicts. */
export function tokenLossesFor(
  tokenizer: TextTokenizer,
  text: string,
  textFile: string,
  ids: Int32Array,
  seqlen: number,
  windows: number,
  dense: Float32Array,
  pruned: Float32Array,
): TokenLosses {
  const targets = windows * (seqlen - 1);
  if (dense.length !== targets || pruned.length !== targets || ids.length < windows * seqlen) {
    throw new PruneLensError(
      'text',
      `${windows} windows of ${seqlen} tokens predict ${targets} tokens, but the losses have ${dense.length} (dense) and ${pruned.length} (pruned) ` +
        `and the text ${ids.length} tokens`,
      textFile,
    );
  }
  const spans = tokenOffsets(tokenizer, text, ids);
  const starts = new Int32Array(targets);
  const ends = new Int32Array(targets);
  for (let w = 0; w < windows; w++) {
    // The first token of a window is context only, so target t is the token after it.
    const from = w * seqlen + 1;
    starts.set(spans.starts.subarray(from, from + seqlen - 1), w * (seqlen - 1));
    ends.set(spans.ends.subarray(from, from + seqlen - 1), w * (seqlen - 1));
  }
  return { textFile, seqlen, windows, starts, ends, dense, pruned };
}

export async function writeTokenLosses(file: string, losses: TokenLosses): Promise<void> {
  const n = losses.starts.length;
  const arrays: Record<Column, Int32Array | Float32Array> = losses;
  for (const name of COLUMNS) {
    if (arrays[name].length !== n) throw new PruneLensError('output', `"${name}" has ${arrays[name].length} values, "starts" ${n}`, file);
  }
  const specs: TensorSpec[] = COLUMNS.map((name) => ({ name, dtype: DTYPES[name], shape: [n] }));
  await writeSafetensors(
    file,
    specs,
    ({ name }) => {
      const a = arrays[name as Column];
      return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
    },
    { textFile: losses.textFile, seqlen: String(losses.seqlen), windows: String(losses.windows) },
  );
}

export async function readTokenLosses(file: string): Promise<TokenLosses> {
  const reader = await SafetensorsReader.open(file);
  try {
    for (const name of COLUMNS) {
      const entry = reader.entries.get(name);
      const dtype = DTYPES[name];
      if (!entry) throw new PruneLensError('checkpoint', `no "${name}" tensor: not a PruneLens token-loss file, or a damaged one`, file);
      if (entry.dtype !== dtype || entry.shape.length !== 1) {
        throw new PruneLensError('checkpoint', `"${name}" is ${entry.dtype} of shape [${entry.shape.join(', ')}], expected a vector of ${dtype}`, file);
      }
    }
    const { textFile, seqlen, windows } = reader.metadata;
    const sizes = { seqlen: Number(seqlen), windows: Number(windows) };
    if (textFile === undefined || !Number.isSafeInteger(sizes.seqlen) || sizes.seqlen < 2 || !Number.isSafeInteger(sizes.windows) || sizes.windows < 1) {
      throw new PruneLensError('checkpoint', `the metadata needs textFile, seqlen >= 2 and windows >= 1, got ${JSON.stringify(reader.metadata)}`, file);
    }
    const targets = sizes.windows * (sizes.seqlen - 1);
    for (const name of COLUMNS) {
      const length = reader.entries.get(name)!.shape[0];
      if (length !== targets) {
        throw new PruneLensError('checkpoint', `"${name}" has ${length} values but ${windows} windows of ${seqlen} tokens predict ${targets}`, file);
      }
    }
    // readBytes gives a fresh buffer at offset 0, so it can be viewed in place.
    const int32 = async (name: string): Promise<Int32Array> => new Int32Array((await reader.readBytes(name)).buffer);
    return {
      textFile,
      ...sizes,
      starts: await int32('starts'),
      ends: await int32('ends'),
      dense: await reader.readF32('dense'),
      pruned: await reader.readF32('pruned'),
    };
  } finally {
    await reader.close();
  }
}

/**
 * A run's per-token losses, written into its output folder for the inline loss view. The view is an
 * extra: a tokenizer whose spans cannot be placed costs a warning, never the pruned model.
 */
export async function writeRunTokenLosses(
  dir: string,
  evaluation: { tokenizer: TextTokenizer; text: string; file: string; ids: Int32Array; seqlen: number },
  dense: PerplexityResult,
  pruned: PerplexityResult,
  control: RunControl,
): Promise<void> {
  const { tokenizer, text, file, ids, seqlen } = evaluation;
  let losses: TokenLosses;
  try {
    losses = tokenLossesFor(tokenizer, text, file, ids, seqlen, dense.windows, dense.tokenNll, pruned.tokenNll);
  } catch (err) {
    if (!(err instanceof PruneLensError && err.kind === 'text')) throw err;
    control.onProgress?.({ type: 'warning', message: `no ${TOKEN_LOSSES_FILE}: ${err.message}` });
    return;
  }
  await writeTokenLosses(path.join(dir, TOKEN_LOSSES_FILE), losses);
}
