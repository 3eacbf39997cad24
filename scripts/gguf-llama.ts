/**
 * llama.cpp itself, through node-llama-cpp (a dev dependency), as the outside judge of PruneLens's GGUF
 * files: its tokenizer, its perplexity on the same windows PruneLens scores, its load memory and speed.
 *
 * node-llama-cpp is loaded with `build: 'never'` and `skipDownload: true`: it uses the prebuilt CPU
 * binary that arrives inside the npm package @node-llama-cpp/linux-x64 and never downloads or compiles
 * llama.cpp (its install script, which could, is not needed and does not run under npm 11's allowScripts).
 * One thread: on a shared machine more threads spin against other work and run an order of magnitude slower.
 */
import type { Llama, LlamaModel, Token } from 'node-llama-cpp';

export async function loadLlama(): Promise<Llama> {
  // node-llama-cpp is an ES module; esbuild keeps this import() so Node loads it as one.
  const { getLlama, LlamaLogLevel } = await import('node-llama-cpp');
  return getLlama({ gpu: false, build: 'never', skipDownload: true, usePrebuiltBinaries: true, logLevel: LlamaLogLevel.error });
}

export async function loadGguf(llama: Llama, file: string): Promise<LlamaModel> {
  return llama.loadModel({ modelPath: file, gpuLayers: 0 });
}

/** llama.cpp's ids for a text, with the BOS it adds when the file says tokenizer.ggml.add_bos_token. */
export function llamaTokenize(model: LlamaModel, text: string): number[] {
  const ids = model.tokenize(text).map(Number);
  return model.tokens.shouldPrependBosToken && model.tokens.bos !== null ? [Number(model.tokens.bos), ...ids] : ids;
}

export interface LlamaPerplexity {
  ppl: number;
  nll: number;
  targets: number;
  windows: number;
  /** NLL of every target, window after window (seqlen - 1 per window), aligned with PruneLens's tokenNll. */
  tokenNll: Float64Array;
}

/**
 * PruneLens's protocol run in llama.cpp: non-overlapping windows of `seqlen` ids (tail dropped), each
 * evaluated from an empty cache, every position's next-token distribution (softmax of llama.cpp's logits)
 * scoring the id that follows it.
 */
export async function llamaPerplexity(model: LlamaModel, ids: readonly number[], seqlen: number, maxWindows = Infinity): Promise<LlamaPerplexity> {
  const windows = Math.min(Math.floor(ids.length / seqlen), maxWindows);
  const context = await model.createContext({ contextSize: seqlen, batchSize: seqlen, sequences: 1, threads: 1 });
  try {
    const sequence = context.getSequence();
    const tokenNll = new Float64Array(windows * (seqlen - 1));
    for (let w = 0; w < windows; w++) {
      const window = ids.slice(w * seqlen, (w + 1) * seqlen) as Token[];
      await sequence.clearHistory();
      const results = await sequence.controlledEvaluate(
        window.map((token, i) => (i < seqlen - 1 ? [token, { generateNext: { probabilities: true } }] : token)),
      );
      for (let i = 0; i < seqlen - 1; i++) {
        const p = results[i]?.next.probabilities?.get(window[i + 1]!);
        if (p === undefined) throw new Error(`llama.cpp gave no probability at window ${w}, position ${i}`);
        tokenNll[w * (seqlen - 1) + i] = -Math.log(p);
      }
    }
    const targets = windows * (seqlen - 1);
    const nll = tokenNll.reduce((a, b) => a + b, 0) / targets;
    return { ppl: Math.exp(nll), nll, targets, windows, tokenNll };
  } finally {
    await context.dispose();
  }
}
