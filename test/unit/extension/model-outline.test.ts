import assert from 'node:assert/strict';
import * as path from 'node:path';
import { before, describe, it } from 'node:test';
import { formatLoss } from '../../../src/engine/display';
import { pruneModel } from '../../../src/engine/prune/prune-model';
import type { LayerScores, StructuredScores } from '../../../src/engine/structured/scores';
import { scoreModel, type StructuredRecord } from '../../../src/engine/structured/structured-prune';
import { isStructuredRecord } from '../../../src/extension/runs/output-record';
import { loadModel } from '../../../src/extension/trees/model-loader';
import { alignScores, buildModelOutline, type ModelOutlineInput, type OutlineNode } from '../../../src/extension/trees/model-outline';
import { scoresMarkdown } from '../../../src/extension/trees/scores-markdown';
import { EVAL_TEXT, FIXTURE_MODEL, SHARED_DATA, tempDir } from '../../helpers/fixtures';

const CALIB = path.join(SHARED_DATA, 'tinystories', 'calibration.txt');
const small = { nsamples: 8, seqlen: 64, seed: 0 };

function walk(node: OutlineNode): OutlineNode[] {
  return [node, ...node.children.flatMap(walk)];
}

function child(node: OutlineNode, label: string): OutlineNode {
  const found = node.children.find((c) => c.label === label);
  assert.ok(found, `${node.label} has no child "${label}" (has ${node.children.map((c) => c.label).join(', ')})`);
  return found;
}

describe('the Model view outline of the embedded model', () => {
  let dense: ModelOutlineInput;
  before(async () => {
    dense = await loadModel(FIXTURE_MODEL);
  });

  it('lists 5 layers, each with attention (4 linears and 8 heads in 4 KV groups of 2) and an MLP of 172 channels', () => {
    const root = buildModelOutline(dense);
    assert.equal(root.kind, 'model');
    assert.equal(root.label, 'stories260K');
    assert.match(root.description, /^LlamaForCausalLM · [\d,]+ params · F32$/);
    assert.deepEqual(root.children.map((l) => l.label), ['Layer 0', 'Layer 1', 'Layer 2', 'Layer 3', 'Layer 4']);

    const layer = child(root, 'Layer 3');
    assert.deepEqual([layer.contextValue, layer.layer], ['layer', 3]);
    assert.deepEqual(layer.children.map((c) => c.label), ['Attention', 'MLP']);
    const attention = child(layer, 'Attention');
    assert.deepEqual(attention.children.map((c) => c.label), ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'Heads']);
    assert.match(child(attention, 'q_proj').description, /^64 × 64 · 4,096 weights$/);
    assert.match(child(attention, 'k_proj').description, /^32 × 64 · 2,048 weights$/);
    assert.equal(child(attention, 'k_proj').tooltip.split('\n')[0], 'model.layers.3.self_attn.k_proj.weight');

    const heads = child(attention, 'Heads');
    assert.equal(heads.description, '8 in 4 KV groups of 2');
    assert.deepEqual(heads.children.map((g) => g.label), ['KV group 0', 'KV group 1', 'KV group 2', 'KV group 3']);
    const group = child(heads, 'KV group 1');
    assert.deepEqual(group.children.map((h) => h.label), ['Head 3.2', 'Head 3.3']);
    const head = child(group, 'Head 3.2');
    assert.deepEqual([head.kind, head.contextValue, head.layer, head.head], ['head', 'head', 3, 2]);
    assert.equal(head.description, '', 'no scores yet, nothing to say');

    const mlp = child(layer, 'MLP');
    assert.match(mlp.description, /^172 channels · 33,024 weights$/);
    assert.deepEqual(mlp.children.map((c) => `${c.label} ${c.description}`), [
      'gate_proj 172 × 64 · 11,008 weights',
      'up_proj 172 × 64 · 11,008 weights',
      'down_proj 64 × 172 · 11,008 weights',
    ]);

    const all = walk(root);
    assert.equal(all.length, 1 + 5 * (1 + 1 + 4 + 1 + 4 + 8 + 1 + 3));
    assert.equal(new Set(all.map((n) => n.id)).size, all.length, 'ids are unique');
    for (const n of all) for (const c of n.children) assert.equal(c.parent, n, `${c.id} knows its parent`);
    assert.deepEqual(buildModelOutline(dense).children[3]!.children[0]!.children.map((c) => c.id), attention.children.map((c) => c.id), 'ids are stable across rebuilds');
  });

  it('shows the measured sparsity of a pruned output from its prunelens.json: 50% per linear', async () => {
    const out = path.join(tempDir(), 'stories260K-wanda-50');
    await pruneModel({
      model: FIXTURE_MODEL,
      out,
      spec: { method: 'wanda', sparsity: 0.5, include: [], exclude: [], blocksize: 128, percdamp: 0.01 },
      calibration: { file: CALIB, ...small },
      evaluation: { file: EVAL_TEXT, seqlen: 64, maxWindows: 2 },
      runtime: { provider: 'cpu' },
    });
    const pruned = await loadModel(out);
    assert.ok(pruned.record && !isStructuredRecord(pruned.record));
    assert.equal(pruned.scores, undefined);
    const root = buildModelOutline(pruned);
    assert.match(root.description, / · 50\.0% sparse$/);
    assert.match(root.tooltip, /Wanda 50\.0% uniform: 50\.0% of the pruned linears zero, ppl \d+\.\d\d → \d+\.\d\d/);
    const linears = walk(root).filter((n) => n.kind === 'linear');
    assert.equal(linears.length, 35);
    for (const linear of linears) {
      assert.match(linear.description, / · 50\.0% zero · loss \d/, linear.id);
      assert.match(linear.tooltip, /layer loss \S+, pruned in \d+ ms, resident memory then \d+ MiB/, linear.id);
    }
    // The loss shown is the one the record kept for that linear.
    const q = pruned.record.layers[0]!.linears!['self_attn.q_proj']!;
    assert.ok(q.loss > 0);
    assert.ok(child(child(child(root, 'Layer 0'), 'Attention'), 'q_proj').description.endsWith(`loss ${formatLoss(q.loss)}`));
    for (const layer of root.children) assert.match(layer.description, /^[\d,]+ params · 50\.0% zero$/);
    assert.match(child(child(root, 'Layer 0'), 'MLP').description, /^172 channels · 33,024 weights · 50\.0% zero$/);
  });

  it('shows importance scores on layers, groups, heads and the MLP, and renders them as Markdown', async () => {
    const values = await scoreModel({ model: FIXTURE_MODEL, calibration: { file: CALIB, ...small }, runtime: { provider: 'cpu' } });
    const input = { ...dense, scores: { values, measuredOn: 'this model' as const } };
    const root = buildModelOutline(input);
    const layer = child(root, 'Layer 2');
    const s = values.layers[2]!;
    assert.match(layer.description, new RegExp(`BI ${s.block.influence.toFixed(4)} · ppl without ${s.block.pplWithout.toFixed(2)}$`));
    const heads = child(child(layer, 'Attention'), 'Heads');
    assert.match(child(heads, 'KV group 3').description, new RegExp(`^heads 6–7 · output Δ ${s.groups.output[3]!.toExponential(2).replace('+', '\\+')}$`));
    const head = child(child(heads, 'KV group 3'), 'Head 2.7');
    assert.equal(head.description, `output Δ ${s.heads.output[7]!.toExponential(2)} · similarity ${s.heads.similarity[7]!.toFixed(4)}`);
    assert.match(child(layer, 'MLP').description, / · BI [\d.]+ · FLAP median \d\.\d\de[-+]\d+$/);

    const aligned = alignScores(input)!;
    const markdown = scoresMarkdown('stories260K', aligned, 2, 7);
    assert.match(markdown, /^# stories260K: head 2\.7$/m);
    assert.match(markdown, /^\| \*\*2\.7\*\* \| \*\*3\*\* \| /m, 'the asked-for head is bold');
    assert.equal(markdown.match(/^\| 2\.\d \| \d \| /gm)?.length, 7, 'the other heads are listed plainly');
    assert.match(markdown, /^\| FLAP fluctuation \|( [^|]+ \|){5}$/m);
  });
});

describe('scores of a structured output, measured on its source', () => {
  const layerScores = (layer: number): LayerScores => ({
    layer,
    heads: { output: Array.from({ length: 8 }, (_, h) => layer * 100 + h), similarity: Array.from({ length: 8 }, (_, h) => h / 10) },
    groups: { output: Array.from({ length: 4 }, (_, g) => layer * 100 + 50 + g), similarity: [0.1, 0.2, 0.3, 0.4] },
    channels: { flap: Array.from({ length: 172 }, (_, c) => c), wandaSp: Array.from({ length: 172 }, (_, c) => 2 * c) },
    block: { influence: layer / 10, attentionInfluence: 0, mlpInfluence: 0, pplWithout: 5 + layer },
  });
  const values: StructuredScores = {
    calibration: { file: CALIB, nsamples: 8, seqlen: 64, seed: 0, sha256: '', format: 'text', documents: 1, tokens: 0 },
    densePpl: 4.6,
    pplWindows: 8,
    layers: [0, 1, 2, 3, 4].map(layerScores),
  };

  it('maps kept layers and key/value groups through the record, and marks channel scores as the source\'s', async () => {
    const dense = await loadModel(FIXTURE_MODEL);
    // Layer 1 removed; in source layer 3 key/value group 1 (query heads 2 and 3) removed, as in every layer.
    const summary = { ...dense.summary, layers: 4, heads: 6, kvHeads: 3, intermediateSize: 140 };
    const record = {
      format: 'prunelens.record',
      kind: 'structured',
      perplexity: { dense: 4.6, pruned: 13.1 },
      target: { heads: true, channels: true, layers: false, ratio: 0.3 },
      parameters: { before: 10, after: 7, removedFraction: 0.3 },
      removed: { layers: [1], kvHeads: { 0: [1], 2: [1], 3: [1], 4: [1] }, channelsPerLayer: 32, maskedHeads: [] },
    } as unknown as StructuredRecord;
    const aligned = alignScores({ summary, record, scores: { values, measuredOn: 'source' } })!;
    assert.deepEqual(aligned.sourceLayers, [0, 2, 3, 4]);
    assert.equal(aligned.channelsFromSource, true);
    const third = aligned.layers[2]!;
    assert.deepEqual(third.heads.output, [300, 301, 304, 305, 306, 307]);
    assert.deepEqual(third.groups.output, [350, 352, 353]);
    assert.equal(third.block.pplWithout, 8);
    const root = buildModelOutline({ summary, record, scores: { values, measuredOn: 'source' } });
    assert.match(child(root, 'Layer 2').tooltip, /measured on the source's layer 3 before removal/);
    assert.match(child(child(child(child(root, 'Layer 2'), 'Attention'), 'Heads'), 'KV group 1').children[0]!.description, /^output Δ 3\.04e\+2/);

    assert.equal(alignScores({ summary, scores: { values, measuredOn: 'this model' } }), undefined, 'scores of another shape are not shown');
  });

  it('marks explicitly zeroed heads in the numbering of the output', async () => {
    const dense = await loadModel(FIXTURE_MODEL);
    const record = {
      format: 'prunelens.record',
      kind: 'structured',
      perplexity: { dense: 4.6, pruned: 5.1 },
      explicit: { heads: [[3, 2]], layers: [1] },
      target: null,
      parameters: { before: 2, after: 1, removedFraction: 0.5 },
      removed: { layers: [1], kvHeads: {}, channelsPerLayer: 0, maskedHeads: [[3, 2]] },
    } as unknown as StructuredRecord;
    const root = buildModelOutline({ summary: { ...dense.summary, layers: 4 }, record });
    const zeroed = walk(root).filter((n) => n.description.startsWith('zeroed'));
    assert.deepEqual(zeroed.map((n) => n.label), ['Head 2.2'], 'source layer 3 is layer 2 once layer 1 is cut');
    assert.match(root.description, / · 50\.0% removed$/);
  });
});
