import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { checkOutput, isWorkingFolder, modelFolderOf, outputParent, parseSparsity, pruneOutputName, removalOutputName, structuredOutputName } from '../../../src/extension/prune/prune-options';
import { tempDir } from '../../helpers/fixtures';

describe('prune options from the guided flow', () => {
  it('reads a sparsity as a fraction or a percentage, from 0 to 0.99', () => {
    assert.equal(parseSparsity('0.5'), 0.5);
    assert.equal(parseSparsity(' .7 '), 0.7);
    assert.equal(parseSparsity('50%'), 0.5);
    assert.equal(parseSparsity('0'), 0);
    assert.equal(parseSparsity('0.99'), 0.99);
    for (const bad of ['', '1', '0.995', '100%', '-0.1', 'half', '0.5.1', '5e-1']) assert.equal(parseSparsity(bad), undefined, bad);
  });

  it('names outputs as the CLI does, beside the model folder of any of its files', () => {
    const model = path.resolve('/models/stories260K');
    assert.equal(modelFolderOf(path.join(model, 'model.safetensors')), model);
    assert.equal(modelFolderOf(path.join(model, 'model.safetensors.index.json')), model);
    assert.equal(pruneOutputName(model, 'wanda', { kind: 'sparsity', sparsity: 0.5 }, 'uniform'), 'stories260K-wanda-50');
    assert.equal(pruneOutputName(path.join(model, 'config.json'), 'wanda', { kind: 'sparsity', sparsity: 0.7 }, 'owl'), 'stories260K-wanda-owl-70');
    assert.equal(pruneOutputName(model, 'sparsegpt', { kind: 'nm', nm: { n: 2, m: 4 } }, 'uniform'), 'stories260K-sparsegpt-2of4');
    assert.equal(structuredOutputName(model, { heads: true, channels: true, layers: false, ratio: 0.2 }), 'stories260K-heads-channels-20');
    assert.equal(structuredOutputName(path.join(model, 'config.json'), { heads: false, channels: false, layers: true, ratio: 0.3 }), 'stories260K-layers-30');
    assert.equal(removalOutputName(model, { heads: [[3, 2]], layers: [] }), 'stories260K-removed-3.h2');
    assert.equal(removalOutputName(model, { heads: [], layers: [4] }), 'stories260K-removed-L4');
  });

  it('puts outputs beside the model, except the embedded one, or in the configured folder', () => {
    const home = path.resolve('/work/project');
    const embeddedModel = path.resolve('/ext/models/stories260K');
    const other = path.resolve('/data/llama/model.safetensors');
    assert.equal(outputParent({ model: other, outputLocation: 'besideModel', embeddedModel, home }), path.resolve('/data'));
    assert.equal(outputParent({ model: embeddedModel, outputLocation: 'besideModel', embeddedModel, home }), home);
    assert.equal(outputParent({ model: path.join(embeddedModel, 'config.json'), outputLocation: '', embeddedModel, home }), home);
    assert.equal(outputParent({ model: other, outputLocation: 'pruned', embeddedModel, home }), path.join(home, 'pruned'));
    assert.equal(outputParent({ model: other, outputLocation: path.resolve('/tmp/out'), embeddedModel, home }), path.resolve('/tmp/out'));
  });

  it('accepts a new folder or an earlier PruneLens output, and refuses the rest', () => {
    const dir = tempDir();
    const model = path.join(dir, 'model');
    fs.mkdirSync(model);
    fs.mkdirSync(path.join(dir, 'earlier'));
    fs.writeFileSync(path.join(dir, 'earlier', 'prunelens.json'), '{}');
    fs.mkdirSync(path.join(dir, 'foreign'));
    assert.deepEqual(checkOutput(path.join(dir, 'new'), model), { ok: true, replaces: false });
    assert.deepEqual(checkOutput(path.join(dir, 'earlier'), model), { ok: true, replaces: true });
    for (const [out, problem] of [
      [path.join(dir, 'foreign'), /exists and is not a PruneLens output/],
      [model, /must not be the model folder/],
      [path.join(model, 'inside'), /must not be the model folder or inside it/],
      ['relative/out', /absolute/],
    ] as const) {
      const check = checkOutput(out, model);
      assert.ok(!check.ok && problem.test(check.problem), `${out}: ${JSON.stringify(check)}`);
    }
  });

  it('knows the folders an output passes through', () => {
    assert.ok(isWorkingFolder('/m/stories260K-wanda-50.partial-1234'));
    assert.ok(isWorkingFolder('/m/stories260K-wanda-50.previous-99'));
    assert.ok(!isWorkingFolder('/m/stories260K-wanda-50'));
  });
});
