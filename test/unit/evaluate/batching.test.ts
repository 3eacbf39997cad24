import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { batchPlan } from '../../../src/engine/evaluate/batching';
import { parseModelConfig } from '../../../src/engine/model/config';

const cfg = parseModelConfig(
  { model_type: 'llama', hidden_size: 64, intermediate_size: 172, num_hidden_layers: 5, num_attention_heads: 8, num_key_value_heads: 4, vocab_size: 512 },
  'config.json',
);

describe('batch plan', () => {
  it('covers every window exactly once, in order', () => {
    for (const windows of [1, 7, 595]) {
      const plan = batchPlan(cfg, 256, windows, { batchTokens: 1024, chunkBytes: 10 * 256 * 64 * 4 });
      const seen: number[] = [];
      for (const chunk of plan.chunks) for (const b of chunk.batches) for (let i = 0; i < b.size; i++) seen.push(chunk.first + b.offset + i);
      assert.deepEqual(seen, Array.from({ length: windows }, (_, i) => i));
    }
  });

  it('bounds tokens per run, hidden states per chunk and the largest intermediate per run', () => {
    const plan = batchPlan(cfg, 256, 595, { batchTokens: 1024, chunkBytes: 10 * 256 * 64 * 4 });
    assert.equal(plan.batchSize, 4);
    for (const chunk of plan.chunks) assert.ok(chunk.windows <= 10);
    const huge = parseModelConfig({ ...cfg.raw, vocab_size: 151936 }, 'config.json');
    // 2 x 256 x 151936 x 4 bytes of logits per window: two windows would pass 512 MiB.
    assert.equal(batchPlan(huge, 256, 595, { batchTokens: 8192, runBytes: 512 << 20 }).batchSize, 1);
  });
});
