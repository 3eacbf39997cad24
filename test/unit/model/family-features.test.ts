/**
 * What works for Llama works for every family: Wanda, SparseGPT, magnitude and N:M pruning, an OWL
 * plan, structured removal of heads and channels, and of layers, each written out, reopened by the
 * engine and re-evaluated to the perplexity the job reported. Structured outputs are also run through
 * the family's float64 reference (written from the Hugging Face modeling code) on the *written*
 * config.json, which shows the config says what the family's own loader needs to read the weights.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { makePlan } from '../../../src/engine/allocate/make-plan';
import { evaluateModel } from '../../../src/engine/evaluate/evaluate-model';
import { Checkpoint } from '../../../src/engine/io/checkpoint';
import { DecoderRunner } from '../../../src/engine/model/decoder-runner';
import { pruneModel } from '../../../src/engine/prune/prune-model';
import type { PruneSpec } from '../../../src/engine/prune/spec';
import { structuredPrune } from '../../../src/engine/structured/structured-prune';
import type { StructuredTarget } from '../../../src/engine/structured/select';
import { loadF32Tensors } from '../../reference/safetensors-minimal';
import { FAMILY_CASES } from '../../helpers/family-configs';
import { EVAL_TEXT, SHARED_DATA, tempDir } from '../../helpers/fixtures';
import { writeTinyCheckpoint } from '../../helpers/tiny-checkpoint';

const calibration = { file: path.join(SHARED_DATA, 'tinystories', 'calibration.txt'), nsamples: 4, seqlen: 32, seed: 0 };
const evaluation = { file: EVAL_TEXT, seqlen: 32, maxWindows: 2 };
const runtime = { provider: 'cpu' as const };

/** One case per family, every feature on; the vocabulary widened to the fixture tokenizer's 512 ids. */
const FAMILIES = ['llama rope llama3', 'qwen3 (biases, yarn, sliding window)', 'gemma', 'gemma2', 'gemma3_text', 'phi3 (longrope, partial rotary, GQA)'];

function spec(method: PruneSpec['method'], extra: Partial<PruneSpec> = {}): PruneSpec {
  return { method, sparsity: 0.5, include: [], exclude: [], blocksize: 128, percdamp: 0.01, ...extra };
}

function target(parts: Partial<StructuredTarget>): StructuredTarget {
  return { heads: false, channels: false, layers: false, ratio: 0.2, seed: 0, ...parts, metrics: { heads: 'output', channels: 'flap', layers: 'bi' } };
}

function zeros(data: ArrayLike<number>, from: number, to: number): number {
  let n = 0;
  for (let i = from; i < to; i++) if (data[i] === 0) n++;
  return n;
}

/** The output reopened by the engine and evaluated again gives the perplexity the job reported. */
async function reopenedPerplexity(out: string): Promise<number> {
  const result = await evaluateModel({ model: out, textFile: EVAL_TEXT, seqlen: evaluation.seqlen, maxWindows: evaluation.maxWindows, runtime });
  return result.ppl;
}

/** Max |engine − float64 reference| over the logits of one sequence, the reference reading the written config.json. */
async function referenceGap(dir: string, reference: (typeof FAMILY_CASES)[string]['reference'], ids: number[]): Promise<number> {
  const config = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
  const tensors = loadF32Tensors(path.join(dir, 'model.safetensors'));
  const expected = reference(config, (n) => tensors.get(n), ids);
  const checkpoint = await Checkpoint.open(dir);
  const runner = await DecoderRunner.create(checkpoint, runtime);
  try {
    const hidden = new Float32Array(ids.length * runner.config.hiddenSize);
    await runner.embed(ids, hidden, ids.length);
    let h: Float32Array = hidden;
    for (let layer = 0; layer < runner.config.numLayers; layer++) [h] = (await runner.block.run(runner.block.feeds(await checkpoint.readBlock(layer), layer), h, 1, ids.length)) as [Float32Array];
    const logits = await runner.logits(h, 1, ids.length);
    let gap = 0;
    for (let i = 0; i < logits.length; i++) gap = Math.max(gap, Math.abs(logits[i]! - expected[i]!));
    return gap;
  } finally {
    await runner.release();
    await checkpoint.close();
  }
}

/** Row ranges [from, to) of each separate matrix a stored linear holds (q, k, v in qkv_proj; gate, up in gate_up_proj). */
function parts(name: string, rows: number, cfg: Record<string, number>): [number, number][] {
  const hd = cfg.head_dim ?? cfg.hidden_size! / cfg.num_attention_heads!;
  if (name.endsWith('qkv_proj.weight')) {
    const q = cfg.num_attention_heads! * hd;
    const kv = (cfg.num_key_value_heads ?? cfg.num_attention_heads!) * hd;
    return [[0, q], [q, q + kv], [q + kv, rows]];
  }
  if (name.endsWith('gate_up_proj.weight')) return [[0, rows / 2], [rows / 2, rows]];
  return [[0, rows]];
}

const ids = Array.from({ length: 40 }, (_, i) => (i * 37 + 11) % 512);

describe('every feature, for every family', () => {
  for (const family of FAMILIES) {
    const { config: base, reference } = FAMILY_CASES[family]!;
    const config = { ...base, vocab_size: 512 };
    const model = path.join(tempDir(), 'model');
    const ready = writeTinyCheckpoint(model, config, 3);
    const layers = base.num_hidden_layers as number;

    it(`${family}: magnitude prunes each matrix (of a fused tensor too) at its own threshold`, async () => {
      await ready;
      const out = path.join(tempDir(), 'magnitude');
      await pruneModel({ model, out, spec: spec('magnitude'), runtime });
      for (const [name, t] of loadF32Tensors(path.join(out, 'model.safetensors'))) {
        if (!/_proj\.weight$/.test(name)) continue;
        const cols = t.shape[1]!;
        for (const [from, to] of parts(name, t.shape[0]!, config as Record<string, number>)) {
          assert.equal(zeros(t.data, from * cols, to * cols), Math.floor(((to - from) * cols) / 2), `${name} rows ${from}..${to}`);
        }
      }
    });

    it(`${family}: Wanda 50% prunes half of every row; reopened, the perplexity is the reported one`, async () => {
      await ready;
      const out = path.join(tempDir(), 'wanda');
      const record = await pruneModel({ model, out, spec: spec('wanda'), calibration, evaluation, runtime });
      assert.equal(record.measured.sparsity, 0.5);
      for (const [name, t] of loadF32Tensors(path.join(out, 'model.safetensors'))) {
        if (!/_proj\.weight$/.test(name)) continue;
        const [rows, cols] = t.shape as [number, number];
        for (let r = 0; r < rows; r++) assert.equal(zeros(t.data, r * cols, (r + 1) * cols), Math.floor(cols / 2), `${name} row ${r}`);
      }
      assert.notEqual(record.perplexity.pruned, record.perplexity.dense);
      assert.equal(await reopenedPerplexity(out), record.perplexity.pruned);
    });

    it(`${family}: SparseGPT 50% and 2:4 (Wanda) give the exact counts`, async () => {
      await ready;
      const out = path.join(tempDir(), 'sparsegpt');
      const record = await pruneModel({ model, out, spec: spec('sparsegpt'), calibration, runtime });
      assert.equal(record.measured.sparsity, 0.5);
      for (const [name, t] of loadF32Tensors(path.join(out, 'model.safetensors'))) {
        if (!/_proj\.weight$/.test(name)) continue;
        // Each matrix of a fused tensor gets its own mask (per 128-column block over its rows).
        const cols = t.shape[1]!;
        for (const [from, to] of parts(name, t.shape[0]!, config as Record<string, number>)) {
          assert.equal(zeros(t.data, from * cols, to * cols), ((to - from) * cols) / 2, `${name} rows ${from}..${to}`);
        }
      }

      const nmOut = path.join(tempDir(), 'nm');
      await pruneModel({ model, out: nmOut, spec: spec('wanda', { nm: { n: 2, m: 4 } }), calibration, runtime });
      for (const [name, t] of loadF32Tensors(path.join(nmOut, 'model.safetensors'))) {
        if (!/_proj\.weight$/.test(name)) continue;
        for (let g = 0; g < t.data.length; g += 4) assert.equal(zeros(t.data, g, g + 4), 2, `${name} group at ${g}`);
      }
    });

    it(`${family}: an OWL plan keeps every block within the band around the target`, async () => {
      await ready;
      // M = 2: random weights have few scores above 5x their mean, and OWL needs outliers to tell blocks apart.
      const plan = await makePlan({ model, spec: spec('wanda'), allocation: { kind: 'owl', M: 2, lambda: 0.08 }, calibration, runtime });
      assert.equal(plan.blocks.length, layers);
      for (const block of plan.blocks) assert.ok(Math.abs(block.sparsity - 0.5) <= 0.08 + 1e-9, `layer ${block.layer}: ${block.sparsity}`);
      assert.ok(new Set(plan.blocks.map((b) => b.sparsity)).size > 1, 'the blocks get different ratios');
    });

    it(`${family}: structured heads and channels, then layers: the written config reads back and matches the reference`, async () => {
      await ready;
      const out = path.join(tempDir(), 'heads-channels');
      const record = await structuredPrune({ model, out, target: target({ heads: true, channels: true }), calibration, evaluation, runtime });
      assert.ok(record.config.numKvHeads < (base.num_key_value_heads as number) || record.config.intermediateSize < (base.intermediate_size as number));
      assert.equal(await reopenedPerplexity(out), record.perplexity.pruned);
      const gap = await referenceGap(out, reference, ids);
      assert.ok(gap < 1e-4, `heads+channels output against the float64 reference: ${gap}`);

      const layersOut = path.join(tempDir(), 'layers');
      const removed = await structuredPrune({ model, out: layersOut, target: target({ layers: true }), calibration, evaluation, runtime });
      assert.ok(removed.removed.layers.length >= 1);
      assert.equal(removed.config.numLayers, layers - removed.removed.layers.length);
      assert.equal(await reopenedPerplexity(layersOut), removed.perplexity.pruned);
      const layerGap = await referenceGap(layersOut, reference, ids);
      assert.ok(layerGap < 1e-4, `layer-removed output against the float64 reference: ${layerGap}`);
    });
  }
});
