import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { estimatePlan } from '../../../src/engine/allocate/estimate';
import { linearSizes, parsePlan, planSparsity, type Plan } from '../../../src/engine/allocate/plan';
import { LINEARS, parseModelConfig, type LinearName } from '../../../src/engine/model/config';
import { editPlan } from '../../../src/extension/panels/plan-edits';
import { MAX_SPARSITY, type PanelState } from '../../../src/shared/protocol';
import { clampSparsity, comparedWith, mean, restoreState, samePlans, shiftToMean } from '../../../webview/edits';
import { FIXTURE_MODEL } from '../../helpers/fixtures';

const cfg = parseModelConfig(JSON.parse(fs.readFileSync(path.join(FIXTURE_MODEL, 'config.json'), 'utf8')), 'config.json');
const sizes = linearSizes(cfg);
const close = (a: number, b: number, tol = 1e-9): boolean => Math.abs(a - b) < tol;

describe('webview edits', () => {
  it('moves every block alike to reach a model-wide sparsity', () => {
    const shifted = shiftToMean([0.5, 0.6, 0.7], 0.65);
    assert.ok(close(mean(shifted), 0.65, 1e-6));
    assert.ok(close(shifted[1]! - shifted[0]!, 0.1, 1e-6) && close(shifted[2]! - shifted[1]!, 0.1, 1e-6), 'the shape is kept');
  });

  it('pins blocks at the ends and lets the others make up the difference', () => {
    const up = shiftToMean([0.9, 0.5], 0.8);
    assert.equal(up[0], MAX_SPARSITY);
    assert.ok(close(mean(up), 0.8, 1e-6));
    const down = shiftToMean([0.05, 0.5], 0.1);
    assert.equal(down[0], 0);
    assert.ok(close(down[1]!, 0.2, 1e-6));
    assert.deepEqual(shiftToMean([0.3, 0.6], 2), [MAX_SPARSITY, MAX_SPARSITY]);
  });

  it('snaps slider values to half a percent within [0, max]', () => {
    assert.equal(clampSparsity(0.6031), 0.605);
    assert.equal(clampSparsity(-0.2), 0);
    assert.equal(clampSparsity(0.99), MAX_SPARSITY);
  });

  it('says how an estimate compares with the plan it started from', () => {
    assert.equal(comparedWith(0.9, 1, 'owl'), '10.0% lower than OWL');
    assert.equal(comparedWith(1.1, 1, 'besa'), '10.0% higher than BESA-style');
    assert.equal(comparedWith(1.0001, 1, 'uniform'), 'same as Uniform');
  });

  const summary = (blocks: number[]) => ({ blocks, score: 1, perBlock: blocks.map(() => 0.2) });
  const plans = (owl: number[]): NonNullable<PanelState['plans']> => ({
    method: 'wanda',
    target: 0.6,
    plans: { uniform: summary([0.6, 0.6]), owl: summary(owl), besa: summary([0.55, 0.65]) },
  });

  it('tells the same plans (a reloaded page) from new ones', () => {
    assert.ok(samePlans(plans([0.58, 0.62]), plans([0.58, 0.62])));
    assert.equal(samePlans(plans([0.58, 0.62]), plans([0.57, 0.63])), false);
    assert.equal(samePlans(plans([0.58, 0.62]), { ...plans([0.58, 0.62]), method: 'sparsegpt' }), false);
    assert.equal(samePlans(undefined, plans([0.58, 0.62])), false);
  });

  it('restores what fits the saved model and drops what does not', () => {
    const info = { path: '/m', name: 'm', modelType: 'llama', layers: 2, parameters: 10 };
    const saved = { model: '/m', method: 'wanda', target: 0.6, info, plans: plans([0.58, 0.62]), allocation: 'owl', blocks: [0.5, 0.7] };
    assert.deepEqual(restoreState(saved), saved);
    const without = (key: keyof typeof saved) => Object.fromEntries(Object.entries(saved).filter(([k]) => k !== key));
    assert.deepEqual(restoreState({ ...saved, blocks: [0.5] }), without('blocks'));
    assert.deepEqual(restoreState({ ...saved, allocation: 'manual' }), without('allocation'));
    assert.deepEqual(restoreState({ ...saved, plans: { method: 'wanda', target: 0.6, plans: {} } }), without('plans'));
    assert.deepEqual(restoreState({ model: '/m', method: 'wanda', target: 0.6 }), { model: '/m', method: 'wanda', target: 0.6 });
    assert.equal(restoreState({ method: 'wanda', target: 0.6 }), undefined);
  });
});

describe('host: pricing an edit on the base plan', () => {
  const ratios = [0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8];
  const besaLinears = { 'self_attn.q_proj': 0.7, 'self_attn.k_proj': 0.7, 'self_attn.v_proj': 0.5, 'self_attn.o_proj': 0.55, 'mlp.gate_proj': 0.65, 'mlp.up_proj': 0.6, 'mlp.down_proj': 0.5 } satisfies Record<LinearName, number>;
  const blockMean = (linears: Partial<Record<LinearName, number>>): number =>
    LINEARS.reduce((n, l) => n + sizes[l] * linears[l]!, 0) / LINEARS.reduce((n, l) => n + sizes[l], 0);
  const base: Plan = {
    format: 'prunelens.plan',
    version: 1,
    model: { modelType: 'llama', layers: 5, hiddenSize: 64, intermediateSize: 172 },
    target: 0.6,
    allocation: 'besa',
    method: 'wanda',
    parameters: {},
    calibration: null,
    blocks: [
      { layer: 0, sparsity: 0.6 },
      { layer: 1, sparsity: blockMean(besaLinears), linears: besaLinears },
      { layer: 2, sparsity: 0.6 },
      { layer: 3, sparsity: 0.6 },
      { layer: 4, sparsity: 0.6 },
    ],
    statistics: {
      errors: {
        ratios,
        windows: 32,
        outputNorms: [1, 1, 1, 1, 1],
        errors: Array.from({ length: 5 }, (_, b) => Object.fromEntries(LINEARS.map((l, i) => [l, ratios.map((r) => (b + 1) * (i + 1) * r * r)])) as Record<LinearName, number[]>),
      },
    },
  };
  const unedited = base.blocks.map((b) => b.sparsity);

  it('returns the base plan untouched when nothing moved', () => {
    assert.equal(editPlan(base, unedited, cfg), base);
  });

  it('moves a plain block to the slider and records the plan as manual', () => {
    const blocks = [...unedited];
    blocks[3] = 0.7;
    const edited = editPlan(base, blocks, cfg);
    assert.equal(edited.allocation, 'manual');
    assert.deepEqual(edited.blocks[3], { layer: 3, sparsity: 0.7 });
    assert.ok(close(edited.target, planSparsity(edited, cfg)));
    assert.ok(edited.target > base.target);
    assert.ok(estimatePlan(edited).perBlock[3]! > estimatePlan(base).perBlock[3]!, 'pruning more costs more');
    assert.equal(estimatePlan(edited).perBlock[0], estimatePlan(base).perBlock[0]);
  });

  it('keeps a BESA block\'s per-linear spread, moving every linear by the block\'s change', () => {
    const blocks = [...unedited];
    blocks[1] = unedited[1]! - 0.05;
    const edited = editPlan(base, blocks, cfg);
    const block = edited.blocks[1]!;
    for (const l of LINEARS) assert.ok(close(block.linears![l]!, besaLinears[l] - 0.05), l);
    assert.ok(close(block.sparsity, blocks[1]!));
    // The file it writes is one parsePlan accepts: the block figure agrees with its linears.
    assert.doesNotThrow(() => parsePlan(JSON.parse(JSON.stringify(edited)), cfg, 'plan.json'));
  });

  it('clamps linears at the slider maximum and reports the block as what its linears prune', () => {
    const blocks = [...unedited];
    blocks[1] = 0.94;
    const block = editPlan(base, blocks, cfg).blocks[1]!;
    assert.ok(Object.values(block.linears!).every((r) => r <= MAX_SPARSITY));
    assert.ok(block.sparsity < 0.94 && close(block.sparsity, blockMean(block.linears!)));
  });

  it('refuses an edit for another layer count', () => {
    assert.throws(() => editPlan(base, [0.5, 0.5], cfg), /2 block sparsities but the plan has 5 blocks/);
  });
});
