/**
 * The trained MoE fixture (models/tinystories-moe-379K, see its SOURCE.md) through the CLI, as a
 * person uses it: its perplexity is the PyTorch trainer's, `experts` reports every expert, and an
 * expert-pruned copy reopens with the perplexity the prune reported. Its expert statistics are
 * recomputed in float64 on its own calibration tokens, as the REAP paper defines the score.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { drawCalibration } from '../../../src/engine/calibrate/calibration-data';
import { selectExperts } from '../../../src/engine/experts/expert-prune';
import { computeExpertStats } from '../../../src/engine/experts/expert-stats';
import { withModelSession } from '../../../src/engine/model/model-session';
import { cli, json } from '../../helpers/cli';
import { EVAL_TEXT, SHARED_DATA, tempDir } from '../../helpers/fixtures';
import { moeLogits } from '../../reference/moe-f64';
import { loadF32Tensors } from '../../reference/safetensors-minimal';

const MOE_MODEL = path.resolve('models', 'tinystories-moe-379K');
const CALIB = path.join(SHARED_DATA, 'tinystories', 'calibration.txt');

describe('the trained MoE fixture (tinystories-moe-379K)', () => {
  it('gives the perplexity of the PyTorch forward it was trained with (first 32 windows of 128)', () => {
    const r = cli('eval', MOE_MODEL, '--text', EVAL_TEXT, '--seqlen', '128', '--max-windows', '32', '--json');
    assert.equal(r.code, 0, r.stderr);
    // training.json's eval_ppl: scripts/train-tiny-moe.py in float64 on the same windows.
    const trained = (JSON.parse(fs.readFileSync(path.join(MOE_MODEL, 'training.json'), 'utf8')) as { eval_ppl: number }).eval_ppl;
    const ppl = json(r.stdout).ppl as number;
    assert.ok(Math.abs(ppl / trained - 1) < 1e-6, `engine ${ppl} vs trainer ${trained}`);
  });

  it('experts --json: every expert of every layer, routing shares summing to top-k', () => {
    const r = cli('experts', MOE_MODEL, '--calib', CALIB, '--nsamples', '8', '--seqlen', '64', '--json');
    assert.equal(r.code, 0, r.stderr);
    const stats = json(r.stdout) as { tokens: number; topK: number; layers: { layer: number; experts: { routed: number; frequency: number; meanWeight: number; reap: number }[] }[] };
    assert.equal(stats.tokens, 512);
    assert.deepEqual(stats.layers.map((l) => l.layer), [0, 1, 2]);
    for (const layer of stats.layers) {
      assert.equal(layer.experts.length, 8);
      const share = layer.experts.reduce((s, e) => s + e.frequency, 0);
      assert.ok(Math.abs(share - stats.topK) < 1e-9, `layer ${layer.layer}: shares sum to ${share}`);
      for (const e of layer.experts) if (e.routed > 0) assert.ok(e.meanWeight > 0 && e.meanWeight <= 1 && e.reap > 0);
    }
  });

  it('prune --structured experts: 2 of 8 experts per layer removed, a smaller Mixtral that reopens with the reported perplexity', () => {
    const out = path.join(tempDir(), 'moe-experts-25');
    const r = cli('prune', MOE_MODEL, '--structured', 'experts', '--ratio', '0.25', '--metric', 'reap', '--calib', CALIB, '--nsamples', '8', '--seqlen', '64', '--eval', EVAL_TEXT, '--max-windows', '8', '--out', out, '--json');
    assert.equal(r.code, 0, r.stderr);
    const record = json(r.stdout) as { ppl: number; ppl_dense: number; params_after: number; params_before: number; removed: Record<string, number[]> };
    assert.deepEqual(Object.values(record.removed).map((e) => e.length), [2, 2, 2]);
    assert.equal((JSON.parse(fs.readFileSync(path.join(out, 'config.json'), 'utf8')) as { num_local_experts: number }).num_local_experts, 6);
    // 2 of 8 experts in 3 layers: 6 x 3 x 64 x 64 weights and 6 router rows of 64.
    assert.equal(record.params_before - record.params_after, 6 * 3 * 64 * 64 + 6 * 64);
    const again = cli('eval', out, '--text', EVAL_TEXT, '--seqlen', '64', '--max-windows', '8', '--json');
    assert.equal(again.code, 0, again.stderr);
    assert.equal(json(again.stdout).ppl, record.ppl);
    assert.ok(record.ppl > record.ppl_dense);
  });

  it('prune --structured experts --remove: unequal lists mask the extra experts; the masked model reopens with the reported perplexity and little routing to them', () => {
    const out = path.join(tempDir(), 'moe-list');
    const r = cli('prune', MOE_MODEL, '--structured', 'experts', '--remove', '0.e3,0.e5,1.e2,2.e1,2.e6,2.e7', '--calib', CALIB, '--nsamples', '16', '--seqlen', '128', '--eval', EVAL_TEXT, '--max-windows', '8', '--out', out, '--json');
    assert.equal(r.code, 0, r.stderr);
    const record = json(r.stdout) as { ppl: number; removed: Record<string, number[]>; masked: Record<string, number[]>; masked_routing: Record<string, number> };
    assert.deepEqual(Object.values(record.removed).map((e) => e.length), [1, 1, 1]);
    assert.deepEqual(Object.keys(record.masked), ['0', '2']);
    assert.equal((JSON.parse(fs.readFileSync(path.join(out, 'config.json'), 'utf8')) as { num_local_experts: number }).num_local_experts, 7);
    // Layer 0 reads nearly raw embeddings, whose router inputs share the least; later layers' masks hold to a few percent.
    assert.ok(record.masked_routing['0']! < 0.15 && record.masked_routing['2']! < 0.05, JSON.stringify(record.masked_routing));
    const again = cli('eval', out, '--text', EVAL_TEXT, '--seqlen', '128', '--max-windows', '8', '--json');
    assert.equal(again.code, 0, again.stderr);
    assert.equal(json(again.stdout).ppl, record.ppl);
  });

  it('prune --structured experts --remove with a bad list: a usage error naming the expert, and no output', () => {
    const out = path.join(tempDir(), 'moe-bad-list');
    const r = cli('prune', MOE_MODEL, '--structured', 'experts', '--remove', '0.e3,3.e1', '--out', out);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /3\.e1: layer 3 does not exist; the model has layers 0-2/);
    assert.doesNotMatch(r.stderr, /\n\s+at /);
    assert.equal(fs.existsSync(out), false);
  });
});

describe('REAP on the trained fixture, against a float64 recomputation', () => {
  it('every expert\'s routed count, mean weight and REAP score, and the experts reap and frequency remove', async () => {
    // REAP (Lasby et al. 2025, eq. for S_j; CerebrasResearch/reap pruning_metrics.py): per layer, the mean
    // over the tokens routed to expert j of g_j(x) * ||f_j(x)||_2, with g_j the gate value the forward applies
    // (Mixtral: softmax over all experts, top-2 renormalised to sum 1) and f_j(x) the expert's unweighted
    // output. The reference routes token by token in float64 on the very windows the engine drew.
    const request = { file: CALIB, nsamples: 16, seqlen: 128, seed: 0 };
    const { stats, ids, cfg } = await withModelSession(MOE_MODEL, { provider: 'cpu' }, async (session) => {
      const calibration = await drawCalibration(session.tokenizer, request, {}, session.checkpoint.config);
      return { stats: await computeExpertStats(session, calibration, {}), ids: calibration.ids, cfg: session.checkpoint.config };
    });
    const config = JSON.parse(fs.readFileSync(path.join(MOE_MODEL, 'config.json'), 'utf8')) as Record<string, unknown>;
    const tensors = loadF32Tensors(path.join(MOE_MODEL, 'model.safetensors'));
    const E = 8;
    const sums = [0, 1, 2].map(() => ({ count: new Float64Array(E), weight: new Float64Array(E), reap: new Float64Array(E) }));
    for (let s = 0; s < request.nsamples; s++) {
      const window = Array.from(ids.subarray(s * request.seqlen, (s + 1) * request.seqlen));
      moeLogits(config, (n) => tensors.get(n), window, (layer, _t, j, g, norm) => {
        sums[layer]!.count[j]! += 1;
        sums[layer]!.weight[j]! += g;
        sums[layer]!.reap[j]! += g * norm;
      });
    }
    const tokens = request.nsamples * request.seqlen;
    assert.equal(stats.tokens, tokens);
    assert.deepEqual(stats.layers.map((l) => l.layer), [0, 1, 2]);
    const lowest = (scores: number[], n: number) => scores.map((v, j) => [v, j] as const).sort((a, b) => a[0] - b[0] || a[1] - b[1]).slice(0, n).map(([, j]) => j).sort((a, b) => a - b);
    const expected = { reap: new Map<number, number[]>(), frequency: new Map<number, number[]>() };
    for (const layer of stats.layers) {
      const ref = sums[layer.layer]!;
      layer.experts.forEach((e, j) => {
        const at = `layer ${layer.layer} expert ${j}`;
        assert.equal(e.routed, ref.count[j], `${at}: routed`);
        assert.ok(Math.abs(e.frequency - ref.count[j]! / tokens) < 1e-12, `${at}: frequency`);
        assert.ok(ref.count[j]! > 0, `${at}: never routed in ${tokens} tokens`);
        const weight = ref.weight[j]! / ref.count[j]!;
        const reap = ref.reap[j]! / ref.count[j]!;
        assert.ok(Math.abs(e.meanWeight - weight) < 1e-6, `${at}: mean weight ${e.meanWeight} vs ${weight}`);
        assert.ok(Math.abs(e.reap / reap - 1) < 1e-5, `${at}: REAP ${e.reap} vs ${reap}`);
      });
      expected.reap.set(layer.layer, lowest(Array.from(ref.reap, (v, j) => v / ref.count[j]!), 2));
      expected.frequency.set(layer.layer, lowest(Array.from(ref.count), 2));
    }
    for (const metric of ['reap', 'frequency'] as const) {
      assert.deepEqual(selectExperts(cfg, stats, { ratio: 0.25, metric, seed: 0 }), expected[metric], metric);
    }
  });
});
