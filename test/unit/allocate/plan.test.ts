import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { estimatePlan } from '../../../src/engine/allocate/estimate';
import { makePlan } from '../../../src/engine/allocate/make-plan';
import { parsePlan, type Plan } from '../../../src/engine/allocate/plan';
import { PruneLensError } from '../../../src/engine/errors';
import { parseModelConfig, LINEARS } from '../../../src/engine/model/config';
import { pruneModel } from '../../../src/engine/prune/prune-model';
import type { PruneSpec } from '../../../src/engine/prune/spec';
import { loadF32Tensors } from '../../reference/safetensors-minimal';
import { EVAL_TEXT, FIXTURE_MODEL, SHARED_DATA, tempDir } from '../../helpers/fixtures';

const CALIB = path.join(SHARED_DATA, 'tinystories', 'calibration.txt');
const cfg = parseModelConfig(JSON.parse(fs.readFileSync(path.join(FIXTURE_MODEL, 'config.json'), 'utf8')), 'config.json');
const spec = (sparsity: number): PruneSpec => ({ method: 'wanda', sparsity, include: [], exclude: [], blocksize: 128, percdamp: 0.01 });
const calibration = { file: CALIB, nsamples: 16, seqlen: 128, seed: 0 };

function plan(blocks: unknown): unknown {
  return { format: 'prunelens.plan', version: 1, model: { modelType: 'llama', layers: 5, hiddenSize: 64, intermediateSize: 172 }, target: 0.5, allocation: 'manual', method: 'wanda', parameters: {}, calibration: null, blocks, statistics: {} };
}

function rejects(raw: unknown, pattern: RegExp): void {
  assert.throws(() => parsePlan(raw, cfg, 'plan.json'), (err: unknown) => err instanceof PruneLensError && err.kind === 'usage' && err.message.startsWith('plan.json: ') && pattern.test(err.message));
}

describe('plan files', () => {
  const five = (sparsity: number) => Array.from({ length: 5 }, (_, layer) => ({ layer, sparsity }));

  it('accepts a plan for this model and works out its model-wide target', () => {
    const blocks = five(0.5);
    blocks[1]!.sparsity = 0.6;
    blocks[3]!.sparsity = 0.4;
    assert.ok(Math.abs(parsePlan(plan(blocks), cfg, 'plan.json').target - 0.5) < 1e-12);
  });

  it('names the entry that does not fit the model', () => {
    rejects(plan(five(0.5).slice(0, 4)), /blocks: has 4 entries but the model has 5 decoder blocks/);
    rejects(plan(five(0.5).map((b, i) => (i === 2 ? { ...b, sparsity: 1 } : b))), /blocks\[2\]\.sparsity: sparsity must be a number in \[0, 1\), got 1/);
    rejects(plan(five(0.5).map((b, i) => (i === 2 ? { ...b, sparsity: -0.1 } : b))), /blocks\[2\]\.sparsity: sparsity must be a number in \[0, 1\), got -0\.1/);
    rejects(plan(five(0.5).map((b, i) => (i === 3 ? { ...b, linears: { 'mlp.gate': 0.5 } } : b))), /blocks\[3\]\.linears\["mlp\.gate"\]: unknown linear; known: self_attn\.q_proj/);
    rejects(plan(five(0.5).map((b, i) => (i === 1 ? { ...b, layer: 4 } : b))), /blocks\[1\]\.layer: must be 1/);
    const allLinears = Object.fromEntries(LINEARS.map((l) => [l, 0.6]));
    rejects(plan(five(0.5).map((b, i) => (i === 0 ? { ...b, linears: allLinears } : b))), /blocks\[0\]\.sparsity: 0\.5 disagrees with its linears, which prune 0\.6000 of the block/);
    rejects({ ...(plan(five(0.5)) as object), version: 2 }, /version: this PruneLens reads plan version 1, got 2/);
    rejects({ ...(plan(five(0.5)) as object), model: { modelType: 'llama', layers: 5, hiddenSize: 576, intermediateSize: 1536 } }, /model: the plan was made for hidden 576 \/ MLP 1536, but this model has 64 \/ 172/);
  });
});

describe('making, editing and applying a plan', () => {
  it('applies a hand-edited plan exactly, block by block, and prices it from its error table', async () => {
    const made = await makePlan({ model: FIXTURE_MODEL, spec: spec(0.6), allocation: { kind: 'owl', M: 5, lambda: 0.08 }, calibration, runtime: { provider: 'cpu' } });
    assert.equal(made.allocation, 'owl');
    assert.equal(made.statistics.outlierRatios!.length, 5);
    const table = made.statistics.errors!;
    assert.equal(table.errors.length, 5);
    assert.deepEqual(table.ratios, [0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8]);
    for (const block of table.errors) for (const l of LINEARS) assert.ok(block[l].every((e, k) => k === 0 || e >= block[l][k - 1]! * 0.9), `errors of ${l} should grow with the ratio`);

    const edited: Plan = JSON.parse(JSON.stringify(made)) as Plan;
    edited.blocks[1]!.sparsity = 0.75;
    edited.blocks[3]!.sparsity = 0.45;
    const file = path.join(tempDir(), 'edited.json');
    fs.writeFileSync(file, JSON.stringify(edited));
    assert.ok(estimatePlan(edited).score !== estimatePlan(made).score);

    const out = path.join(tempDir(), 'pruned');
    const record = await pruneModel({
      model: FIXTURE_MODEL,
      out,
      spec: spec(0.5),
      allocation: { kind: 'plan', file },
      calibration,
      evaluation: { file: EVAL_TEXT, seqlen: 128, maxWindows: 2 },
      runtime: { provider: 'cpu' },
    });
    const weights = loadF32Tensors(path.join(out, 'model.safetensors'));
    for (const block of edited.blocks) {
      for (const linear of LINEARS) {
        const t = weights.get(`model.layers.${block.layer}.${linear}.weight`)!;
        const zeros = t.data.reduce((n, v) => n + (v === 0 ? 1 : 0), 0);
        assert.equal(zeros, Math.round(t.data.length * block.sparsity), `block ${block.layer} ${linear}`);
      }
    }
    // Its ratios are no longer OWL's: the record says so.
    assert.equal(record.plan.allocation, 'manual');
    assert.ok(Math.abs(record.sparsity - parsePlan(edited, cfg, file).target) < 1e-12);
  });

  it('BESA-style: shares the model-wide budget across blocks and linears by the error table, and prunes exactly that', async () => {
    const made = await makePlan({ model: FIXTURE_MODEL, spec: spec(0.7), allocation: { kind: 'besa' }, calibration, runtime: { provider: 'cpu' } });
    assert.equal(made.allocation, 'besa');
    const parsed = parsePlan(made, cfg, 'besa.json');
    assert.ok(Math.abs(parsed.target - 0.7) < 1e-9, `${parsed.target}`);
    const table = made.statistics.errors!;
    assert.deepEqual(table.ratios, [0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9]);
    // Not uniform, and not a per-block rule: blocks differ.
    assert.ok(Math.max(...made.blocks.map((b) => b.sparsity)) - Math.min(...made.blocks.map((b) => b.sparsity)) > 0.02);
    // Every ratio but one is 0 or measured: the budget is met by moving a single linear between two measured ratios.
    const ratios = made.blocks.flatMap((b) => LINEARS.map((l) => b.linears?.[l] ?? b.sparsity));
    assert.ok(ratios.filter((r) => r !== 0 && !table.ratios.includes(r)).length <= 1, ratios.join(' '));
    // By the table it chose from, it beats uniform and any block-wise reshuffle of the same budget (here OWL-like).
    const reblocked = (sparsities: number[]): Plan => ({ ...made, blocks: sparsities.map((sparsity, layer) => ({ layer, sparsity })) });
    assert.ok(estimatePlan(made).score < estimatePlan(reblocked([0.7, 0.7, 0.7, 0.7, 0.7])).score);
    assert.ok(estimatePlan(made).score < estimatePlan(reblocked([0.65, 0.65, 0.7, 0.72, 0.78])).score);

    const out = path.join(tempDir(), 'besa');
    const record = await pruneModel({
      model: FIXTURE_MODEL,
      out,
      spec: spec(0.7),
      allocation: { kind: 'besa' },
      calibration,
      evaluation: { file: EVAL_TEXT, seqlen: 128, maxWindows: 2 },
      runtime: { provider: 'cpu' },
    });
    assert.equal(record.plan.allocation, 'besa');
    assert.deepEqual(record.plan.blocks, made.blocks, 'pruning chooses what planning chose');
    const weights = loadF32Tensors(path.join(out, 'model.safetensors'));
    let zeros = 0;
    let total = 0;
    for (const block of made.blocks) {
      for (const linear of LINEARS) {
        const t = weights.get(`model.layers.${block.layer}.${linear}.weight`)!;
        const z = t.data.reduce((n, v) => n + (v === 0 ? 1 : 0), 0);
        assert.equal(z, Math.round(t.data.length * (block.linears?.[linear] ?? block.sparsity)), `block ${block.layer} ${linear}`);
        zeros += z;
        total += t.data.length;
      }
    }
    // Each linear rounds its own count, so the model-wide count is within half a weight per linear of the target.
    assert.ok(Math.abs(zeros - 0.7 * total) <= 0.5 * 5 * LINEARS.length, `${zeros} of ${total}`);
    assert.ok(Math.abs(record.measured.sparsity - zeros / total) < 1e-12);
  });
});
