import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Checkpoint } from '../../../src/engine/io/checkpoint';
import { BlockRunner } from '../../../src/engine/model/block-runner';
import { parseModelConfig } from '../../../src/engine/model/config';
import { shrinkBlock, shrunkConfig } from '../../../src/engine/structured/shrink';
import { FIXTURE_MODEL } from '../../helpers/fixtures';
import { normals } from '../../helpers/random-data';

describe('cutting heads and channels out of a block', () => {
  let checkpoint: Checkpoint;
  before(async () => {
    checkpoint = await Checkpoint.open(FIXTURE_MODEL);
  });
  after(() => checkpoint.close());

  it('gives the same tensors as removing key/value group 1 and channels 5, 9 by hand', async () => {
    const cfg = checkpoint.config; // 8 query heads, 4 key/value heads: group 1 = query heads 2 and 3
    const weights = await checkpoint.readBlock(2);
    const channels = Array.from({ length: 172 }, (_, i) => i).filter((c) => c !== 5 && c !== 9);
    const cut = shrinkBlock(cfg, weights, { kvHeads: [0, 2, 3], channels });
    const hd = 8;
    const d = 64;
    const rowsOf = (m: Float32Array, cols: number, keep: (r: number) => boolean) => Float32Array.from(Array.from({ length: m.length / cols }, (_, r) => r).filter(keep).flatMap((r) => Array.from(m.subarray(r * cols, (r + 1) * cols))));
    const colsOf = (m: Float32Array, cols: number, keep: (c: number) => boolean) => Float32Array.from(Array.from(m).filter((_, i) => keep(i % cols)));
    const queryKept = (r: number) => Math.floor(r / hd) !== 2 && Math.floor(r / hd) !== 3;
    assert.deepEqual(cut.get('self_attn.q_proj.weight'), rowsOf(weights.get('self_attn.q_proj.weight')!, d, queryKept));
    assert.deepEqual(cut.get('self_attn.k_proj.weight'), rowsOf(weights.get('self_attn.k_proj.weight')!, d, (r) => Math.floor(r / hd) !== 1));
    assert.deepEqual(cut.get('self_attn.v_proj.weight'), rowsOf(weights.get('self_attn.v_proj.weight')!, d, (r) => Math.floor(r / hd) !== 1));
    assert.deepEqual(cut.get('self_attn.o_proj.weight'), colsOf(weights.get('self_attn.o_proj.weight')!, 64, queryKept));
    assert.deepEqual(cut.get('mlp.gate_proj.weight'), rowsOf(weights.get('mlp.gate_proj.weight')!, d, (r) => r !== 5 && r !== 9));
    assert.deepEqual(cut.get('mlp.up_proj.weight'), rowsOf(weights.get('mlp.up_proj.weight')!, d, (r) => r !== 5 && r !== 9));
    assert.deepEqual(cut.get('mlp.down_proj.weight'), colsOf(weights.get('mlp.down_proj.weight')!, 172, (c) => c !== 5 && c !== 9));
    assert.deepEqual(cut.get('input_layernorm.weight'), weights.get('input_layernorm.weight'));

    const config = shrunkConfig(cfg, { layers: [0, 1, 2, 3, 4], kvHeads: 3, channels: 170 });
    const shrunk = parseModelConfig(config, 'config.json');
    assert.equal(shrunk.numHeads, 6);
    assert.equal(shrunk.numKvHeads, 3);
    assert.equal(shrunk.headDim, 8);
    assert.equal(config.head_dim, 8);
  });

  it('keeps every query head together with the key/value head it reads, in a grouped-query model', async () => {
    const cfg = parseModelConfig({ model_type: 'llama', hidden_size: 48, intermediate_size: 16, num_hidden_layers: 1, num_attention_heads: 12, num_key_value_heads: 3, vocab_size: 512 }, 'config.json');
    const weights = new Map(
      [
        ['self_attn.q_proj.weight', 48 * 48],
        ['self_attn.k_proj.weight', 12 * 48],
        ['self_attn.v_proj.weight', 12 * 48],
        ['self_attn.o_proj.weight', 48 * 48],
        ['mlp.gate_proj.weight', 16 * 48],
        ['mlp.up_proj.weight', 16 * 48],
        ['mlp.down_proj.weight', 48 * 16],
      ].map(([n, size], i) => [n as string, Float32Array.from(normals(size as number, i + 1))]),
    );
    // Head h's query rows start with the value 1000 + h, its key/value rows with 2000 + kv.
    const q = weights.get('self_attn.q_proj.weight')!;
    for (let h = 0; h < 12; h++) q[h * 4 * 48] = 1000 + h;
    const k = weights.get('self_attn.k_proj.weight')!;
    for (let kv = 0; kv < 3; kv++) k[kv * 4 * 48] = 2000 + kv;
    const cut = shrinkBlock(cfg, weights, { kvHeads: [0, 2], channels: Array.from({ length: 16 }, (_, i) => i) });
    const keptQueries = Array.from({ length: 8 }, (_, i) => cut.get('self_attn.q_proj.weight')![i * 4 * 48]! - 1000);
    const keptKv = Array.from({ length: 2 }, (_, i) => cut.get('self_attn.k_proj.weight')![i * 4 * 48]! - 2000);
    assert.deepEqual(keptQueries, [0, 1, 2, 3, 8, 9, 10, 11]);
    assert.deepEqual(keptKv, [0, 2]);
    // Query head i of the cut model reads key/value head floor(i / 4) of the cut model: the same pairing as before.
    keptQueries.forEach((h, i) => assert.equal(Math.floor(h / 4), keptKv[Math.floor(i / 4)]));
  });

  it('removing nothing is the identity, bit for bit, on the block output', async () => {
    const cfg = checkpoint.config;
    const weights = await checkpoint.readBlock(1);
    const all = (n: number) => Array.from({ length: n }, (_, i) => i);
    const cut = shrinkBlock(cfg, weights, { kvHeads: all(4), channels: all(172) });
    for (const [name, values] of weights) assert.deepEqual(cut.get(name), values, name);
    const runner = await BlockRunner.create(cfg, { provider: 'cpu' });
    try {
      const hidden = Float32Array.from(normals(2 * 16 * 64, 9));
      const [a] = await runner.run(runner.feeds(weights, 0), hidden, 2, 16);
      const [b] = await runner.run(runner.feeds(cut, 0), hidden, 2, 16);
      assert.deepEqual(b, a);
    } finally {
      await runner.release();
    }
  });
});
