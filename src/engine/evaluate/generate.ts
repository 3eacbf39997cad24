import { PruneLensError } from '../errors';
import type { BlockFeeds } from '../model/block-runner';
import type { BlockWeightSource } from '../model/block-runner';
import type { DecoderRunner } from '../model/decoder-runner';
import { throwIfCancelled, type RunControl } from '../progress';

export interface GenerateResult {
  /** The prompt followed by the generated tokens. */
  ids: Int32Array;
  /** Time spent decoding, not counting the one-time weight read. */
  seconds: number;
  /** New tokens per second of decoding. */
  tokensPerSecond: number;
}

/**
 * Greedy (argmax) decoding of `newTokens` tokens after `prompt`. There is no KV cache: each step
 * re-runs the whole sequence so far through every block, so this measures full-recompute generation,
 * whose cost per token grows with the sequence, not the speed of an incremental decoder. It always
 * produces `newTokens` tokens, EOS included, so that runs of different models do the same work.
 */
export async function generate(
  runner: DecoderRunner,
  weights: BlockWeightSource,
  prompt: Int32Array,
  newTokens: number,
  control: RunControl = {},
): Promise<GenerateResult> {
  const { signal, onProgress } = control;
  if (prompt.length === 0) throw new PruneLensError('usage', 'the prompt must have at least one token');
  if (!Number.isInteger(newTokens) || newTokens < 1) throw new PruneLensError('usage', `the number of new tokens must be a positive integer, got ${newTokens}`);
  const total = prompt.length + newTokens;
  runner.block.checkSequenceLength(total);
  const { hiddenSize: d, numLayers } = runner.config;

  // Every step runs every block, so re-reading the weights per step would dominate the timing.
  const blocks: BlockFeeds[] = [];
  for (let layer = 0; layer < numLayers; layer++) {
    throwIfCancelled(signal);
    blocks.push(runner.block.feeds(await weights.readBlock(layer), layer));
  }

  const ids = new Int32Array(total);
  ids.set(prompt);
  const start = performance.now();
  for (let seq = prompt.length; seq < total; seq++) {
    const hidden = new Float32Array(seq * d);
    await runner.embed(ids.subarray(0, seq), hidden, seq);
    for (const feeds of blocks) {
      throwIfCancelled(signal);
      const [out] = await runner.block.run(feeds, hidden, 1, seq);
      hidden.set(out!);
    }
    throwIfCancelled(signal);
    // The final norm works per position, so the last row alone gives the last position's logits
    // without a vocabulary-wide product for every earlier one.
    ids[seq] = argmax(await runner.logits(hidden.subarray((seq - 1) * d), 1, 1));
    onProgress?.({ type: 'stage', stage: 'generate', done: seq - prompt.length + 1, total: newTokens });
  }
  const seconds = (performance.now() - start) / 1000;
  return { ids, seconds, tokensPerSecond: newTokens / seconds };
}

/** The first index of the largest logit; ties go to the lower id, like torch.argmax. */
function argmax(row: Float32Array): number {
  let best = 0;
  for (let i = 1; i < row.length; i++) if (row[i]! > row[best]!) best = i;
  // NaN compares false, so overflowing activations would otherwise pass as a run of token 0.
  if (!Number.isFinite(row[best]!)) {
    throw new PruneLensError('weights', `the model produced non-finite logits (${row[best]}); its weights or activations overflow float32`);
  }
  return best;
}
