import type { ModelConfig } from '../model/config';
import { PruneLensError } from '../errors';
import type { BlockWeightSource } from '../model/block-runner';
import type { DecoderRunner } from '../model/decoder-runner';
import { throwIfCancelled, type RunControl } from '../progress';
import { batchPlan, type BatchLimits } from './batching';

export interface PerplexityOptions extends RunControl, Partial<BatchLimits> {
  seqlen: number;
  /** Evaluate only the first K windows (a quick estimate); all windows by default. */
  maxWindows?: number;
  /** Names the text in errors. */
  source?: string;
}

export interface PerplexityResult {
  ppl: number;
  /** Mean next-token NLL in nats: log(ppl). */
  nll: number;
  windows: number;
  seqlen: number;
  /** Tokens run through the model: windows x seqlen. */
  tokens: number;
  /** Tokens predicted: windows x (seqlen - 1). */
  targets: number;
  /** Tokens in the whole text; the tail after the last full window is not evaluated. */
  textTokens: number;
  seconds: number;
  /** NLL of every target, window after window (seqlen - 1 per window): the inline loss view reads these. */
  tokenNll: Float32Array;
}

/**
 * Perplexity by the WikiText protocol: the text is tokenized once, cut into floor(n / seqlen)
 * non-overlapping windows (tail dropped), and ppl = exp(total NLL / total targets), where each window
 * predicts its seqlen - 1 shifted targets.
 *
 * Windows run block-major: a chunk of windows passes through block 0, then block 1, and so on, so each
 * block's weights are read once per chunk and memory is one block plus the chunk's hidden states.
 */
export async function evaluatePerplexity(
  runner: DecoderRunner,
  weights: BlockWeightSource,
  ids: Int32Array,
  options: PerplexityOptions,
): Promise<PerplexityResult> {
  const { seqlen, signal, onProgress } = options;
  const cfg = runner.config;
  runner.block.checkSequenceLength(seqlen);
  const available = Math.floor(ids.length / seqlen);
  if (available === 0) {
    throw new PruneLensError(
      'text',
      `the text has ${ids.length} tokens, fewer than one window of ${seqlen}; use a longer text or a smaller seqlen`,
      options.source,
    );
  }
  if (options.maxWindows !== undefined && (!Number.isInteger(options.maxWindows) || options.maxWindows < 1)) {
    throw new PruneLensError('usage', `max-windows must be a positive integer, got ${options.maxWindows}`);
  }
  const windows = Math.min(available, options.maxWindows ?? available);
  const start = performance.now();
  const plan = batchPlan(cfg, seqlen, windows, options);
  const d = cfg.hiddenSize;
  const tokenNll = new Float32Array(windows * (seqlen - 1));
  const totalRuns = plan.chunks.reduce((n, c) => n + c.batches.length, 0) * (cfg.numLayers + 1);
  let runs = 0;
  const step = (detail: string): void => {
    runs++;
    onProgress?.({ type: 'stage', stage: 'evaluate', done: runs, total: totalRuns, detail });
  };

  for (const chunk of plan.chunks) {
    const hidden = new Float32Array(chunk.windows * seqlen * d);
    await runner.embed(ids.subarray(chunk.first * seqlen, (chunk.first + chunk.windows) * seqlen), hidden, seqlen);
    for (let layer = 0; layer < cfg.numLayers; layer++) {
      throwIfCancelled(signal);
      const block = await weights.readBlock(layer);
      const feeds = runner.block.feeds(block, layer);
      for (const batch of chunk.batches) {
        throwIfCancelled(signal);
        const slice = hidden.subarray(batch.offset * seqlen * d, (batch.offset + batch.size) * seqlen * d);
        const [out] = await runner.block.run(feeds, slice, batch.size, seqlen);
        slice.set(out!);
        step(`block ${layer + 1}/${cfg.numLayers}`);
      }
      weights.recycle(block.values());
    }
    for (const batch of chunk.batches) {
      throwIfCancelled(signal);
      const first = chunk.first + batch.offset;
      const nll = await runner.nll(
        hidden.subarray(batch.offset * seqlen * d, (batch.offset + batch.size) * seqlen * d),
        ids.subarray(first * seqlen, (first + batch.size) * seqlen),
        batch.size,
        seqlen,
      );
      tokenNll.set(nll, first * (seqlen - 1));
      step('LM head');
    }
  }

  let total = 0;
  for (let i = 0; i < tokenNll.length; i++) total += tokenNll[i]!;
  const nll = total / tokenNll.length;
  if (!Number.isFinite(nll)) {
    throw new PruneLensError('weights', `the model produced a non-finite loss (${nll}); its weights or activations overflow float32`);
  }
  return {
    ppl: Math.exp(nll),
    nll,
    windows,
    seqlen,
    tokens: windows * seqlen,
    targets: tokenNll.length,
    textTokens: ids.length,
    seconds: (performance.now() - start) / 1000,
    tokenNll,
  };
}

/**
 * One evaluation inside a longer job (the dense model, then the pruned one): the text is named in
 * errors, and progress events carry `stage` so a progress bar can tell the two apart.
 */
export function evaluateStage(
  stage: string,
  runner: DecoderRunner,
  weights: BlockWeightSource,
  ids: Int32Array,
  evaluation: { file: string; seqlen: number; maxWindows?: number },
  control: RunControl,
): Promise<PerplexityResult> {
  return evaluatePerplexity(runner, weights, ids, {
    ...evaluation,
    source: evaluation.file,
    signal: control.signal,
    onProgress: (e) => control.onProgress?.(e.type === 'stage' ? { ...e, stage } : e),
  });
}

/** A perplexity at the vocabulary size means the model predicts nothing (e.g. overflowed weights). */
export function warnIfDegenerate(result: PerplexityResult, cfg: ModelConfig, what: string, control: RunControl): void {
  if (!Number.isFinite(result.ppl) || result.ppl >= 0.9 * cfg.vocabSize) {
    control.log?.warn(`${what} has perplexity ${result.ppl}, as bad as guessing among all ${cfg.vocabSize} tokens: its weights may be damaged (overflowed or scaled)`);
  }
}
