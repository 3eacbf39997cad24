import { PruneLensError } from './errors';
import { batchPlan } from './evaluate/batching';
import { blockTensorShapes, type ModelConfig } from './model/config';
import type { Statistic } from './prune/methods/method';

/*
 * The peak resident memory of a run, predicted from the model's config and the run's settings before
 * any weight is read, so a run that cannot fit is refused before it starts and the user is told which
 * setting to change. The engine streams block by block, so the peak is the sum of what lives for the
 * whole run (the runtime, the embeddings and LM head, the calibration hidden states) and of what one
 * block needs at its largest. ORT keeps each model session's largest working set in its arena after a
 * run, so the working sets of the sessions a run opens add up rather than overlap; the small graphs of
 * the pruning methods run without arenas (graph/op-registry.ts), so only the largest of them counts.
 */

/** Node, ONNX Runtime, the bundled code and the tokenizer's worker: the measured peak of evaluating one short window of a model of a few kilobytes. */
const RUNTIME_BYTES = 90 * 2 ** 20;
/**
 * Copies of the largest intermediates ORT's arena holds at its peak, measured rather than derived.
 * The LM head's [tokens, vocab] logits, their shifted slice and log-probabilities, with the arena's
 * rounding: about 2 + tokens/512 copies up to 4.5, for the tokens of one run (the process's VmHWM
 * against the other parts, one run of 256, 512, 1024 and 5 x 256 tokens on SmolLM-135M's,
 * TinyLlama-1.1B's, Llama-3.2-1B's and Llama-3.1-8B's shapes: 2.4 at 256, 2.1 to 3.5 at 512, 4.5 at
 * 1024, 4.2 at 1280). The attention scores, masked scores and softmax: about 3.
 */
const HEAD_COPIES = { base: 2, perToken: 1 / 512, most: 4.5 };
const SCORE_COPIES = 3;
/**
 * Copies of the tapped inputs the statistics pass holds beyond the plain block's working set:
 * measured 2.6 on TinyLlama-1.1B's shape (Wanda, 4 windows of 512 a run: the pass grew the process
 * by 868 MB, the plain block's pass on the same batches by 617).
 */
const TAP_INPUT_COPIES = 2.5;
/**
 * The per-token loss report's strings and arrays, per token of the evaluation's upper bound (one
 * token per byte of text): measured about 64 MiB for the embedded model's 600 KB evaluation text.
 */
const TOKEN_LOSS_BYTES = 110;
/**
 * A sparse MoE block runs every expert on every token (graph/moe-block.ts): per token, every
 * expert's SwiGLU activations (E x moe_intermediate) and outputs (E x hidden), of which about three
 * copies are alive at ORT's peak, and per run the expert weights stacked for the batched products
 * (gate and up rows concatenated, down matrices concatenated and transposed), with the previous
 * block's weights the garbage collector has not freed yet: about 1.6 times the block's float32
 * expert weights. Both measured on random Qwen3-MoE shapes (32 and 64 experts, 1 to 16 windows of
 * 256), where they came within 5% of the measured peaks.
 */
const MOE_TOKEN_COPIES = 3;
const MOE_WEIGHT_COPIES = 1.6;
const F32 = 4;

export interface MemoryJob {
  /** Evaluation windows of `evalSeqlen` tokens that will run, or an upper bound (0: no evaluation). */
  evalWindows: number;
  evalSeqlen: number;
  /** Expert statistics (routing frequency, REAP) from one pass over calibration windows: `experts` and expert removal. */
  experts?: { nsamples: number; seqlen: number };
  /**
   * Expert removal to this many experts per sparse layer: the smaller model is written, then
   * evaluated by a runner of its own (its embeddings and arena) beside the source model's.
   */
  keptExperts?: number;
  /** Unstructured pruning: what the method collects from calibration and the windows it runs. */
  prune?: {
    statistic: Statistic;
    nsamples: number;
    seqlen: number;
    /** ADMM and ALPS keep several copies of each weight matrix while they iterate. */
    admm: boolean;
    /** BESA-style allocation keeps the dense block output to measure each candidate's error. */
    blockErrors: boolean;
  };
}

export interface MemoryPart {
  what: string;
  bytes: number;
}

export interface MemoryPrediction {
  peakBytes: number;
  /** The largest parts first. */
  parts: MemoryPart[];
}

/** `storedBytes`: bytes per element as the checkpoint stores them (a block's tensors are read through a scratch buffer of that size, then decoded). */
export function predictPeakMemory(cfg: ModelConfig, storedBytes: number, job: MemoryJob): MemoryPrediction {
  const d = cfg.hiddenSize;
  const parts: MemoryPart[] = [{ what: 'runtime', bytes: RUNTIME_BYTES }];
  const embedding = cfg.vocabSize * d;
  // Float32 only: the stored bytes they were decoded from are garbage before any block runs (measured
  // on Llama-3.1-8B's shape: counting them over-predicted its evaluation by 1 GB).
  parts.push({ what: cfg.tieWordEmbeddings ? 'embeddings (tied LM head)' : 'embeddings and LM head', bytes: embedding * F32 * (cfg.tieWordEmbeddings ? 1 : 2) });

  // A mixture of experts' largest block is a sparse one (its experts outweigh a dense layer's MLP).
  const largest = Math.max(cfg.arch.moe?.sparse.indexOf(true) ?? 0, 0);
  const shapes = [...blockTensorShapes(cfg, largest).values()].map((s) => s.reduce((a, b) => a * b, 1));
  const blockBytes = shapes.reduce((a, b) => a + b, 0) * F32;
  // The block's float32 weights (decoded into the previous block's arrays, Checkpoint.recycle) and the
  // reader's scratch for the largest tensor's stored bytes; a prune also holds each pruned copy until the block is written.
  parts.push({ what: 'one decoder block', bytes: (job.prune ? 2 : 1) * blockBytes + Math.max(...shapes) * storedBytes });

  if (job.evalWindows > 0) {
    const plan = batchPlan(cfg, job.evalSeqlen, job.evalWindows);
    const chunkWindows = Math.max(...plan.chunks.map((c) => c.windows));
    parts.push({ what: 'evaluation hidden states', bytes: chunkWindows * job.evalSeqlen * d * F32 });
    parts.push({ what: 'evaluation working set', bytes: blockRunBytes(cfg, plan.batchSize, job.evalSeqlen) + headRunBytes(cfg, plan.batchSize, job.evalSeqlen) });
  }

  if (job.keptExperts !== undefined && cfg.arch.moe) {
    const smaller: ModelConfig = { ...cfg, arch: { ...cfg.arch, moe: { ...cfg.arch.moe, experts: job.keptExperts } } };
    const runner = embedding * F32 * (cfg.tieWordEmbeddings ? 1 : 2);
    const evaluation = job.evalWindows > 0 ? evaluationBytes(smaller, job.evalSeqlen, job.evalWindows) : 0;
    parts.push({ what: 'evaluating the smaller model', bytes: runner + evaluation });
    if (job.evalWindows > 0) parts.push({ what: 'per-token losses', bytes: job.evalWindows * job.evalSeqlen * TOKEN_LOSS_BYTES });
  }
  if (job.experts) {
    const { nsamples, seqlen } = job.experts;
    parts.push({ what: 'calibration hidden states', bytes: nsamples * seqlen * d * F32 });
    const batch = batchPlan(cfg, seqlen, nsamples, { chunkBytes: Infinity }).batchSize;
    // The statistics taps run in a session of their own that is closed before any evaluation runs
    // (measured: the peaks do not add), so only what exceeds the evaluations' working sets counts.
    const later = parts.filter((p) => p.what === 'evaluation working set' || p.what === 'evaluating the smaller model').reduce((sum, p) => sum + p.bytes, 0);
    const beyond = blockRunBytes(cfg, batch, seqlen) - later;
    if (beyond > 0) parts.push({ what: 'expert statistics working set', bytes: beyond });
  }

  const prune = job.prune;
  if (prune && prune.nsamples > 0) {
    const hidden = prune.nsamples * prune.seqlen * d * F32;
    parts.push({ what: 'calibration hidden states', bytes: hidden * (prune.blockErrors ? 2 : 1) });
    const batch = batchPlan(cfg, prune.seqlen, prune.nsamples, { chunkBytes: Infinity }).batchSize;
    // The plain block session also moves the calibration states on, in batches of another shape than
    // the evaluation's. ORT's arena keeps the regions it grew for each beside each other (it does not
    // merge them), so this working set adds to the evaluation's instead of overlapping it: counting only
    // the difference predicted 2,841 MB for Wanda on TinyLlama-1.1B's shapes (16 x 512), which peaked at 3,037.
    parts.push({ what: 'calibration working set', bytes: blockRunBytes(cfg, batch, prune.seqlen) });
    if (prune.statistic !== 'none') parts.push({ what: 'statistics pass working set', bytes: blockRunBytes(cfg, batch, prune.seqlen) + tapBytes(cfg, prune.statistic, batch * prune.seqlen) });
  }
  if (prune) {
    parts.push({ what: 'pruning one linear', bytes: methodBytes(cfg, prune.statistic, prune.admm) });
    // A prune writes every evaluated token's dense and pruned loss, with its text, into its report.
    if (job.evalWindows > 0) parts.push({ what: 'per-token losses', bytes: job.evalWindows * job.evalSeqlen * TOKEN_LOSS_BYTES });
  }

  parts.sort((a, b) => b.bytes - a.bytes);
  return { peakBytes: parts.reduce((sum, p) => sum + p.bytes, 0), parts };
}

/**
 * The largest tensors alive at once in one block run of `batch` windows: the residual stream and
 * its norms, q, k and v, the attention scores and their softmax, and the MLP's gate, up and product.
 */
function blockRunBytes(cfg: ModelConfig, batch: number, seqlen: number): number {
  const tokens = batch * seqlen;
  const qkv = (cfg.numHeads + 2 * cfg.numKvHeads) * cfg.headDim;
  const perToken = 6 * cfg.hiddenSize + qkv + 3 * cfg.intermediateSize;
  return F32 * (tokens * perToken + SCORE_COPIES * batch * cfg.numHeads * seqlen * seqlen) + moeRunBytes(cfg, tokens);
}

/** What a sparse block adds (see MOE_TOKEN_COPIES); a dense model's blocks add nothing. */
function moeRunBytes(cfg: ModelConfig, tokens: number): number {
  const moe = cfg.arch.moe;
  if (!moe?.sparse.includes(true)) return 0;
  const perToken = moe.experts * (moe.expertWidth + cfg.hiddenSize);
  const weights = 3 * moe.experts * moe.expertWidth * cfg.hiddenSize;
  return F32 * (MOE_TOKEN_COPIES * tokens * perToken + MOE_WEIGHT_COPIES * weights);
}

/** The hidden states of one chunk of evaluation windows and the working set of its block and head runs. */
function evaluationBytes(cfg: ModelConfig, seqlen: number, windows: number): number {
  const plan = batchPlan(cfg, seqlen, windows);
  const chunkWindows = Math.max(...plan.chunks.map((c) => c.windows));
  return chunkWindows * seqlen * cfg.hiddenSize * F32 + blockRunBytes(cfg, plan.batchSize, seqlen) + headRunBytes(cfg, plan.batchSize, seqlen);
}

/** The LM head's logits and log-probabilities for one batch. */
function headRunBytes(cfg: ModelConfig, batch: number, seqlen: number): number {
  const tokens = batch * seqlen;
  return Math.min(HEAD_COPIES.most, HEAD_COPIES.base + HEAD_COPIES.perToken * tokens) * F32 * tokens * cfg.vocabSize;
}

/**
 * What the taps compute per batch of `tokens`: copies of each tapped input (squared for the norms,
 * transposed for the Gram product, and the reductions' own), what they return (float32), their
 * float64 running sums and the scaled statistic handed to the method (float32).
 */
function tapBytes(cfg: ModelConfig, statistic: Statistic, tokens: number): number {
  const widths = tapWidths(cfg);
  const elements = statistic === 'gram' ? widths.reduce((a, w) => a + w * w, 0) : widths.reduce((a, w) => a + w, 0);
  return TAP_INPUT_COPIES * tokens * widths.reduce((a, w) => a + w, 0) * F32 + elements * (F32 + 8 + F32);
}

function tapWidths(cfg: ModelConfig): number[] {
  return [cfg.hiddenSize, cfg.numHeads * cfg.headDim, cfg.hiddenSize, cfg.intermediateSize];
}

/** One linear at a time: its weight and mask, and for second-order methods the Hessian, its inverse and factor. */
function methodBytes(cfg: ModelConfig, statistic: Statistic, admm: boolean): number {
  const linears: [rows: number, cols: number][] = [
    [(cfg.numHeads + 2 * cfg.numKvHeads) * cfg.headDim, cfg.hiddenSize],
    [cfg.hiddenSize, cfg.numHeads * cfg.headDim],
    [cfg.intermediateSize, cfg.hiddenSize],
    [cfg.hiddenSize, cfg.intermediateSize],
  ];
  return Math.max(
    ...linears.map(([rows, cols]) => {
      const weights = rows * cols * F32 * (admm ? 6 : 3);
      return weights + (statistic === 'gram' ? 4 * cols * cols * F32 : 0);
    }),
  );
}

export function formatBytes(bytes: number): string {
  return bytes >= 2 ** 30 ? `${(bytes / 2 ** 30).toFixed(1)} GiB` : `${(bytes / 2 ** 20).toFixed(0)} MiB`;
}

/** One line for the user: the predicted peak and its two largest parts. */
export function describePrediction(p: MemoryPrediction): string {
  const largest = p.parts.slice(0, 2).map((part) => `${part.what} ${formatBytes(part.bytes)}`);
  return `predicted peak memory ${formatBytes(p.peakBytes)} (${largest.join(', ')})`;
}

/**
 * Refuses a run whose predicted peak exceeds the memory available now, before any work, naming the
 * settings that shrink the largest part. `available` is the kernel's estimate of what can be had
 * without swapping (MemAvailable).
 */
export function checkMemoryFits(p: MemoryPrediction, available: number): void {
  if (p.peakBytes <= available) return;
  const largest = p.parts[0]!;
  const advice: Record<string, string> = {
    'calibration hidden states': 'use fewer calibration windows (--nsamples) or a shorter --seqlen',
    'evaluation hidden states': 'evaluate fewer windows (--max-windows) or use a shorter --seqlen',
    'evaluation working set': 'use a shorter --seqlen',
    'statistics pass working set': 'use a shorter --seqlen',
    'calibration working set': 'use a shorter --seqlen',
  };
  const fix = advice[largest.what] ?? 'free memory, or run on a machine with more memory: the model itself needs it';
  throw new PruneLensError(
    'memory',
    `this run needs about ${formatBytes(p.peakBytes)} at its peak (${p.parts.map((part) => `${part.what} ${formatBytes(part.bytes)}`).join(', ')}), but ${formatBytes(available)} is available; ${fix}`,
  );
}

/**
 * Evaluation windows a text can give before it is tokenized: `maxWindows` when set, else an upper
 * bound, as no tokenizer the engine reads makes more tokens than the text has bytes.
 */
export function evaluationWindowsAtMost(textBytes: number, seqlen: number, maxWindows: number | undefined): number {
  return Math.min(Math.floor(textBytes / seqlen), maxWindows ?? Infinity);
}
