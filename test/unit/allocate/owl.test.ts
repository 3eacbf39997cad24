import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { owlSparsities } from '../../../src/engine/allocate/owl';

const weightedMean = (values: number[], sizes: number[]): number =>
  values.reduce((s, v, i) => s + v * sizes[i]!, 0) / sizes.reduce((a, b) => a + b, 0);

describe('OWL mapping from outlier ratios to block sparsities', () => {
  it('follows the reference formula when it stays in the band: scale to [0, 2λ], centre, subtract from the target', () => {
    const outliers = [0.01, 0.03, 0.02, 0.04];
    const sizes = [1, 1, 1, 1];
    const s = owlSparsities(outliers, 0.7, 0.08, sizes);
    // (d - min) / (max - min) * 0.16 = [0, 0.1067, 0.0533, 0.16], mean 0.08
    const expected = [0.7 + 0.08, 0.7 - 0.02667, 0.7 + 0.02667, 0.7 - 0.08];
    s.forEach((v, i) => assert.ok(Math.abs(v - expected[i]!) < 1e-4, `block ${i}: ${v} vs ${expected[i]}`));
  });

  it('keeps the size-weighted mean exactly at the target, the band, and the order (more outliers, less pruning)', () => {
    const outliers = [0.002, 0.05, 0.011, 0.013, 0.012, 0.03, 0.009];
    const sizes = [10, 10, 12, 10, 30, 10, 10];
    for (const target of [0.5, 0.6, 0.7]) {
      const s = owlSparsities(outliers, target, 0.08, sizes);
      assert.ok(Math.abs(weightedMean(s, sizes) - target) < 1e-12);
      for (const v of s) assert.ok(v >= target - 0.08 - 1e-12 && v <= target + 0.08 + 1e-12, `${v} outside the band`);
      for (let i = 0; i < s.length; i++) {
        for (let j = 0; j < s.length; j++) if (outliers[i]! > outliers[j]!) assert.ok(s[i]! < s[j]!, `blocks ${i} and ${j} out of order`);
      }
    }
  });

  it('shrinks a skewed distribution into the band instead of clipping it', () => {
    // One outlier-heavy block: centred offsets would be [-0.032, -0.032, -0.032, -0.032, +0.128].
    const s = owlSparsities([0, 0, 0, 0, 1], 0.5, 0.08, [1, 1, 1, 1, 1]);
    assert.ok(Math.abs(s[4]! - 0.42) < 1e-12, `${s[4]}`);
    assert.ok(Math.abs(weightedMean(s, [1, 1, 1, 1, 1]) - 0.5) < 1e-12);
  });

  it('gives every block the target when the outlier ratios are equal', () => {
    assert.deepEqual(owlSparsities([0.02, 0.02, 0.02], 0.6, 0.08, [1, 1, 1]), [0.6, 0.6, 0.6]);
  });
});
