import assert from 'node:assert/strict';
import type { Llama } from 'node-llama-cpp';
import { evaluateModel } from '../../src/engine/evaluate/evaluate-model';
import { exportGguf } from '../../src/engine/export/gguf/export-gguf';
import { llamaPerplexity, loadGguf } from '../../src/engine/llamacpp/llama-client';
import { writeTinyCheckpoint } from './tiny-checkpoint';

/**
 * Writes a random checkpoint of `config` into `folder`, exports it to an F32 GGUF beside it, and
 * asserts that llama.cpp's perplexity on the first 2 windows of 128 tokens of `text` is within 0.5%
 * of PruneLens's on the same token ids.
 */
export async function assertLlamaCppPerplexityAgrees(llama: Llama, folder: string, config: Record<string, unknown>, text: string): Promise<void> {
  await writeTinyCheckpoint(folder, config, 11);
  const file = `${folder}.gguf`;
  await exportGguf({ model: folder, type: 'f32', out: file });
  const ours = await evaluateModel({ model: folder, textFile: text, seqlen: 128, maxWindows: 2, runtime: { provider: 'cpu' } });
  const model = await loadGguf(llama, file);
  try {
    const theirs = await llamaPerplexity(model, Array.from(ours.windowIds), 128, 2);
    assert.ok(Math.abs(theirs.ppl / ours.ppl - 1) < 0.005, `llama.cpp ${theirs.ppl} vs PruneLens ${ours.ppl}`);
  } finally {
    await model.dispose();
  }
}
