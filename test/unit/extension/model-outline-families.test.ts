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

  it('GPT-2: q, k and v are columns of the Conv1D c_attn; the MLP shows c_fc and c_proj without a gate', async () => {
    const { config, renameTensor } = FAMILY_CASES['gpt2 (transformer. prefix, exact gelu, 3 layers)']!;
    const dir = path.join(tempDir(), 'gpt2');
    await writeTinyCheckpoint(dir, config, 1, renameTensor);
    const root = buildModelOutline(await loadModel(dir));
    assert.match(root.tooltip, /LayerNorm with bias; learned positions; ungated MLP \(exact GELU\); Conv1D weights stored \[in, out\]; fused c_attn/);
    const layer = child(root, 'Layer 1');
    assert.match(layer.tooltip, /Norms: ln_1 \[64\], ln_2 \[64\]/);
    const k = child(child(layer, 'Attention'), 'k_proj');
    assert.match(k.description, /^64 × 64 · in c_attn · 4,096 weights$/);
    assert.equal(k.tooltip.split('\n')[0], 'transformer.h.1.attn.c_attn.weight');
    assert.match(k.tooltip, /columns 64–127 of the fused c_attn/);
    assert.equal(child(child(layer, 'Attention'), 'c_proj').tooltip.split('\n')[0], 'transformer.h.1.attn.c_proj.weight');
    const mlp = child(layer, 'MLP');
    assert.deepEqual(mlp.children.map((c) => c.label), ['c_fc', 'c_proj']);
    assert.match(mlp.tooltip, /^MLP \(GELU, no gate\) of layer 1: 80 channels/);
  });

  it('GPT-NeoX: q, k and v alternate head by head in query_key_value; OPT: out_proj, fc1 and fc2', async () => {
    const neox = path.join(tempDir(), 'neox');
    await writeTinyCheckpoint(neox, FAMILY_CASES.gpt_neox!.config, 1);
    const root = buildModelOutline(await loadModel(neox));
    assert.match(root.tooltip, /partial rotary: 4 of 16 dimensions; LayerNorm with bias; parallel residual/);
    const attention = child(child(root, 'Layer 0'), 'Attention');
    assert.equal(child(attention, 'v_proj').tooltip.split('\n')[0], 'gpt_neox.layers.0.attention.query_key_value.weight');
    assert.match(child(attention, 'v_proj').tooltip, /64 rows of the fused query_key_value, head by head/);
    assert.deepEqual(attention.children.map((c) => c.label).slice(0, 4), ['q_proj', 'k_proj', 'v_proj', 'dense']);
    assert.deepEqual(child(child(root, 'Layer 0'), 'MLP').children.map((c) => c.label), ['dense_h_to_4h', 'dense_4h_to_h']);

    const { config, renameTensor } = FAMILY_CASES['opt (350m: post-norm, project_in/out)']!;
    const opt = path.join(tempDir(), 'opt');
    await writeTinyCheckpoint(opt, config, 1, renameTensor);
    const optRoot = buildModelOutline(await loadModel(opt));
    assert.match(optRoot.tooltip, /post-norm residual \(do_layer_norm_before false\); no final norm; project_in\/out 32 ↔ 64; ungated MLP \(ReLU\)/);
    const layer = child(optRoot, 'Layer 2');
    assert.match(layer.tooltip, /Norms: self_attn_layer_norm \[64\], final_layer_norm \[64\]/);
    assert.equal(child(child(layer, 'Attention'), 'out_proj').tooltip.split('\n')[0], 'decoder.layers.2.self_attn.out_proj.weight');
    assert.deepEqual(child(layer, 'MLP').children.map((c) => c.label), ['fc1', 'fc2']);
  });
});
