/** Checks of the float64 rotary reference (test/reference/rope-f64.ts) against published facts. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ropeCosSin, ropeInit } from '../../reference/rope-f64';

const LLAMA31 = {
  hidden_size: 4096, num_attention_heads: 32, rope_theta: 500000, max_position_embeddings: 131072,
  rope_scaling: { rope_type: 'llama3', factor: 8.0, low_freq_factor: 1.0, high_freq_factor: 4.0, original_max_position_embeddings: 8192 },
};

describe('rotary reference', () => {
  it('llama3: high frequencies kept, low ones divided by the factor, the middle band blended', () => {
    const [inv, scale] = ropeInit(LLAMA31, undefined);
    const plain = Array.from({ length: 64 }, (_, j) => 1 / 500000 ** ((2 * j) / 128));
    assert.equal(scale, 1);
    assert.equal(inv[0], 1);
    assert.ok(Math.abs(inv[63]! - plain[63]! / 8) < 1e-18);
    // Wavelength 2π/f between 8192/4 and 8192 is blended; count the bands as Meta's reference does.
    const wave = plain.map((f) => (2 * Math.PI) / f);
    const kept = wave.filter((w) => w < 2048).length;
    const divided = wave.filter((w) => w > 8192).length;
    assert.equal(inv.filter((f, j) => f === plain[j]).length, kept);
    assert.equal(inv.filter((f, j) => Math.abs(f - plain[j]! / 8) < 1e-15 * plain[j]!).length, divided);
    assert.ok(kept > 0 && divided > 0 && kept + divided < 64, 'all three bands occur');
  });

  it('yarn: attention factor 0.1·ln(s) + 1, or the mscale ratio', () => {
    const base = { hidden_size: 512, num_attention_heads: 8, rope_theta: 10000, max_position_embeddings: 4096 };
    assert.ok(Math.abs(ropeInit({ ...base, rope_scaling: { rope_type: 'yarn', factor: 4.0 } }, undefined)[1] - (0.1 * Math.log(4) + 1)) < 1e-15);
    const ratio = ropeInit({ ...base, rope_scaling: { rope_type: 'yarn', factor: 40, mscale: 1.0, mscale_all_dim: 0.5 } }, undefined)[1];
    assert.ok(Math.abs(ratio - (0.1 * Math.log(40) + 1) / (0.05 * Math.log(40) + 1)) < 1e-15);
    // With original_max_position_embeddings the factor is the ratio of contexts: 4096 / 1024 = 4.
    assert.ok(Math.abs(ropeInit({ ...base, rope_scaling: { rope_type: 'yarn', factor: 2.0, original_max_position_embeddings: 1024 } }, undefined)[1] - (0.1 * Math.log(4) + 1)) < 1e-15);
  });

  it('dynamic: the plain frequencies up to max_position_embeddings, a larger base past it', () => {
    const cfg = { hidden_size: 64, num_attention_heads: 4, rope_theta: 10000, max_position_embeddings: 64, rope_scaling: { rope_type: 'dynamic', factor: 2.0 } };
    const plain = ropeInit({ ...cfg, rope_scaling: null }, undefined)[0];
    assert.deepEqual(ropeInit(cfg, 64)[0], plain);
    const longer = ropeInit(cfg, 200)[0];
    assert.equal(longer[0], 1);
    assert.ok(longer[7]! < plain[7]!);
    // base' = base · (2·200/64 − 1)^(16/14)
    assert.ok(Math.abs(longer[1]! - 1 / (10000 * (400 / 64 - 1) ** (16 / 14)) ** (2 / 16)) < 1e-15);
  });

  it('longrope (Phi-3): short factors up to the original context, long past it, attention factor from the context ratio', () => {
    const cfg = {
      hidden_size: 64, num_attention_heads: 4, rope_theta: 10000, max_position_embeddings: 2048, original_max_position_embeddings: 64,
      rope_scaling: { type: 'longrope', short_factor: [1, 1.5, 2, 3, 4, 5, 6, 7], long_factor: [2, 3, 4, 5, 6, 7, 8, 9] },
    };
    const [short, a] = ropeInit(cfg, 64);
    const [long] = ropeInit(cfg, 65);
    assert.equal(a, Math.sqrt(1 + Math.log(32) / Math.log(64)));
    assert.equal(short[1], 1 / (1.5 * 10000 ** (2 / 16)));
    assert.equal(long[1], 1 / (3 * 10000 ** (2 / 16)));
    const { cos } = ropeCosSin(cfg, 3);
    assert.equal(cos[0]![0], a, 'cos is scaled by the attention factor');
  });
});
