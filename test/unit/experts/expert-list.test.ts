/**
 * Expert removal by a person's list (`--remove "0.e3,1.e2"`, the heat map): equal counts are the same
 * cut as --ratio; unequal counts mask the extra experts in the weights, and the written model, read by
 * the float64 reference as Hugging Face's code reads it, routes and scores as the record says.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { drawCalibration } from '../../../src/engine/calibrate/calibration-data';
import { checkExpertList, expertRemovalCost, parseExpertList } from '../../../src/engine/experts/expert-list';
import { pruneExperts } from '../../../src/engine/experts/expert-prune';
import { evaluateModel } from '../../../src/engine/evaluate/evaluate-model';
import { Checkpoint } from '../../../src/engine/io/checkpoint';
import { TextTokenizer } from '../../../src/engine/text/tokenizer';
import { readTextFile } from '../../../src/engine/text/text-file';
import { moeLogits } from '../../reference/moe-f64';
import { loadF32Tensors } from '../../reference/safetensors-minimal';
import { EVAL_TEXT, SHARED_DATA, tempDir } from '../../helpers/fixtures';
import { MOE_CASES } from '../../helpers/moe-configs';
import { writeTinyCheckpoint } from '../../helpers/tiny-checkpoint';

const CALIB_TEXT = path.join(SHARED_DATA, 'tinystories', 'calibration.txt');
const RUNTIME = { provider: 'cpu' as const };
const CALIBRATION = { file: CALIB_TEXT, nsamples: 3, seqlen: 32, seed: 0 };
const EVALUATION = { file: EVAL_TEXT, seqlen: 32, maxWindows: 3 };

async function tinyMoe(name: string, seed = 7): Promise<{ dir: string; config: Record<string, unknown> }> {
  const config = { ...MOE_CASES[name]!, vocab_size: 512 };
  const dir = path.join(tempDir(), name.replace(/\W+/g, '-'));
  await writeTinyCheckpoint(dir, config, seed);
  return { dir, config };
}

const weightsOf = (dir: string) => {
  const tensors = loadF32Tensors(path.join(dir, 'model.safetensors'));
  return (n: string) => tensors.get(n);
};

const explicit = (experts: Record<string, number[]>) => ({ experts, metric: 'reap' as const, seed: 0 });

/** The float64 reference's perplexity of a written model over the first `windows` windows of `seqlen` of the text. */
async function referencePpl(config: Record<string, unknown>, dir: string, windows: number, seqlen: number): Promise<number> {
  const ids = (await TextTokenizer.load(dir)).encode(await readTextFile(EVAL_TEXT));
  const w = weightsOf(dir);
  let nll = 0;
  for (let s = 0; s < windows; s++) {
    const window = Array.from(ids.subarray(s * seqlen, (s + 1) * seqlen));
    const logits = moeLogits(config, w, window);
    for (let t = 0; t < seqlen - 1; t++) {
      const row = logits.subarray(t * 512, (t + 1) * 512);
      const max = Math.max(...row);
      nll += Math.log(row.reduce((a, v) => a + Math.exp(v - max), 0)) + max - row[window[t + 1]!]!;
    }
  }
  return Math.exp(nll / (windows * (seqlen - 1)));
}

describe('expert removal by an explicit list', () => {
  it('the same number named in every layer is the --ratio cut of those experts: identical weights and perplexity', async () => {
    const { dir } = await tinyMoe('mixtral');
    const byRatio = await pruneExperts({ model: dir, out: path.join(path.dirname(dir), 'ratio'), target: { ratio: 0.25, metric: 'reap', seed: 0 }, calibration: CALIBRATION, evaluation: EVALUATION, runtime: RUNTIME });
    const out = path.join(path.dirname(dir), 'list');
    const byList = await pruneExperts({ model: dir, out, explicit: explicit(byRatio.experts.removed), evaluation: EVALUATION, runtime: RUNTIME });
    assert.deepEqual(byList.experts.removed, byRatio.experts.removed);
    assert.deepEqual(byList.experts.masked, {});
    assert.equal(byList.experts.maskedRouting, null);
    assert.ok(fs.readFileSync(path.join(out, 'model.safetensors')).equals(fs.readFileSync(path.join(byRatio.output, 'model.safetensors'))));
    assert.equal(byList.perplexity.pruned, byRatio.perplexity.pruned);
    const record = JSON.parse(fs.readFileSync(path.join(out, 'prunelens.json'), 'utf8')) as { experts: { explicit: unknown; target: unknown } };
    assert.deepEqual(record.experts.explicit, explicit(byRatio.experts.removed));
    assert.equal(record.experts.target, null);
  });

  it('unequal counts: the common count cut out (lowest REAP), the rest masked; the reference reads the written config at the reported perplexity and routes as measured', async () => {
    const { dir, config } = await tinyMoe('mixtral');
    const out = path.join(path.dirname(dir), 'masked');
    // Layer 0 names three experts, layer 1 one: one is cut from each, two of layer 0's are masked.
    const record = await pruneExperts({ model: dir, out, explicit: explicit({ '0': [1, 4, 6], '1': [2] }), calibration: CALIBRATION, evaluation: EVALUATION, runtime: RUNTIME });
    const written = JSON.parse(fs.readFileSync(path.join(out, 'config.json'), 'utf8')) as Record<string, unknown>;
    assert.equal(written.num_local_experts, 7);
    // The heat map's prediction, made before any work, is what the run removed.
    const source = await Checkpoint.open(dir);
    const cost = expertRemovalCost(source.config, 4, checkExpertList(source.config, parseExpertList('0.e1,0.e4,0.e6,1.e2'), dir));
    await source.close();
    assert.equal(cost.parametersRemoved, record.parameters.before - record.parameters.after);
    assert.equal(cost.removedPerLayer, 1);
    assert.deepEqual(cost.left, { '0': 5, '1': 7 });
    assert.deepEqual(cost.masked, { '0': 2 });
    assert.ok(Math.abs(cost.bytesRemoved - (record.bytes.before - record.bytes.after)) < 1024, `${cost.bytesRemoved} vs ${record.bytes.before - record.bytes.after} bytes`);
    assert.deepEqual(record.experts.removed['1'], [2]);
    assert.deepEqual(record.experts.masked['1'], undefined);

    // Which of layer 0's is cut: the lowest REAP of the three, by the statistics the run wrote.
    const stats = JSON.parse(fs.readFileSync(path.join(out, 'prunelens-experts.json'), 'utf8')) as { layers: { layer: number; experts: { reap: number }[] }[] };
    const reap = stats.layers[0]!.experts.map((e) => e.reap);
    const lowest = [1, 4, 6].sort((a, b) => reap[a]! - reap[b]! || a - b)[0]!;
    assert.deepEqual(record.experts.removed['0'], [lowest]);
    const masked = [1, 4, 6].filter((j) => j !== lowest);
    assert.deepEqual(record.experts.masked['0'], masked);

    // Masked experts keep their (renumbered) slot with zero weights; the others are copied unchanged.
    const sourceWeights = weightsOf(dir);
    const result = weightsOf(out);
    const kept = [0, 1, 2, 3, 4, 5, 6, 7].filter((j) => j !== lowest);
    const p = 'model.layers.0.block_sparse_moe.';
    kept.forEach((j, i) => {
      for (const w of ['w1', 'w2', 'w3']) {
        const data = result(`${p}experts.${i}.${w}.weight`)!.data;
        if (masked.includes(j)) assert.ok(data.every((v) => v === 0), `expert ${j} (now ${i}) ${w} zeroed`);
        else assert.deepEqual(data, sourceWeights(`${p}experts.${j}.${w}.weight`)!.data);
      }
      const row = result(`${p}gate.weight`)!.data.subarray(i * 64, (i + 1) * 64);
      if (!masked.includes(j)) assert.deepEqual(row, sourceWeights(`${p}gate.weight`)!.data.subarray(j * 64, (j + 1) * 64));
    });

    // Reopened, the engine's perplexity is the reported one, and the reference agrees from the files alone.
    const again = await evaluateModel({ model: out, textFile: EVAL_TEXT, seqlen: 32, maxWindows: 3, runtime: RUNTIME });
    assert.equal(again.ppl, record.perplexity.pruned);
    const reference = await referencePpl({ ...config, ...written }, out, 3, 32);
    assert.ok(Math.abs(reference - again.ppl) < 1e-4 * reference, `reference ${reference} vs engine ${again.ppl}`);

    // The measured routing to masked experts: the reference's own routing of the calibration windows through the written model.
    const maskedOut = masked.map((j) => kept.indexOf(j));
    const ids = await Checkpoint.open(out).then(async (c) => {
      try {
        return (await drawCalibration(await TextTokenizer.load(out), CALIBRATION, {}, c.config)).ids;
      } finally {
        await c.close();
      }
    });
    let routed = 0;
    const w = weightsOf(out);
    for (let s = 0; s < CALIBRATION.nsamples; s++) {
      moeLogits({ ...config, ...written }, w, Array.from(ids.subarray(s * 32, (s + 1) * 32)), (layer, _t, j) => {
        if (layer === 0 && maskedOut.includes(j)) routed++;
      });
    }
    const tokens = CALIBRATION.nsamples * CALIBRATION.seqlen;
    assert.ok(Math.abs(record.experts.maskedRouting!['0']! - routed / tokens) < 1e-12, `measured ${record.experts.maskedRouting!['0']} vs reference ${routed / tokens}`);
    // The mask works: far fewer routings than the two experts' fair share (2 of 7 slots, top-2).
    assert.ok(routed / tokens < 0.25 * ((2 * 2) / 7), `${routed} of ${tokens} tokens routed to a masked expert`);
  });

  const refusals: [name: string, model: string, list: string, message: RegExp][] = [
    ['a layer out of range', 'mixtral', '0.e1,2.e1', /2\.e1: layer 2 does not exist; the model has layers 0-1/],
    ['an expert out of range', 'mixtral', '0.e8', /0\.e8: expert 8 does not exist; layers have experts 0-7/],
    ['a duplicate', 'mixtral', '0.e3,1.e3,0.e3', /0\.e3 is named twice/],
    ['a layer emptied below top-k', 'mixtral', '1.e0,1.e1,1.e2,1.e3,1.e4,1.e5,1.e6', /layer 1 would keep 1 of 8 experts, fewer than the 2 each token is routed to; remove at most 6 there/],
    ['a dense layer of qwen2_moe', 'qwen2_moe', '0.e1,1.e1', /1\.e1: layer 1 has a dense MLP \(no experts\); the layers with experts are 0, 2/],
  ];
  for (const [name, model, list, message] of refusals) {
    it(`refuses ${name} before any work, saying what and where`, async () => {
      const { dir } = await tinyMoe(model);
      const out = path.join(path.dirname(dir), 'refused');
      const experts: Record<string, number[]> = {};
      for (const [l, e] of parseExpertList(list)) (experts[String(l)] ??= []).push(e);
      await assert.rejects(pruneExperts({ model: dir, out, explicit: explicit(experts), calibration: CALIBRATION, evaluation: EVALUATION, runtime: RUNTIME }), (err: Error & { kind?: string; where?: string }) => {
        assert.equal(err.kind, 'usage');
        assert.match(err.message, message);
        assert.equal(err.where, dir);
        return true;
      });
      assert.deepEqual(fs.readdirSync(path.dirname(dir)).sort(), [path.basename(dir)]);
    });
  }

  it('refuses what is not an expert, naming it', () => {
    assert.throws(() => parseExpertList('0.e3,0.h2'), /"0\.h2" is not an expert; write experts as "0\.e3"/);
    assert.throws(() => parseExpertList(' , '), /--remove names no expert/);
  });
});
