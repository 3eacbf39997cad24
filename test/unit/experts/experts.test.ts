/**
 * Expert statistics and expert removal on small random MoE checkpoints, against the float64 reference
 * (test/reference/moe-f64.ts), which routes token by token as the Hugging Face code does.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { drawCalibration } from '../../../src/engine/calibrate/calibration-data';
import { pruneExperts } from '../../../src/engine/experts/expert-prune';
import { computeExpertStats, expertStatsOf, type ExpertStats } from '../../../src/engine/experts/expert-stats';
import { evaluateModel } from '../../../src/engine/evaluate/evaluate-model';
import { withModelSession } from '../../../src/engine/model/model-session';
import { TextTokenizer } from '../../../src/engine/text/tokenizer';
import { readTextFile } from '../../../src/engine/text/text-file';
import { moeLogits } from '../../reference/moe-f64';
import { referenceMagnitude, referenceWanda, wandaStat } from '../../reference/pruning-f64';
import { pruneModel } from '../../../src/engine/prune/prune-model';
import { DEFAULT_SETTINGS } from '../../../src/engine/prune/spec';
import { loadF32Tensors } from '../../reference/safetensors-minimal';
import { EVAL_TEXT, SHARED_DATA, tempDir } from '../../helpers/fixtures';
import { writeTinyCheckpoint } from '../../helpers/tiny-checkpoint';
import { MOE_CASES } from '../../helpers/moe-configs';

const CALIB_TEXT = path.join(SHARED_DATA, 'tinystories', 'calibration.txt');
const RUNTIME = { provider: 'cpu' as const };
const CALIBRATION = { file: CALIB_TEXT, nsamples: 3, seqlen: 32, seed: 0 };

/** A MoE case with the fixture tokenizer's vocabulary, so real text can run through it. */
async function tinyMoe(name: string, seed = 7): Promise<{ dir: string; config: Record<string, unknown> }> {
  const config = { ...MOE_CASES[name]!, vocab_size: 512 };
  const dir = path.join(tempDir(), name.replace(/\W+/g, '-'));
  await writeTinyCheckpoint(dir, config, seed);
  return { dir, config };
}

function weightsOf(dir: string) {
  const tensors = loadF32Tensors(path.join(dir, 'model.safetensors'));
  return (n: string) => tensors.get(n);
}

/** Per layer and expert: routed count, weight sum and REAP sum, from the reference's own routing. */
function referenceSums(config: Record<string, unknown>, dir: string, ids: Int32Array, nsamples: number, seqlen: number): Map<number, Float64Array[]> {
  const w = weightsOf(dir);
  const sums = new Map<number, Float64Array[]>();
  for (let s = 0; s < nsamples; s++) {
    moeLogits(config, w, Array.from(ids.subarray(s * seqlen, (s + 1) * seqlen)), (layer, _t, j, g, norm) => {
      if (!sums.has(layer)) sums.set(layer, [0, 1, 2].map(() => new Float64Array(64)));
      const [count, weight, reap] = sums.get(layer)!;
      count![j]! += 1;
      weight![j]! += g;
      reap![j]! += g * norm;
    });
  }
  return sums;
}

describe('expert statistics', () => {
  for (const name of ['mixtral', 'qwen2_moe']) {
    it(`${name}: routed counts, mean weights and REAP equal the float64 reference's routing`, async () => {
      const { dir, config } = await tinyMoe(name);
      const { stats, ids } = await withModelSession(dir, RUNTIME, async (session) => {
        const calibration = await drawCalibration(session.tokenizer, CALIBRATION, {}, session.checkpoint.config);
        return { stats: await computeExpertStats(session, calibration, {}), ids: calibration.ids };
      });
      const reference = referenceSums(config, dir, ids, CALIBRATION.nsamples, CALIBRATION.seqlen);
      // Qwen2-MoE's layer 1 is dense (mlp_only_layers): no statistics there.
      assert.deepEqual(stats.layers.map((l) => l.layer), [...reference.keys()].sort());
      const tokens = CALIBRATION.nsamples * CALIBRATION.seqlen;
      for (const layer of stats.layers) {
        const [count, weight, reap] = reference.get(layer.layer)!;
        let routed = 0;
        layer.experts.forEach((e, j) => {
          assert.equal(e.routed, count![j], `layer ${layer.layer} expert ${j}: routed`);
          routed += e.routed;
          assert.ok(Math.abs(e.frequency - count![j]! / tokens) < 1e-12);
          const mean = count![j]! > 0 ? weight![j]! / count![j]! : 0;
          const meanReap = count![j]! > 0 ? reap![j]! / count![j]! : 0;
          assert.ok(Math.abs(e.meanWeight - mean) < 1e-5, `layer ${layer.layer} expert ${j}: mean weight ${e.meanWeight} vs ${mean}`);
          assert.ok(Math.abs(e.reap - meanReap) < 1e-5 * Math.max(1, meanReap), `layer ${layer.layer} expert ${j}: REAP ${e.reap} vs ${meanReap}`);
        });
        assert.equal(routed, tokens * stats.topK);
      }
    });
  }

  it('a dense model has no experts: a usage error naming the model type', async () => {
    await assert.rejects(expertStatsOf({ model: path.resolve('models', 'stories260K'), calibration: CALIBRATION, runtime: RUNTIME }), (err: Error & { kind?: string }) => {
      assert.equal(err.kind, 'usage');
      assert.match(err.message, /model_type "llama" has no experts/);
      return true;
    });
  });
});

describe('expert removal', () => {
  it('mixtral, half the experts by REAP: a smaller model the reference reads, with the reported perplexity on reopening', async () => {
    const { dir, config } = await tinyMoe('mixtral');
    const out = path.join(path.dirname(dir), 'experts-50');
    const evaluation = { file: EVAL_TEXT, seqlen: 32, maxWindows: 3 };
    const record = await pruneExperts({ model: dir, out, target: { ratio: 0.5, metric: 'reap', seed: 0 }, calibration: CALIBRATION, evaluation, runtime: RUNTIME });

    const written = JSON.parse(fs.readFileSync(path.join(out, 'config.json'), 'utf8')) as Record<string, unknown>;
    assert.equal(written.num_local_experts, 4);
    assert.equal(written.num_experts_per_tok, 2);
    assert.equal(record.experts.count, 4);

    // The removed experts are each layer's lowest REAP; the kept ones are copied unchanged, renumbered, with their router rows.
    const stats = JSON.parse(fs.readFileSync(path.join(out, 'prunelens-experts.json'), 'utf8')) as ExpertStats;
    const source = weightsOf(dir);
    const result = weightsOf(out);
    for (const layer of stats.layers) {
      const order = layer.experts.map((e, j) => [e.reap, j] as const).sort((a, b) => a[0] - b[0] || a[1] - b[1]);
      const removed = order.slice(0, 4).map(([, j]) => j).sort((a, b) => a - b);
      assert.deepEqual(record.experts.removed[String(layer.layer)], removed);
      const kept = [0, 1, 2, 3, 4, 5, 6, 7].filter((j) => !removed.includes(j));
      const p = `model.layers.${layer.layer}.block_sparse_moe.`;
      kept.forEach((j, i) => {
        for (const w of ['w1', 'w2', 'w3']) assert.deepEqual(result(`${p}experts.${i}.${w}.weight`)!.data, source(`${p}experts.${j}.${w}.weight`)!.data);
        assert.deepEqual(result(`${p}gate.weight`)!.data.subarray(i * 64, (i + 1) * 64), source(`${p}gate.weight`)!.data.subarray(j * 64, (j + 1) * 64));
      });
      assert.equal(result(`${p}experts.4.w1.weight`), undefined);
    }
    assert.ok(record.parameters.after < record.parameters.before);

    // Reopened, the engine measures the perplexity the record reports...
    const again = await evaluateModel({ model: out, textFile: EVAL_TEXT, seqlen: 32, maxWindows: 3, runtime: RUNTIME });
    assert.ok(Math.abs(again.ppl - record.perplexity.pruned!) < 1e-9 * again.ppl, `${again.ppl} vs ${record.perplexity.pruned}`);
    // ... and the float64 reference, reading the written config and weights, agrees.
    const ids = (await TextTokenizer.load(out)).encode(await readTextFile(EVAL_TEXT));
    const smaller = { ...config, ...written };
    const w = weightsOf(out);
    let nll = 0;
    for (let s = 0; s < 3; s++) {
      const window = Array.from(ids.subarray(s * 32, (s + 1) * 32));
      const logits = moeLogits(smaller, w, window);
      for (let t = 0; t < 31; t++) {
        const row = logits.subarray(t * 512, (t + 1) * 512);
        const max = Math.max(...row);
        nll += Math.log(row.reduce((a, v) => a + Math.exp(v - max), 0)) + max - row[window[t + 1]!]!;
      }
    }
    const referencePpl = Math.exp(nll / (3 * 31));
    assert.ok(Math.abs(referencePpl - again.ppl) < 1e-4 * referencePpl, `reference ${referencePpl} vs engine ${again.ppl}`);
  });

  it('qwen3_moe with top-8 of 8 experts: removing a quarter lowers num_experts_per_tok to the kept count; dense layers untouched', async () => {
    const { dir } = await tinyMoe('qwen3_moe');
    const edited = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
    fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ ...edited, num_experts_per_tok: 8 }));
    const out = path.join(path.dirname(dir), 'q-experts-25');
    const record = await pruneExperts({ model: dir, out, target: { ratio: 0.25, metric: 'random', seed: 3 }, runtime: RUNTIME });
    const written = JSON.parse(fs.readFileSync(path.join(out, 'config.json'), 'utf8')) as Record<string, unknown>;
    assert.equal(written.num_experts, 6);
    assert.equal(written.num_experts_per_tok, 6);
    assert.equal(record.experts.topK, 6);
    assert.deepEqual(Object.values(record.experts.removed).map((r) => r.length), [2, 2]);
  });
});

describe('unstructured pruning inside experts', () => {
  it('mixtral, Wanda 50%: each expert of the first block by its routed tokens only, as the float64 reference routes them; starved experts by magnitude, logged', async () => {
    const { dir, config } = await tinyMoe('mixtral', 5);
    const out = path.join(path.dirname(dir), 'wanda-50');
    const calibration = { file: CALIB_TEXT, nsamples: 6, seqlen: 48, seed: 0 };
    const warnings: string[] = [];
    await pruneModel({
      model: dir, out, spec: { ...DEFAULT_SETTINGS, method: 'wanda', sparsity: 0.5, include: [], exclude: [] }, calibration, runtime: RUNTIME,
      log: { info: () => undefined, warn: (m) => warnings.push(m) },
    });
    // The reference's routing of the calibration windows through the dense first block.
    const ids = await withModelSession(dir, RUNTIME, async (s) => (await drawCalibration(s.tokenizer, calibration, {}, s.checkpoint.config)).ids);
    const source = weightsOf(dir);
    const inputs = Array.from({ length: 8 }, () => ({ x: [] as number[], h: [] as number[], count: 0 }));
    for (let s = 0; s < calibration.nsamples; s++) {
      moeLogits(config, source, Array.from(ids.subarray(s * 48, (s + 1) * 48)), (layer, _t, j, _g, _n, x, h) => {
        if (layer !== 0) return;
        inputs[j]!.x.push(...x);
        inputs[j]!.h.push(...h);
        inputs[j]!.count++;
      });
    }
    const result = weightsOf(out);
    let wanda = 0;
    let magnitude = 0;
    inputs.forEach(({ x, h, count }, j) => {
      for (const [name, rows, cols, rowsIn] of [['w1', 48, 64, x], ['w3', 48, 64, x], ['w2', 64, 48, h]] as const) {
        const full = `model.layers.0.block_sparse_moe.experts.${j}.${name}.weight`;
        const W = source(full)!.data;
        const starved = count < cols;
        const { mask } = starved ? referenceMagnitude(W, rows, cols, 0.5) : referenceWanda(W, rows, cols, wandaStat([Float64Array.from(rowsIn)], cols), 0.5);
        const written = result(full)!.data;
        const mismatched = mask.reduce((n, m, i) => n + (m === 0 ? Number(written[i] !== 0) : Number(written[i] === 0)), 0);
        assert.equal(mismatched, 0, `expert ${j} ${name} (${count} tokens, ${starved ? 'magnitude' : 'Wanda'}): ${mismatched} weights pruned differently`);
        if (starved) {
          magnitude++;
          assert.ok(warnings.some((m) => m.includes(`experts.${j}.${name}.weight`) && m.includes(`routed ${count} calibration tokens`)), `no warning for expert ${j} ${name}`);
        } else {
          wanda++;
        }
      }
    });
    // 288 calibration tokens over 8 experts: some experts get enough for Wanda, some do not (14 and 10 linears here).
    assert.ok(wanda > 0 && magnitude > 0, `Wanda on ${wanda} linears, magnitude on ${magnitude}: both paths must be exercised`);
  });
});
