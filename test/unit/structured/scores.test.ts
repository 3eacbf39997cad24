import assert from 'node:assert/strict';
import * as path from 'node:path';
import { before, describe, it } from 'node:test';
import { drawCalibration } from '../../../src/engine/calibrate/calibration-data';
import type { StructuredScores } from '../../../src/engine/structured/scores';
import { scoreModel } from '../../../src/engine/structured/structured-prune';
import { TextTokenizer } from '../../../src/engine/text/tokenizer';
import { referenceBlock, referenceEmbed, referenceHead, type RefConfig } from '../../reference/llama-f64';
import { loadF32Tensors } from '../../reference/safetensors-minimal';
import { FIXTURE_MODEL, SHARED_DATA } from '../../helpers/fixtures';
import * as fs from 'node:fs';

const calibration = { file: path.join(SHARED_DATA, 'tinystories', 'calibration.txt'), nsamples: 4, seqlen: 32, seed: 0 };

describe('structured importance scores against the float64 forward', () => {
  let scores: StructuredScores;
  let windows: number[][];
  const cfg = JSON.parse(fs.readFileSync(path.join(FIXTURE_MODEL, 'config.json'), 'utf8')) as RefConfig;
  const tensors = loadF32Tensors(path.join(FIXTURE_MODEL, 'model.safetensors'));
  const w = (name: string) => tensors.get(name);
  /** Each window's hidden states entering `layer`, on the dense model. */
  const inputs = (layer: number) =>
    windows.map((ids) => {
      let h = referenceEmbed(cfg, w, ids);
      for (let l = 0; l < layer; l++) h = referenceBlock(cfg, w, l, h, ids.length);
      return h;
    });

  before(async () => {
    scores = await scoreModel({ model: FIXTURE_MODEL, calibration, runtime: { provider: 'cpu' } });
    const set = await drawCalibration(await TextTokenizer.load(FIXTURE_MODEL), calibration);
    windows = Array.from({ length: 4 }, (_, i) => Array.from(set.ids.subarray(i * 32, (i + 1) * 32)));
  });

  it('has a score for every head, key/value group, channel and block', () => {
    assert.equal(scores.layers.length, 5);
    for (const l of scores.layers) {
      assert.equal(l.heads.output.length, 8);
      assert.equal(l.heads.similarity.length, 8);
      assert.equal(l.groups.output.length, 4);
      assert.equal(l.channels.flap.length, 172);
      assert.equal(l.channels.wandaSp.length, 172);
      for (const v of [...l.heads.output, ...l.channels.flap, ...l.channels.wandaSp]) assert.ok(Number.isFinite(v) && v >= 0);
    }
  });

  it('output-based head score: the mean squared change of the block output with the head removed', () => {
    const layer = 1;
    const head = 3;
    const hd = 8;
    let sum = 0;
    const oName = `model.layers.${layer}.self_attn.o_proj.weight`;
    const o = tensors.get(oName)!;
    const zeroed = Float64Array.from(o.data);
    for (let r = 0; r < 64; r++) zeroed.fill(0, r * 64 + head * hd, r * 64 + (head + 1) * hd);
    const without = (name: string) => (name === oName ? { shape: o.shape, data: zeroed } : w(name));
    for (const h of inputs(layer)) {
      const dense = referenceBlock(cfg, w, layer, h, 32);
      const removed = referenceBlock(cfg, without, layer, h, 32);
      for (let i = 0; i < dense.length; i++) sum += (dense[i]! - removed[i]!) ** 2;
    }
    const expected = sum / (4 * 32 * 64);
    assert.ok(Math.abs(scores.layers[layer]!.heads.output[head]! / expected - 1) < 1e-3, `${scores.layers[layer]!.heads.output[head]} vs ${expected}`);
  });

  it("ShortGPT's Block Influence: 1 - mean cos(block input, block output)", () => {
    const layer = 3;
    let cosines = 0;
    for (const h of inputs(layer)) {
      const out = referenceBlock(cfg, w, layer, h, 32);
      for (let t = 0; t < 32; t++) {
        let dot = 0;
        let na = 0;
        let nb = 0;
        for (let i = 0; i < 64; i++) {
          dot += h[t * 64 + i]! * out[t * 64 + i]!;
          na += h[t * 64 + i]! ** 2;
          nb += out[t * 64 + i]! ** 2;
        }
        cosines += dot / Math.sqrt(na * nb);
      }
    }
    assert.ok(Math.abs(scores.layers[layer]!.block.influence - (1 - cosines / 128)) < 1e-5);
  });

  it('perplexity-based block score: perplexity on the windows with the block skipped', () => {
    const skipped = 2;
    let nll = 0;
    for (const ids of windows) {
      let h = referenceEmbed(cfg, w, ids);
      for (let l = 0; l < 5; l++) if (l !== skipped) h = referenceBlock(cfg, w, l, h, 32);
      const logits = referenceHead(cfg, w, h, 32);
      for (let t = 0; t < 31; t++) {
        const row = logits.subarray(t * 512, (t + 1) * 512);
        const max = Math.max(...row);
        const lse = max + Math.log(row.reduce((s, v) => s + Math.exp(v - max), 0));
        nll += lse - row[ids[t + 1]!]!;
      }
    }
    const expected = Math.exp(nll / (4 * 31));
    assert.ok(Math.abs(scores.layers[skipped]!.block.pplWithout / expected - 1) < 1e-4, `${scores.layers[skipped]!.block.pplWithout} vs ${expected}`);
  });
});
