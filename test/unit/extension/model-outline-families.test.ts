/** The Model view shows each family's real structure: fused projections, extra norms, what the block adds. */
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { pruneModel } from '../../../src/engine/prune/prune-model';
import { loadModel } from '../../../src/extension/trees/model-loader';
import { buildModelOutline, type OutlineNode } from '../../../src/extension/trees/model-outline';
import { FAMILY_CASES } from '../../helpers/family-configs';
import { tempDir } from '../../helpers/fixtures';
import { writeTinyCheckpoint } from '../../helpers/tiny-checkpoint';

function child(node: OutlineNode, label: string): OutlineNode {
  const found = node.children.find((c) => c.label === label);
  assert.ok(found, `${node.label} has no child "${label}" (has ${node.children.map((c) => c.label).join(', ')})`);
  return found;
}

describe('the Model view of other families', () => {
  it('Phi-3: q, k and v are rows of the fused qkv_proj; a pruned output shows the fused tensor\'s sparsity', async () => {
    const dir = path.join(tempDir(), 'phi3');
    await writeTinyCheckpoint(dir, FAMILY_CASES['phi3 (longrope, partial rotary, GQA)']!.config, 1);
    const input = await loadModel(dir);
    const root = buildModelOutline(input);
    assert.match(root.tooltip, /partial rotary: 12 of 16 dimensions/);
    assert.match(root.tooltip, /fused qkv_proj and gate_up_proj/);
    const attention = child(child(root, 'Layer 1'), 'Attention');
    assert.match(child(attention, 'k_proj').description, /^32 × 64 · in qkv_proj · 2,048 weights$/);
    assert.equal(child(attention, 'k_proj').tooltip.split('\n')[0], 'model.layers.1.self_attn.qkv_proj.weight');
    assert.match(child(attention, 'k_proj').tooltip, /rows 64–95 of the fused qkv_proj/);
    assert.match(child(child(child(root, 'Layer 0'), 'MLP'), 'up_proj').tooltip, /rows 96–191 of the fused gate_up_proj/);

    const out = path.join(tempDir(), 'phi3-magnitude');
    await pruneModel({ model: dir, out, spec: { method: 'magnitude', sparsity: 0.5, include: [], exclude: [], blocksize: 128, percdamp: 0.01 }, runtime: { provider: 'cpu' } });
    const pruned = buildModelOutline(await loadModel(out));
    assert.match(child(child(child(pruned, 'Layer 0'), 'Attention'), 'q_proj').description, /in qkv_proj · 4,096 weights · 50\.0% zero · loss \d/);
    assert.match(child(child(pruned, 'Layer 0'), 'Attention').description, /50\.0% zero/);
  });

  it('Gemma 2: the post-norms and the GeGLU MLP are named', async () => {
    const dir = path.join(tempDir(), 'gemma2');
    await writeTinyCheckpoint(dir, FAMILY_CASES.gemma2!.config, 1);
    const root = buildModelOutline(await loadModel(dir));
    assert.match(root.tooltip, /attention soft-capping 2; final logit soft-capping 3/);
    assert.match(root.tooltip, /sliding window 16 on 2 of 3 layers/);
    const layer = child(root, 'Layer 0');
    assert.match(layer.tooltip, /Norms: input_layernorm \[64\], post_attention_layernorm \[64\], pre_feedforward_layernorm \[64\], post_feedforward_layernorm \[64\]/);
    assert.match(child(layer, 'MLP').tooltip, /^GELU-gated MLP/);
  });

  it('Qwen3: the q/k norms are listed with the attention', async () => {
    const dir = path.join(tempDir(), 'qwen3');
    await writeTinyCheckpoint(dir, FAMILY_CASES.qwen3!.config, 1);
    const attention = child(child(buildModelOutline(await loadModel(dir)), 'Layer 0'), 'Attention');
    assert.match(attention.tooltip, /Norms: q_norm \[32\], k_norm \[32\] \(per head, shared by every head\)/);
  });
});
