/**
 * GGUF export of the families beyond Llama (qwen3, gemma, gemma2, gemma3, phi3) checked in llama.cpp
 * itself (`npm run test:llama`). Each family is a small random checkpoint with the features its
 * released models have and llama.cpp implements (q/k norms, sandwich norms, soft caps, sliding windows
 * with local/global rotary bases, YaRN, longrope with partial rotary, fused projections, a
 * query_pre_attn_scalar unlike head_dim), made the way a person makes it (`prunelens prune`, `prunelens
 * export`): dense, Wanda 50% and structured, each at F32 and F16.
 *
 * Random weights at the usual initial scale give near-uniform next-token distributions, where any
 * model scores a perplexity close to the vocabulary size and a wrong mapping can hide inside 0.5%. So
 * the linear weights and embeddings are scaled up (SCALE) until the model is confidently wrong in
 * different ways per token, the spread of the per-token NLL is asserted to be large (the check is
 * discriminating), and llama.cpp's NLL is compared token by token, not only on the mean.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Llama } from 'node-llama-cpp';
import { evaluateModel } from '../../src/engine/evaluate/evaluate-model';
import { TextTokenizer } from '../../src/engine/text/tokenizer';
import { llamaPerplexity, llamaTokenize, loadGguf, loadLlama } from '../../src/engine/llamacpp/llama-client';
import { FAMILY_CASES } from '../helpers/family-configs';
import { agreement, disagreements, MIN_SPREAD, scaledCheckpoint, std } from '../helpers/llama-agreement';

const SEQLEN = 256;
const WINDOWS = Number(process.env.PRUNELENS_LLAMA_WINDOWS ?? 4);
const TEXT = path.resolve('data', 'tinystories', 'eval.txt');
/** Multiplies every matrix of writeTinyCheckpoint's weights (uniform ±0.15), unless a case says otherwise. */
const SCALE = 4;

/**
 * The family-features configs (test/helpers/family-configs.ts) with what llama.cpp cannot do switched
 * off and said why; the vocabulary widened to the fixture tokenizer's 512 ids.
 */
const CASES: Record<string, { config: Record<string, unknown>; structured: string; scale?: number }> = {
  // YaRN stays; llama.cpp's qwen3 has no sliding window and no o_proj bias (no released Qwen3 has either).
  qwen3: {
    config: { ...FAMILY_CASES['qwen3 (biases, yarn, sliding window)']!.config, use_sliding_window: false, sliding_window: null, attention_bias: false },
    structured: 'heads,channels',
  },
  // Without soft caps and with embeddings times √hidden, a smaller scale keeps the logits in a range where perplexity says something.
  gemma: { config: FAMILY_CASES.gemma!.config, structured: 'heads,channels', scale: 2 },
  // Soft caps 2 and 3, window 16 on even layers, query_pre_attn_scalar 24 with head_dim 32 (folded into q).
  gemma2: { config: FAMILY_CASES.gemma2!.config, structured: 'heads,channels' },
  // Gemma 3 has no attention soft cap (llama.cpp's gemma3 neither); five local layers, then a global one
  // (base 1e6, linear 8). The local base is 20000 here, not the releases' 10000, which is also llama.cpp's
  // default: a file that failed to carry it would then fail this check.
  gemma3: { config: { ...FAMILY_CASES.gemma3_text!.config, attn_logit_softcapping: null, rope_local_base_freq: 20000 }, structured: 'heads,channels' },
  // Longrope (long factors: 256 > 64), partial rotary 0.75, GQA, fused projections. llama.cpp's phi3
  // sizes attention by hidden_size, so the structured output removes MLP channels only.
  phi3: { config: FAMILY_CASES['phi3 (longrope, partial rotary, GQA)']!.config, structured: 'channels' },
};

function cli(...args: string[]): Record<string, unknown> {
  const r = spawnSync(process.execPath, [path.resolve('dist', 'cli.js'), ...args, '--json'], { encoding: 'utf8' });
  assert.equal(r.status, 0, `prunelens ${args.join(' ')}: ${r.stdout}${r.stderr}`);
  return JSON.parse(r.stdout) as Record<string, unknown>;
}

describe(`GGUF export of every family checked in llama.cpp (seqlen ${SEQLEN}, first ${WINDOWS} windows, per-token NLL)`, () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'prunelens-gguf-families-'));
  const text = fs.readFileSync(TEXT, 'utf8');
  let llama: Llama;
  before(async () => {
    llama = await loadLlama();
  });
  after(async () => {
    await llama?.dispose();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  for (const [family, { config, structured, scale }] of Object.entries(CASES)) {
    // general.name is the folder's name, and llama.cpp gives a model named "phi3" Phi-3's special-token
    // attributes, failing to load when the vocabulary lacks <|endoftext|> (the fixture's does).
    const dense = path.join(dir, `random-${family.replace('phi3', 'phi')}`);
    const ready = scaledCheckpoint(dense, config, scale ?? SCALE);
    const common = ['--eval', TEXT, '--seqlen', String(SEQLEN), '--max-windows', '1', '--nsamples', '8', '--overwrite'];
    const variants: { name: string; make: () => string }[] = [
      { name: 'dense', make: () => dense },
      { name: 'Wanda 50%', make: () => String(cli('prune', dense, '--method', 'wanda', '--sparsity', '0.5', ...common, '--out', `${dense}-wanda50`).out) },
      { name: `structured ${structured} 20%`, make: () => String(cli('prune', dense, '--structured', structured, '--ratio', '0.2', ...common, '--out', `${dense}-structured`).out) },
    ];
    for (const variant of variants) {
      it(`${family} ${variant.name}: same token ids; per-token NLL and perplexity as PruneLens's at F32 and F16`, async () => {
        await ready;
        const folder = variant.make();
        const ours = await evaluateModel({ model: folder, textFile: TEXT, seqlen: SEQLEN, maxWindows: WINDOWS, runtime: { provider: 'cpu' } });
        assert.equal(ours.windows, WINDOWS);
        const spread = std(ours.tokenNll);
        assert.ok(spread > MIN_SPREAD, `per-token NLL spread ${spread.toFixed(3)} nats: too uniform to discriminate`);
        const ids = Array.from((await TextTokenizer.load(folder)).encode(text));
        for (const type of ['f32', 'f16'] as const) {
          const file = `${folder}-${type}.gguf`;
          cli('export', folder, '--format', 'gguf', '--type', type, '--out', file, '--overwrite');
          const model = await loadGguf(llama, file);
          try {
            assert.deepEqual(llamaTokenize(model, text), ids, 'llama.cpp tokenizes the evaluation text differently');
            const theirs = await llamaPerplexity(model, Array.from(ours.windowIds), SEQLEN, WINDOWS);
            const a = agreement(ours, theirs);
            console.log(
              `${family} ${variant.name} ${type}: PruneLens ${ours.ppl.toFixed(4)}, llama.cpp ${theirs.ppl.toFixed(4)} (${(a.gap * 100).toFixed(3)}%), per-token NLL spread ${spread.toFixed(2)}, difference mean ${a.mean.toFixed(4)} largest ${a.worst.toFixed(4)} nats`,
            );
            assert.deepEqual(disagreements(a, type), [], `${type}: llama.cpp ${theirs.ppl} vs PruneLens ${ours.ppl}`);
          } finally {
            await model.dispose();
          }
        }
      });
    }
  }
});
