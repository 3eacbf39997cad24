/**
 * llama.cpp itself, through node-llama-cpp (an optional dependency): the outside judge of PruneLens's
 * GGUF files (its tokenizer, its perplexity on the same windows PruneLens scores) and the runtime where
 * a person sees what pruning saved and what it did to text (load memory, speed, a short generation).
 *
 * node-llama-cpp is loaded with `build: 'never'` and `skipDownload: true`: it uses the prebuilt CPU
 * binary that arrives inside the npm package @node-llama-cpp/linux-x64 and never downloads or compiles
 * llama.cpp (its install script, which could, is not needed and does not run under npm 11's allowScripts).
 * One thread: on a shared machine more threads spin against other work and run an order of magnitude slower.
 */
import { createRequire } from 'node:module';
import type { Llama, LlamaModel, Token } from 'node-llama-cpp';
import { PruneLensError } from '../errors';
import { throwIfCancelled } from '../progress';

export const LLAMA_CPP_PACKAGE = 'node-llama-cpp';

/** Whether node-llama-cpp can be found from here (resolving loads nothing), so a command can say so before any work. */
export function llamaInstalled(): boolean {
  try {
    createRequire(__filename).resolve(LLAMA_CPP_PACKAGE);
    return true;
  } catch {
    return false;
  }
}

export async function loadLlama(): Promise<Llama> {
  // node-llama-cpp is an ES module; esbuild keeps this import() so Node loads it as one.
  const lib = await import('node-llama-cpp').catch((err: NodeJS.ErrnoException) => {
    if (err.code !== 'ERR_MODULE_NOT_FOUND' && err.code !== 'MODULE_NOT_FOUND') throw err;
    throw new PruneLensError('provider', `llama.cpp is not available: the optional package ${LLAMA_CPP_PACKAGE} is not installed (npm install --include=optional)`);
  });
  return lib.getLlama({ gpu: false, build: 'never', skipDownload: true, usePrebuiltBinaries: true, logLevel: lib.LlamaLogLevel.error }).catch((err: Error) => {
    throw new PruneLensError('provider', `llama.cpp cannot start on this machine: ${err.message}`);
  });
}

/** "llama.cpp via node-llama-cpp 3.21.1 (prebuilt CPU, 1 thread)": what a measurement or generation ran on, for records. */
export async function llamaRuntime(llama: Llama): Promise<string> {
  // The binary's own release field names ggml's version, not llama.cpp's build, so the package version says more.
  const version = await (await import('node-llama-cpp')).getModuleVersion();
  return `llama.cpp via node-llama-cpp ${version} (${llama.buildType === 'prebuilt' ? 'prebuilt' : 'local build'} CPU, 1 thread)`;
}

export async function loadGguf(llama: Llama, file: string): Promise<LlamaModel> {
  return llama.loadModel({ modelPath: file, gpuLayers: 0 }).catch((err: Error) => {
    throw new PruneLensError('checkpoint', `llama.cpp cannot load this GGUF file: ${err.message}`, file);
  });
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

export interface Generation {
  /** The generated text alone (the prompt is not repeated). */
  text: string;
  /** The generated ids, without the prompt's. */
  ids: number[];
  /** Tokens generated; fewer than asked when the model ended the text. */
  tokens: number;
  /** Prompt tokens llama.cpp read, its BOS included. */
  promptTokens: number;
  tokensPerSecond: number;
}

/**
 * Greedy continuation of `prompt`: llama.cpp's most likely next token, `maxTokens` times or until an
 * end-of-generation token. Greedy, so two models given the same prompt differ only by their weights.
 */
export async function llamaGenerate(model: LlamaModel, prompt: string, maxTokens: number, signal?: AbortSignal): Promise<Generation> {
  const ids = llamaTokenize(model, prompt) as Token[];
  const context = await model.createContext({ contextSize: Math.min(model.trainContextSize, ids.length + maxTokens + 1), sequences: 1, threads: 1 });
  try {
    const sequence = context.getSequence();
    const out: Token[] = [];
    const started = performance.now();
    for await (const token of sequence.evaluate(ids, { temperature: 0 })) {
      throwIfCancelled(signal);
      if (model.isEogToken(token)) break;
      out.push(token);
      if (out.length >= maxTokens) break;
    }
    const seconds = (performance.now() - started) / 1000;
    return { text: model.detokenize(out, false, ids), ids: out.map(Number), tokens: out.length, promptTokens: ids.length, tokensPerSecond: out.length / seconds };
  } finally {
    await context.dispose();
  }
}

export interface LlamaSpeed {
  /** Resident memory the load added (llama.cpp maps the file; the pages it touched count). */
  loadMiB: number;
  /** The process's resident memory with the model loaded: the figure a person sees in their task manager. */
  residentMiB: number;
  promptTokensPerSecond: number;
  generateTokensPerSecond: number;
}

/** The better of two measurements of one file: least memory, most tokens/s (a busy spell only ever slows). */
export function bestSpeed(a: LlamaSpeed, b: LlamaSpeed): LlamaSpeed {
  return {
    loadMiB: Math.min(a.loadMiB, b.loadMiB),
    residentMiB: Math.min(a.residentMiB, b.residentMiB),
    promptTokensPerSecond: Math.max(a.promptTokensPerSecond, b.promptTokensPerSecond),
    generateTokensPerSecond: Math.max(a.generateTokensPerSecond, b.generateTokensPerSecond),
  };
}

/**
 * Loads a GGUF file and times prompt processing (the first `promptTokens` ids of `text`, repeated when
 * it is shorter, in one batch) and greedy generation (`generateTokens` steps), best of `repeats`.
 */
export async function llamaSpeed(
  llama: Llama,
  file: string,
  options: { text: string; promptTokens: number; generateTokens: number; repeats: number; signal?: AbortSignal },
): Promise<LlamaSpeed> {
  const { promptTokens, generateTokens, repeats, signal } = options;
  const before = process.memoryUsage().rss;
  const model = await loadGguf(llama, file);
  try {
    const loaded = process.memoryUsage().rss;
    const loadMiB = (loaded - before) / 2 ** 20;
    const ids = llamaTokenize(model, options.text) as Token[];
    if (ids.length < 2) throw new PruneLensError('text', 'the text for timing llama.cpp tokenizes to fewer than 2 tokens');
    const prompt = Array.from({ length: promptTokens }, (_, i) => ids[i % ids.length]!);
    const context = await model.createContext({ contextSize: promptTokens + generateTokens + 1, batchSize: promptTokens, sequences: 1, threads: 1 });
    try {
      const sequence = context.getSequence();
      let prompted = 0;
      let generated = 0;
      for (let r = 0; r < repeats; r++) {
        throwIfCancelled(signal);
        await sequence.clearHistory();
        let t = performance.now();
        await sequence.evaluateWithoutGeneratingNewTokens(prompt);
        prompted = Math.max(prompted, promptTokens / ((performance.now() - t) / 1000));
        t = performance.now();
        let n = 0;
        // Every step counts, an end-of-text token included: this times the model, not the text.
        for await (const token of sequence.evaluate([prompt[prompt.length - 1]!], { temperature: 0 })) {
          void token;
          if (++n >= generateTokens) break;
        }
        generated = Math.max(generated, n / ((performance.now() - t) / 1000));
      }
      return { loadMiB, residentMiB: loaded / 2 ** 20, promptTokensPerSecond: prompted, generateTokensPerSecond: generated };
    } finally {
      await context.dispose();
    }
  } finally {
    await model.dispose();
  }
}
