/** The Model view of a mixture-of-experts model: each sparse layer lists its experts, and an expert-pruned output its fewer ones. */
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { pruneModel } from '../../../src/engine/prune/prune-model';
import { loadModel } from '../../../src/extension/trees/model-loader';
import { buildModelOutline, type OutlineNode } from '../../../src/extension/trees/model-outline';
import { runLabel } from '../../../src/extension/runs/output-record';
import { pruneExperts } from '../../../src/engine/experts/expert-prune';
import { expertStatsOf } from '../../../src/engine/experts/expert-stats';
import { MOE_CASES } from '../../helpers/moe-configs';
import { SHARED_DATA, tempDir } from '../../helpers/fixtures';
import { writeTinyCheckpoint } from '../../helpers/tiny-checkpoint';

function child(node: OutlineNode, label: string): OutlineNode {
  const found = node.children.find((c) => c.label === label);
  assert.ok(found, `${node.label} has no child "${label}" (has ${node.children.map((c) => c.label).join(', ')})`);
  return found;
}

describe('the Model view of MoE models', () => {
  it('Qwen2-MoE: sparse layers show their experts, the dense layer its MLP; a magnitude prune shows each expert\'s zeros', async () => {
    const dir = path.join(tempDir(), 'qwen2moe');
    await writeTinyCheckpoint(dir, MOE_CASES.qwen2_moe!, 1);
    const root = buildModelOutline(await loadModel(dir));
    assert.match(root.tooltip, /6 experts, top-4 in 2 of 3 layers, shared expert 80/);
    const experts = child(child(root, 'Layer 0'), 'Experts');
    assert.equal(experts.description, '6 of width 32, top-4 · 36,864 weights');
    assert.match(experts.tooltip, /shared expert of width 80/);
    assert.equal(experts.children.length, 6);
    assert.equal(child(experts, 'Expert 5').tooltip.split('\n')[0], 'model.layers.0.mlp.experts.5.gate_proj.weight');
    assert.ok(child(child(root, 'Layer 1'), 'MLP').children.some((c) => c.label === 'down_proj'));

    const out = path.join(tempDir(), 'qwen2moe-magnitude');
    await pruneModel({ model: dir, out, spec: { method: 'magnitude', sparsity: 0.5, include: [], exclude: [], blocksize: 128, percdamp: 0.01 }, runtime: { provider: 'cpu' } });
    const pruned = buildModelOutline(await loadModel(out));
    assert.match(child(child(child(pruned, 'Layer 2'), 'Experts'), 'Expert 0').description, /50\.0% zero/);
  });

  it('an expert-pruned Mixtral output: fewer experts, labelled as the run that removed them', async () => {
    const dir = path.join(tempDir(), 'mixtral');
    await writeTinyCheckpoint(dir, MOE_CASES.mixtral!, 1);
    const out = path.join(tempDir(), 'mixtral-experts-50');
    await pruneExperts({ model: dir, out, target: { ratio: 0.5, metric: 'random', seed: 0 }, runtime: { provider: 'cpu' } });
    const input = await loadModel(out);
    assert.equal(runLabel(input.record!), 'experts 50.0% by random');
    assert.equal(child(child(buildModelOutline(input), 'Layer 1'), 'Experts').children.length, 4);
  });

  it('a Mixtral with expert statistics: each expert shows its REAP, routing share and mean weight, ranked by REAP', async () => {
    const dir = path.join(tempDir(), 'mixtral-stats');
    await writeTinyCheckpoint(dir, { ...MOE_CASES.mixtral!, vocab_size: 512 }, 1);
    const calibration = { file: path.join(SHARED_DATA, 'tinystories', 'calibration.txt'), nsamples: 2, seqlen: 32, seed: 0 };
    const stats = await expertStatsOf({ model: dir, calibration, runtime: { provider: 'cpu' } });
    const experts = child(child(buildModelOutline({ ...(await loadModel(dir)), experts: stats }, { sortByScore: true }), 'Layer 1'), 'Experts');
    const e = stats.layers[1]!.experts;
    const lowest = e.map((x, j) => [x.reap, j] as const).sort((a, b) => a[0] - b[0] || a[1] - b[1])[0]![1];
    // Sorted by score, the lowest REAP (the first to remove) comes first, with the coolest heat.
    const first = experts.children[0]!;
    assert.equal(first.label, `Expert ${lowest}`);
    assert.equal(first.heat, 1);
    assert.equal(first.description, `REAP ${e[lowest]!.reap.toFixed(3)}, share ${(100 * e[lowest]!.frequency).toFixed(1)}%, weight ${e[lowest]!.meanWeight.toFixed(3)}`);
    assert.match(first.tooltip, /of the 64 calibration tokens/);
  });
});
