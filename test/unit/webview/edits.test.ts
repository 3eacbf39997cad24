import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { estimatePlan } from '../../../src/engine/allocate/estimate';
import { linearSizes, parsePlan, planSparsity, type Plan } from '../../../src/engine/allocate/plan';
import { LINEARS, parseModelConfig, type LinearName } from '../../../src/engine/model/config';
import { editPlan, linearInfo, planLinears } from '../../../src/extension/panels/plan-edits';
import { MAX_SPARSITY, type PanelState } from '../../../src/shared/protocol';
import { clampSparsity, comparedWith, mean, moveBlock, moveLinear, restoreState, samePlans, shiftEdit, shiftToMean, weightedMean } from '../../../webview/edits';
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
    assert.equal(comparedWith(1.0001, 1, 'uniform'), 'same as uniform');
  });

  const summary = (blocks: number[]) => ({ blocks, linears: blocks.map(() => null), score: 1, perBlock: blocks.map(() => 0.2) });
  const plans = (owl: number[]): NonNullable<PanelState['plans']> => ({
    method: 'wanda',
    target: 0.6,
    calibration: { windows: 8, quick: true, seconds: 2, fullWindows: 128, fullSeconds: 32 },
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
    const result = { job: 'apply', output: '/m-wanda-60', pplDense: 4.6, ppl: 20, sparsity: 0.6, copied: false, planOnly: false };
    const saved = { model: '/m', method: 'wanda', target: 0.6, info, plans: plans([0.58, 0.62]), allocation: 'owl', blocks: [0.5, 0.7], linears: [null, null], expanded: [1], result };
    assert.deepEqual(restoreState(saved), saved);
    const without = (...keys: string[]) => Object.fromEntries(Object.entries(saved).filter(([k]) => !keys.includes(k)));
    assert.deepEqual(restoreState({ ...saved, blocks: [0.5] }), without('blocks', 'linears'));
    assert.deepEqual(restoreState({ ...saved, linears: [[0.5], 7] }), { ...saved, linears: [null, null] });
    assert.deepEqual(restoreState({ ...saved, expanded: [2] }), without('expanded'));
    assert.deepEqual(restoreState({ ...saved, allocation: 'manual' }), without('allocation'));
    assert.deepEqual(restoreState({ ...saved, plans: { method: 'wanda', target: 0.6, plans: {} } }), without('plans'));
    assert.deepEqual(restoreState({ model: '/m', method: 'wanda', target: 0.6 }), { model: '/m', method: 'wanda', target: 0.6 });
    assert.equal(restoreState({ method: 'wanda', target: 0.6 }), undefined);
  });
});

describe('webview edits of per-linear ratios', () => {
  const info = linearInfo(cfg);
  const spread = [0.7, 0.7, 0.5, 0.55, 0.65, 0.6, 0.5];
  const edit = { blocks: [0.6, weightedMean(spread, info)], linears: [null, spread] };

  it('averages linears by their sizes into the block', () => {
    const total = LINEARS.reduce((n, l) => n + sizes[l], 0);
    assert.ok(close(weightedMean(spread, info), LINEARS.reduce((n, l, k) => n + sizes[l] * spread[k]!, 0) / total));
    assert.deepEqual(info.map((l) => l.label), ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj']);
  });

  it('moves a block with linears by moving every linear alike, and a plain block to the value', () => {
    const moved = moveBlock(edit, 1, edit.blocks[1]! - 0.05, info);
    moved.linears[1]!.forEach((r, k) => assert.ok(close(r, spread[k]! - 0.05, 1e-6), `linear ${k}`));
    assert.ok(close(moved.blocks[1]!, edit.blocks[1]! - 0.05, 1e-6));
    assert.deepEqual(moveBlock(edit, 0, 0.42, info).blocks[0], 0.42);
    assert.equal(edit.blocks[1], weightedMean(spread, info), 'the edit it started from is not changed');
  });

  it('sets one linear, giving a plain block linears of its own', () => {
    const moved = moveLinear(edit, 0, 6, 0.3, info);
    assert.deepEqual(moved.linears[0], [0.6, 0.6, 0.6, 0.6, 0.6, 0.6, 0.3]);
    assert.ok(close(moved.blocks[0]!, weightedMean(moved.linears[0]!, info), 1e-6));
    assert.ok(moved.blocks[0]! < 0.6);
  });

  it('shifts the model-wide sparsity with linears moving with their block', () => {
    const shifted = shiftEdit(edit, 0.5, info);
    assert.ok(close(mean(shifted.blocks), 0.5, 1e-5));
    const delta = shifted.blocks[1]! - edit.blocks[1]!;
    shifted.linears[1]!.forEach((r, k) => assert.ok(close(r, spread[k]! + delta, 1e-5)));
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
  const edit = (blocks: number[], linears = planLinears(base)) => ({ blocks, linears });

  it('returns the base plan untouched when nothing moved', () => {
    assert.equal(editPlan(base, edit(unedited), cfg), base);
    assert.equal(editPlan({ ...base, blocks: base.blocks.filter((b) => !b.linears).concat() }, { blocks: [0.6, 0.6, 0.6, 0.6] }, cfg).allocation, 'besa', 'linears may be left out');
  });

  it('moves a plain block to the slider and records the plan as manual', () => {
    const blocks = [...unedited];
    blocks[3] = 0.7;
    const edited = editPlan(base, edit(blocks), cfg);
    assert.equal(edited.allocation, 'manual');
    assert.deepEqual(edited.blocks[3], { layer: 3, sparsity: 0.7 });
    assert.ok(close(edited.target, planSparsity(edited, cfg)));
    assert.ok(edited.target > base.target);
    assert.ok(estimatePlan(edited).perBlock[3]! > estimatePlan(base).perBlock[3]!, 'pruning more costs more');
    assert.equal(estimatePlan(edited).perBlock[0], estimatePlan(base).perBlock[0]);
  });

  it('writes a block\'s edited linears, with the block as their size-weighted mean', () => {
    const linears = planLinears(base);
    linears[1] = LINEARS.map((l) => besaLinears[l] - 0.05);
    const edited = editPlan(base, edit([...unedited], linears), cfg);
    const block = edited.blocks[1]!;
    for (const l of LINEARS) assert.ok(close(block.linears![l]!, besaLinears[l] - 0.05), l);
    assert.ok(close(block.sparsity, blockMean(block.linears!)));
    // The file it writes is one parsePlan accepts: the block figure agrees with its linears.
    assert.doesNotThrow(() => parsePlan(JSON.parse(JSON.stringify(edited)), cfg, 'plan.json'));
  });

  it('gives a plain block linears when the page sends them', () => {
    const linears = planLinears(base);
    linears[3] = [0.6, 0.6, 0.6, 0.6, 0.6, 0.6, 0.3];
    const block = editPlan(base, edit([...unedited], linears), cfg).blocks[3]!;
    assert.equal(block.linears!['mlp.down_proj'], 0.3);
    assert.ok(block.sparsity < 0.6 && close(block.sparsity, blockMean(block.linears!)));
  });

  it('refuses an edit for another layer count', () => {
    assert.throws(() => editPlan(base, { blocks: [0.5, 0.5] }, cfg), /2 block sparsities but the plan has 5 blocks/);
    const linears = planLinears(base);
    linears[0] = [0.5, 0.5];
    assert.throws(() => editPlan(base, edit([...unedited], linears), cfg), /block 0 has 2 linear ratios/);
  });
});
