import type { ModelConfig } from '../model/config';

/** Memory limits that decide how many windows run together. */
export interface BatchLimits {
  /** Tokens per ORT run: large enough to keep the cores busy, small enough to bound intermediates. */
  batchTokens: number;
  /** Bytes of hidden states held at once (one chunk of windows). */
  chunkBytes: number;
  /** Bytes one ORT run may need for its largest intermediates (attention scores, LM-head logits). */
  runBytes: number;
}

export const DEFAULT_LIMITS: BatchLimits = {
  batchTokens: 4096,
  chunkBytes: 1 << 30,
  runBytes: 512 << 20,
};

export interface Batch {
  /** First window of the batch, relative to its chunk. */
  offset: number;
  size: number;
}

export interface Chunk {
  first: number;
  windows: number;
  batches: Batch[];
}

export interface BatchPlan {
  batchSize: number;
  chunks: Chunk[];
}

/** Splits `windows` windows of `seqlen` tokens into chunks (memory) and batches (ORT runs). */
export function batchPlan(cfg: ModelConfig, seqlen: number, windows: number, limits: Partial<BatchLimits> = {}): BatchPlan {
  const { batchTokens, chunkBytes, runBytes } = { ...DEFAULT_LIMITS, ...limits };
  const windowBytes = seqlen * cfg.hiddenSize * 4;
  // Per window: softmax input and output over all heads, the LM head's logits and log-probabilities,
  // or a sparse MoE block's activations and outputs of every expert on every token (graph/moe-block.ts).
  const moe = cfg.arch.moe;
  const expertBytes = moe ? 2 * seqlen * moe.experts * (moe.expertWidth + cfg.hiddenSize) * 4 : 0;
  const runBytesPerWindow = Math.max(2 * cfg.numHeads * seqlen * seqlen * 4, 2 * seqlen * cfg.vocabSize * 4, expertBytes);
  const batchSize = Math.max(1, Math.min(windows, Math.floor(batchTokens / seqlen), Math.floor(runBytes / runBytesPerWindow)));
  const chunkWindows = Math.max(batchSize, Math.floor(chunkBytes / windowBytes / batchSize) * batchSize);
  const chunks: Chunk[] = [];
  for (let first = 0; first < windows; first += chunkWindows) {
    const count = Math.min(chunkWindows, windows - first);
    const batches: Batch[] = [];
    for (let offset = 0; offset < count; offset += batchSize) batches.push({ offset, size: Math.min(batchSize, count - offset) });
    chunks.push({ first, windows: count, batches });
  }
  return { batchSize, chunks };
}
