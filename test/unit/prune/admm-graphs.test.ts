import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { GraphBuilder } from '../../../src/engine/graph/onnx-builder';
import { OpRegistry } from '../../../src/engine/graph/op-registry';
import { floatTensor } from '../../../src/engine/graph/session';
import { buildProjection, thresholdMask } from '../../../src/engine/prune/admm-graphs';
import { patternFeeds, patternKey, type Pattern } from '../../../src/engine/prune/mask-graphs';
import { normals } from '../../helpers/random-data';

const ops = new OpRegistry({ provider: 'cpu' });
after(() => ops.release());

async function maskOf(score: Float64Array, rows: number, cols: number, pattern: Pattern): Promise<Float32Array> {
  const build = (): Uint8Array => {
    const g = new GraphBuilder('test_threshold_mask');
    g.output(thresholdMask(g, g.input('score', 'float', [rows, cols]), rows, cols, pattern), 'pruned', 'float', [rows, cols]);
    return g.build();
  };
  const [pruned] = await ops.run(`test.threshold.${rows}x${cols}.${patternKey(pattern)}`, build, { score: floatTensor(Float32Array.from(score), [rows, cols]), ...patternFeeds(pattern, rows) }, ['pruned']);
  return pruned!;
}

/** The reference: in every group (given as flat indices), 1 where the score is at most the group's k-th lowest, sorted in float64. */
function referenceMask(score: Float64Array, groups: number[][], k: (size: number) => number): Float32Array {
  const mask = new Float32Array(score.length);
  for (const group of groups) {
    const count = k(group.length);
    if (count === 0) continue;
    const threshold = group.map((i) => Math.fround(score[i]!)).sort((a, b) => a - b)[count - 1]!;
    for (const i of group) mask[i] = Math.fround(score[i]!) <= threshold ? 1 : 0;
  }
  return mask;
}

const count = (mask: Float32Array): number => mask.reduce((n, v) => n + v, 0);

describe('thresholdMask: the ADMM projection prunes what a float64 sort prunes', () => {
  const [rows, cols] = [24, 38];
  const score = normals(rows * cols, 7).map(Math.abs);

  for (const sparsity of [0.3, 0.5, 0.8]) {
    it(`the whole matrix at ${sparsity * 100}%: the count lowest, exactly`, async () => {
      const k = Math.round(rows * cols * sparsity);
      const ours = await maskOf(score, rows, cols, { kind: 'matrix', count: k });
      assert.deepEqual(ours, referenceMask(score, [[...score.keys()]], () => k));
      assert.equal(count(ours), k);
    });
  }

  for (const [n, m] of [[2, 4], [4, 8], [1, 3]] as const) {
    it(`${n}:${m}: n lowest of every m inputs in a row, and the tail of ${cols % m} inputs its share`, async () => {
      const groups: number[][] = [];
      for (let r = 0; r < rows; r++) {
        for (let c = 0; c < cols; c += m) groups.push(Array.from({ length: Math.min(m, cols - c) }, (_, j) => r * cols + c + j));
      }
      const ours = await maskOf(score, rows, cols, { kind: 'nm', n, m });
      assert.deepEqual(ours, referenceMask(score, groups, (size) => Math.floor((n * size) / m)));
    });
  }

  it('ties with the threshold are all pruned (at least the count)', async () => {
    const tied = Float64Array.from(score, (v, i) => (i % 3 === 0 ? 0 : v));
    const k = Math.round(rows * cols * 0.2);
    const ours = await maskOf(tied, rows, cols, { kind: 'matrix', count: k });
    assert.deepEqual(ours, referenceMask(tied, [[...tied.keys()]], () => k));
    assert.equal(count(ours), Math.ceil((rows * cols) / 3));
  });
});

describe('buildProjection: exactly the count, as a float64 sort chooses', () => {
  const [rows, cols] = [24, 38];
  const z = normals(rows * cols, 11);

  /** The count lowest |z| by a stable float64 sort: ties go to the lower flat index, as a sorted TopK does. */
  function reference(values: Float64Array, k: number): Float32Array {
    const order = [...values.keys()].sort((a, b) => Math.abs(Math.fround(values[a]!)) - Math.abs(Math.fround(values[b]!)) || a - b);
    const mask = new Float32Array(values.length);
    for (const i of order.slice(0, k)) mask[i] = 1;
    return mask;
  }

  async function project(values: Float64Array, k: number): Promise<{ d: Float32Array; pruned: Float32Array }> {
    const pattern: Pattern = { kind: 'matrix', count: k };
    const [d, pruned] = await ops.run(`test.projection.${rows}x${cols}`, () => buildProjection(rows, cols, pattern), { z: floatTensor(Float32Array.from(values), [rows, cols]), ...patternFeeds(pattern, rows) }, ['d', 'pruned']);
    return { d: d!, pruned: pruned! };
  }

  for (const sparsity of [0.3, 0.5, 0.8]) {
    it(`${sparsity * 100}% of distinct values: the count lowest, and d zero exactly there`, async () => {
      const k = Math.round(rows * cols * sparsity);
      const { d, pruned } = await project(z, k);
      assert.deepEqual(pruned, reference(z, k));
      for (let i = 0; i < z.length; i++) assert.equal(d[i], pruned[i] ? 0 : Math.fround(z[i]!));
    });
  }

  it('ties with the threshold: only as many as the count needs, the first in row-major order', async () => {
    // Every third entry is ±0.25 (the threshold falls among them) or zero: far more ties than the count can take.
    const tied = Float64Array.from(z, (v, i) => (i % 3 === 0 ? (i % 2 ? 0.25 : -0.25) : i % 7 === 0 ? 0 : v));
    const below = tied.filter((v) => Math.abs(v) < 0.25).length;
    const k = below + 17;
    const { pruned } = await project(tied, k);
    assert.equal(count(pruned), k);
    assert.deepEqual(pruned, reference(tied, k));
  });
});
