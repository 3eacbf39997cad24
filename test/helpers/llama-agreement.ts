import assert from 'node:assert/strict';
import * as path from 'node:path';
import type { Llama } from 'node-llama-cpp';
import { evaluateModel } from '../../src/engine/evaluate/evaluate-model';
import { exportGguf } from '../../src/engine/export/gguf/export-gguf';
import { writeSafetensors } from '../../src/engine/io/safetensors-writer';
import { llamaPerplexity, loadGguf } from '../../src/engine/llamacpp/llama-client';
import { expectedTensorShapes, parseModelConfig } from '../../src/engine/model/config';
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

/**
 * Per-token agreement, by GGUF type: the mean |NLL difference| (nats) over all targets, and the largest.
 * The scaled models are confidently wrong, so a token whose top two logits nearly tie can move by a few
 * tenths when llama.cpp rounds (f16 weights; its CPU GELU looks up an f16 table even in f32 models);
 * the mean stays two orders below the per-token spread, where a mapping error moves most tokens by nats.
 * Measured (F32, 4 windows): exports agree to a mean of 0.001-0.005 nats (f16: 0.003-0.012); PruneLens's
 * own NLL of the same weights under a deliberately wrong reading differs from llama.cpp's by a mean of
 * 0.90 (Gemma 3's local base 10000 for 20000), 1.11 (Gemma 2's window ignored), 2.43 (Phi-3's short
 * factors for the long) and 0.030 nats (Gemma 2's query scale not folded, a perplexity gap of only
 * 0.05% that the 0.5% check alone would pass).
 */
export const TOKEN_TOLERANCE = { f32: { mean: 0.015, max: 0.3 }, f16: { mean: 0.02, max: 0.6 } } as const;
/** The per-token NLL must spread at least this much (standard deviation, nats) for the check to discriminate. */
export const MIN_SPREAD = 1;

/** writeTinyCheckpoint's weights with every matrix multiplied by `scale` (norms and biases as they are), vocabulary 512. */
export async function scaledCheckpoint(dir: string, config: Record<string, unknown>, scale: number): Promise<void> {
  const full = { ...config, vocab_size: 512 };
  const values = await writeTinyCheckpoint(dir, full, 5);
  const shapes = expectedTensorShapes(parseModelConfig(full, dir));
  for (const [name, v] of values) if (shapes.get(name)!.length === 2) v.forEach((x, i) => (v[i] = x * scale));
  await writeSafetensors(
    path.join(dir, 'model.safetensors'),
    [...shapes].map(([name, shape]) => ({ name, dtype: 'F32' as const, shape })),
    (spec) => new Uint8Array(values.get(spec.name)!.buffer),
  );
}

export function std(values: ArrayLike<number>): number {
  const n = values.length;
  let mean = 0;
  for (let i = 0; i < n; i++) mean += values[i]! / n;
  let v = 0;
  for (let i = 0; i < n; i++) v += (values[i]! - mean) ** 2 / n;
  return Math.sqrt(v);
}

export interface Agreement {
  /** |llama.cpp's perplexity / PruneLens's - 1|. */
  gap: number;
  /** Mean and largest |NLL difference| per target token, nats. */
  mean: number;
  worst: number;
  /** |NLL difference| of every target token. */
  differences: Float64Array;
}

export function agreement(ours: { ppl: number; tokenNll: ArrayLike<number> }, theirs: { ppl: number; tokenNll: ArrayLike<number> }): Agreement {
  let worst = 0;
  let mean = 0;
  const differences = new Float64Array(ours.tokenNll.length);
  for (let i = 0; i < ours.tokenNll.length; i++) {
    const d = Math.abs(theirs.tokenNll[i]! - ours.tokenNll[i]!);
    differences[i] = d;
    worst = Math.max(worst, d);
    mean += d / ours.tokenNll.length;
  }
  return { gap: Math.abs(theirs.ppl / ours.ppl - 1), mean, worst, differences };
}

/**
 * The check: perplexity within 0.5%, and the per-token NLL within TOKEN_TOLERANCE, with at most
 * `outliers` tokens beyond its largest difference (mixture-of-experts routing: see gguf-moe.llama.ts);
 * the failures, said.
 */
export function disagreements(a: Agreement, type: keyof typeof TOKEN_TOLERANCE, outliers = 0): string[] {
  const beyond = a.differences.filter((d) => d >= TOKEN_TOLERANCE[type].max).length;
  return [
    ...(a.gap < 0.005 ? [] : [`perplexity differs by ${(a.gap * 100).toFixed(3)}%`]),
    ...(a.mean < TOKEN_TOLERANCE[type].mean ? [] : [`per-token NLL differs by ${a.mean.toFixed(4)} nats on average`]),
    ...(beyond <= outliers ? [] : [`${beyond} token(s) differ by ${TOKEN_TOLERANCE[type].max} nats or more (largest ${a.worst.toFixed(4)}), ${outliers} allowed`]),
  ];
}
