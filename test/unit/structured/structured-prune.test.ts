import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { REPORT_FILE } from '../../../src/engine/export/report';
import { readTokenLosses, TOKEN_LOSSES_FILE } from '../../../src/engine/export/token-losses';
import { Checkpoint } from '../../../src/engine/io/checkpoint';
import { parseRemoval, structuredPrune, type StructuredPruneOptions } from '../../../src/engine/structured/structured-prune';
import type { StructuredTarget } from '../../../src/engine/structured/select';
import { loadF32Tensors } from '../../reference/safetensors-minimal';
import { EVAL_TEXT, FIXTURE_MODEL, SHARED_DATA, tempDir } from '../../helpers/fixtures';

const calibration = { file: path.join(SHARED_DATA, 'tinystories', 'calibration.txt'), nsamples: 32, seqlen: 128, seed: 0 };
const evaluation = { file: EVAL_TEXT, seqlen: 256, maxWindows: 40 };

function target(parts: Partial<StructuredTarget>, metrics: Partial<StructuredTarget['metrics']> = {}): StructuredTarget {
  return { heads: false, channels: false, layers: false, ratio: 0.2, seed: 0, ...parts, metrics: { heads: 'output', channels: 'flap', layers: 'bi', ...metrics } };
}

function options(out: string, extra: Partial<StructuredPruneOptions>): StructuredPruneOptions {
  return { model: FIXTURE_MODEL, out, calibration, evaluation, runtime: { provider: 'cpu' }, ...extra };
}

describe('structured pruning of the embedded model', () => {
  it('removes 20% of the parameters with heads and channels: smaller files, a consistent config, better than random', async () => {
    const dir = tempDir();
    const scored = await structuredPrune(options(path.join(dir, 'scored'), { target: target({ heads: true, channels: true }) }));
    const random = await structuredPrune(options(path.join(dir, 'random'), { target: target({ heads: true, channels: true }, { heads: 'random', channels: 'random' }) }));
    assert.ok(scored.parameters.removedFraction > 0.19 && scored.parameters.removedFraction < 0.21, `${scored.parameters.removedFraction}`);
    assert.ok(scored.bytes.after <= 0.82 * scored.bytes.before, `${scored.bytes.after} of ${scored.bytes.before}`);
    assert.equal(fs.statSync(path.join(dir, 'scored', 'model.safetensors')).size, scored.bytes.after);
    const config = JSON.parse(fs.readFileSync(path.join(dir, 'scored', 'config.json'), 'utf8')) as Record<string, number>;
    assert.equal(config.num_attention_heads, 6);
    assert.equal(config.num_key_value_heads, 3);
    assert.equal(config.head_dim, 8);
    assert.equal(config.intermediate_size, scored.config.intermediateSize);
    // Our loader checks every tensor against the config; the independent parser sees the new shapes.
    const reopened = await Checkpoint.open(path.join(dir, 'scored'));
    await reopened.close();
    const tensors = loadF32Tensors(path.join(dir, 'scored', 'model.safetensors'));
    assert.deepEqual(tensors.get('model.layers.0.self_attn.q_proj.weight')!.shape, [48, 64]);
    assert.deepEqual(tensors.get('model.layers.0.mlp.down_proj.weight')!.shape, [64, scored.config.intermediateSize]);
    assert.ok(scored.perplexity.pruned! < random.perplexity.pruned!, `scored ${scored.perplexity.pruned} vs random ${random.perplexity.pruned}`);
    assert.ok(fs.existsSync(path.join(dir, 'scored', 'prunelens-scores.json')));
    assert.deepEqual(fs.readdirSync(dir).sort(), ['random', 'scored']);
  });

  it('removes whole blocks and renumbers the rest', async () => {
    const out = path.join(tempDir(), 'layers');
    const record = await structuredPrune(options(out, { target: target({ layers: true }, { layers: 'ppl' }) }));
    assert.equal(record.removed.layers.length, 2, 'one block is 17.5% of the parameters; two reach 20%');
    assert.equal(record.config.numLayers, 3);
    const source = loadF32Tensors(path.join(FIXTURE_MODEL, 'model.safetensors'));
    const pruned = loadF32Tensors(path.join(out, 'model.safetensors'));
    const kept = [0, 1, 2, 3, 4].filter((l) => !record.removed.layers.includes(l));
    kept.forEach((l, i) => assert.deepEqual(pruned.get(`model.layers.${i}.mlp.up_proj.weight`)!.data, source.get(`model.layers.${l}.mlp.up_proj.weight`)!.data));
    assert.equal(pruned.has('model.layers.3.input_layernorm.weight'), false);
  });

  it('takes an explicit list: named layers are cut, named heads zeroed', async () => {
    const out = path.join(tempDir(), 'explicit');
    const record = await structuredPrune(options(out, { calibration: undefined, explicit: parseRemoval('3.h2, 3.h5,L4') }));
    assert.deepEqual(record.removed.layers, [4]);
    assert.deepEqual(record.removed.maskedHeads, [[3, 2], [3, 5]]);
    const source = loadF32Tensors(path.join(FIXTURE_MODEL, 'model.safetensors'));
    const pruned = loadF32Tensors(path.join(out, 'model.safetensors'));
    const o = pruned.get('model.layers.3.self_attn.o_proj.weight')!.data;
    const original = source.get('model.layers.3.self_attn.o_proj.weight')!.data;
    for (let r = 0; r < 64; r++) {
      for (let c = 0; c < 64; c++) {
        const head = Math.floor(c / 8);
        assert.equal(o[r * 64 + c], head === 2 || head === 5 ? 0 : original[r * 64 + c], `o_proj[${r}, ${c}]`);
      }
    }
    assert.equal(record.config.numLayers, 4);
    assert.ok(record.perplexity.pruned! > record.perplexity.dense!);
    // The same report and per-token losses as any run: the losses read back give both perplexities.
    const report = fs.readFileSync(path.join(out, REPORT_FILE), 'utf8');
    assert.match(report, /^# PruneLens report: removed head 3\.2 \(zeroed\), head 3\.5 \(zeroed\), layer 4$/m);
    assert.match(report, new RegExp(`\\| pruned \\| ${record.perplexity.pruned!.toFixed(2)}`));
    const losses = await readTokenLosses(path.join(out, TOKEN_LOSSES_FILE));
    assert.equal(losses.dense.length, record.evaluation!.windows * (record.evaluation!.seqlen - 1));
    const ppl = (xs: Float32Array): number => Math.exp(xs.reduce((a, b) => a + b, 0) / xs.length);
    assert.ok(Math.abs(ppl(losses.dense) - record.perplexity.dense!) < 1e-3 * record.perplexity.dense!);
    assert.ok(Math.abs(ppl(losses.pruned) - record.perplexity.pruned!) < 1e-3 * record.perplexity.pruned!);
    assert.throws(() => parseRemoval('3.h2,layer4'), /"layer4" is neither a head \("3\.h2": head 2 of layer 3\) nor a layer \("L4"\)/);
    await assert.rejects(structuredPrune(options(path.join(tempDir(), 'bad'), { calibration: undefined, explicit: parseRemoval('7.h1') })), /layer 7 does not exist; the model has layers 0-4/);
  });
});
