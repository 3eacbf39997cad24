/**
 * The peak memory predicted before a run of a mixture of experts, against the peak the kernel
 * measured for it (the CLI's own process), for each MoE job: evaluation, expert statistics and
 * expert removal with its evaluations. The random Qwen3-MoE is sized so the experts' working sets
 * (every expert runs on every token) are most of the peak: without them the prediction misses by
 * more than half.
 */
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { before, describe, it, type TestContext } from 'node:test';
import { predictPeakMemory } from '../../../src/engine/memory-plan';
import { parseModelConfig } from '../../../src/engine/model/config';
import { writeRandomCheckpoint } from '../../../scripts/random-checkpoint';
import { cli, json } from '../../helpers/cli';
import { EVAL_TEXT, FIXTURE_MODEL, SHARED_DATA, tempDir } from '../../helpers/fixtures';
import { MOE_CASES } from '../../helpers/moe-configs';

const MOE_FIXTURE = path.resolve('models', 'tinystories-moe-379K');
const CALIB_TEXT = path.join(SHARED_DATA, 'tinystories', 'calibration.txt');
/** The tolerance of the dense model's check (test/unit/evaluate/memory-plan.test.ts). */
const TOLERANCE = 0.25;

// Qwen3-MoE's fields at 256 wide, 32 experts of 128, top-4; the embedded tokenizer's 512 ids.
const QWEN3_MOE = {
  ...MOE_CASES.qwen3_moe!, hidden_size: 256, num_attention_heads: 4, num_key_value_heads: 2, head_dim: 64,
  moe_intermediate_size: 128, num_experts: 32, num_experts_per_tok: 4, vocab_size: 512,
};

function measure(...args: string[]): { measured: number; predicted: number } {
  const r = cli(...args, '--json');
  assert.equal(r.code, 0, r.stdout + r.stderr);
  const { peak_rss_mb: measured, predicted_peak_mb: predicted } = json(r.stdout) as { peak_rss_mb: number; predicted_peak_mb: number };
  return { measured, predicted };
}

function assertClose(t: TestContext, { measured, predicted }: { measured: number; predicted: number }): void {
  t.diagnostic(`predicted ${predicted.toFixed(0)} MiB, measured ${measured.toFixed(0)} MiB`);
  assert.ok(Math.abs(predicted - measured) / measured < TOLERANCE, `predicted ${predicted.toFixed(0)} MiB, measured ${measured.toFixed(0)} MiB`);
}

describe('MoE peak memory, predicted against measured', () => {
  // Made at the top level: a folder made inside a hook is removed when the hook ends.
  const random = path.join(tempDir(), 'qwen3-moe');
  before(async () => {
    await writeRandomCheckpoint(random, QWEN3_MOE, { dtype: 'BF16', seed: 5, tokenizerFrom: FIXTURE_MODEL });
  });

  it('the experts are most of a sparse model\'s evaluation working set', () => {
    const cfg = parseModelConfig(QWEN3_MOE, 'config.json');
    const job = { evalWindows: 16, evalSeqlen: 256 };
    const dense = parseModelConfig({ ...QWEN3_MOE, model_type: 'qwen3', architectures: ['Qwen3ForCausalLM'], intermediate_size: 128 }, 'config.json');
    const part = (c: typeof cfg) => predictPeakMemory(c, 2, job).parts.find((p) => p.what === 'evaluation working set')!.bytes;
    // Per token, 32 experts x (128 + 256) floats, three copies of them at the peak.
    assert.ok(part(cfg) - part(dense) > 3 * 4 * 256 * 32 * (128 + 256), `${part(cfg)} vs ${part(dense)}`);
  });

  for (const [name, model] of [['the trained fixture', () => MOE_FIXTURE], ['a random Qwen3-MoE', () => random]] as const) {
    it(`${name}: evaluation`, (t) => assertClose(t, measure('eval', model(), '--text', EVAL_TEXT, '--seqlen', '256', '--max-windows', '40')));
    it(`${name}: expert statistics`, (t) => assertClose(t, measure('experts', model(), '--calib', CALIB_TEXT, '--nsamples', '16', '--seqlen', '256')));
    it(`${name}: removing half the experts by REAP, evaluated before and after`, (t) => {
      const out = path.join(tempDir(), 'smaller');
      assertClose(t, measure('prune', model(), '--structured', 'experts', '--ratio', '0.5', '--metric', 'reap', '--calib', CALIB_TEXT, '--nsamples', '16', '--seqlen', '256', '--eval', EVAL_TEXT, '--max-windows', '8', '--out', out));
    });
  }
});
