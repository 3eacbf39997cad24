/**
 * "Try it": the same prompt continued greedily by the dense model and by a run pruned from it, both
 * in llama.cpp from GGUF files (exported into the GGUF cache when not there yet), so a person reads
 * what pruning did to real text. Greedy decoding: the two texts differ only by the weights.
 */
import { PruneLensError } from '../errors';
import { isGgufType, GGUF_TYPES, type GgufType } from '../export/gguf/ggml-types';
import { throwIfCancelled, type RunControl } from '../progress';
import { denseModelOf } from './export-run-gguf';
import { cachedGguf } from './gguf-cache';
import { llamaGenerate, llamaRuntime, loadGguf, loadLlama, type Generation } from './llama-client';

export const TRY_TOKENS = 64;

export interface TryRunOptions extends RunControl {
  /** The pruned run's folder; its prunelens.json names the dense model. */
  model: string;
  prompt: string;
  maxTokens?: number;
  type?: string;
}

export interface TriedModel extends Generation {
  model: string;
  file: string;
}

export interface TryRunResult {
  prompt: string;
  type: GgufType;
  maxTokens: number;
  runtime: string;
  dense: TriedModel;
  pruned: TriedModel;
}

export async function tryRun(options: TryRunOptions): Promise<TryRunResult> {
  const type = options.type ?? 'f16';
  if (!isGgufType(type)) throw new PruneLensError('usage', `--type must be one of ${GGUF_TYPES.join(', ')}; got "${type}"`);
  const maxTokens = options.maxTokens ?? TRY_TOKENS;
  if (!Number.isInteger(maxTokens) || maxTokens < 1 || maxTokens > 4096) throw new PruneLensError('usage', `--tokens must be an integer in [1, 4096], got ${maxTokens}`);
  if (options.prompt.trim() === '') throw new PruneLensError('usage', 'the prompt is empty; type the start of a text for both models to continue');
  const dense = await denseModelOf(options.model);
  // llama.cpp first: when it cannot start, nothing is exported for nothing.
  const llama = await loadLlama();
  try {
    const models = { dense, pruned: options.model };
    const sides = ['dense', 'pruned'] as const;
    const files = { dense: '', pruned: '' };
    for (const side of sides) files[side] = (await cachedGguf(models[side], type, options)).file;
    const result: Partial<Record<(typeof sides)[number], TriedModel>> = {};
    for (const [i, side] of sides.entries()) {
      throwIfCancelled(options.signal);
      const model = await loadGguf(llama, files[side]);
      try {
        result[side] = { model: models[side], file: files[side], ...(await llamaGenerate(model, options.prompt, maxTokens, options.signal)) };
      } finally {
        await model.dispose();
      }
      options.onProgress?.({ type: 'stage', stage: 'generate in llama.cpp', done: i + 1, total: sides.length, detail: side });
    }
    return { prompt: options.prompt, type, maxTokens, runtime: await llamaRuntime(llama), dense: result.dense!, pruned: result.pruned! };
  } finally {
    await llama.dispose();
  }
}

/** A prompt from a text: the first words of its first paragraph that starts with a capital (the file may begin mid-sentence). */
export function promptFromText(text: string, words = 8): string {
  const paragraphs = text.split(/\n\s*\n/).map((p) => p.trim().replace(/\s+/g, ' '));
  const start = paragraphs.slice(1).find((p) => /^[A-Z]/.test(p)) ?? paragraphs[0] ?? '';
  return start.split(' ').slice(0, words).join(' ');
}
