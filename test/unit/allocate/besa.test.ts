import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { besaRatios } from '../../../src/engine/allocate/allocation';
import { allocateByError, ladder, type ErrorCurve } from '../../../src/engine/allocate/besa';
import { linearSizes, type ErrorTable } from '../../../src/engine/allocate/plan';
import { PruneLensError } from '../../../src/engine/errors';
import { LINEARS, parseModelConfig, type LinearName } from '../../../src/engine/model/config';
import { seededRandom } from '../../helpers/seeded-random';

const cfg = parseModelConfig(
  { model_type: 'llama', hidden_size: 64, intermediate_size: 172, num_hidden_layers: 5, num_attention_heads: 8, num_key_value_heads: 4, vocab_size: 512 },
  'config.json',
);
const sizes = linearSizes(cfg);

/** Convex random error curves (scale · r^power, power > 1), so linear interpolation between measured points is the curve's hull. */
function randomCurves(ratios: number[], count: number, seed: number, size: () => number): ErrorCurve[] {
  const random = seededRandom(seed);
  return Array.from({ length: count }, () => {
    const scale = 0.1 + random() * 10;
    const power = 1.5 + random() * 2;
    return { size: size(), ratios, errors: ratios.map((r) => scale * Math.pow(r, power)) };
  });
}

/** The error of a curve at any ratio: linear between measured points, zero at 0 (the independent reading of a choice). */
function errorAt(c: ErrorCurve, x: number): number {
  const xs = [0, ...c.ratios];
  const ys = [0, ...c.errors];
  for (let i = 1; i < xs.length; i++) if (x <= xs[i]! + 1e-12) return ys[i - 1]! + ((x - xs[i - 1]!) / (xs[i]! - xs[i - 1]!)) * (ys[i]! - ys[i - 1]!);
  throw new Error(`ratio ${x} past the curve`);
}

const pruned = (curves: ErrorCurve[], chosen: number[]) => curves.reduce((n, c, i) => n + c.size * chosen[i]!, 0);
const total = (curves: ErrorCurve[], chosen: number[]) => curves.reduce((n, c, i) => n + errorAt(c, chosen[i]!), 0);

describe('BESA-style search over measured error curves', () => {
  it('builds a ladder of 0.05 steps around the target, within [0, 0.95], always holding the target', () => {
    assert.deepEqual(ladder(0.5), [0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7]);
    assert.deepEqual(ladder(0.9), [0.7, 0.75, 0.8, 0.85, 0.9, 0.95]);
    assert.deepEqual(ladder(0.1), [0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3]);
    assert.deepEqual(ladder(0.97), [0.77, 0.82, 0.87, 0.92, 0.97]);
  });

  it('meets the budget exactly for any sizes and is never worse than uniform', () => {
    for (const target of [0.3, 0.5, 0.7, 0.9, 0.97]) {
      const ratios = ladder(target);
      for (let seed = 1; seed <= 20; seed++) {
        const random = seededRandom(1000 + seed);
        // Odd sizes with no common factor: the budget must still hold to the weight.
        const curves = randomCurves(ratios, 35, seed, () => 1 + Math.floor(random() * 50_000));
        const chosen = allocateByError(curves, target);
        const budget = target * curves.reduce((n, c) => n + c.size, 0);
        assert.ok(Math.abs(pruned(curves, chosen) - budget) < 1e-6, `target ${target} seed ${seed}: ${pruned(curves, chosen)} vs ${budget}`);
        assert.ok(total(curves, chosen) <= total(curves, curves.map(() => target)) + 1e-12, `target ${target} seed ${seed}`);
        // Every ratio but at most one is a measured one (or 0): the search does not invent a continuum.
        const between = chosen.filter((r, i) => r !== 0 && !curves[i]!.ratios.includes(r));
        assert.ok(between.length <= 1, `${between.length} ratios between measured points`);
      }
    }
  });

  it('finds the optimum that an exhaustive search over a fine grid finds', () => {
    const ratios = ladder(0.6);
    for (let seed = 1; seed <= 10; seed++) {
      const curves = randomCurves(ratios, 3, 100 + seed, () => 0).map((c, i) => ({ ...c, size: [4096, 2048, 11008][i]! }));
      const budget = 0.6 * curves.reduce((n, c) => n + c.size, 0);
      const max = ratios[ratios.length - 1]!;
      let best = Infinity;
      for (let a = 0; a <= max + 1e-9; a += 0.002) {
        for (let b = 0; b <= max + 1e-9; b += 0.002) {
          const c = (budget - curves[0]!.size * a - curves[1]!.size * b) / curves[2]!.size;
          if (c >= 0 && c <= max) best = Math.min(best, total(curves, [a, b, c]));
        }
      }
      const found = total(curves, allocateByError(curves, 0.6));
      assert.ok(found <= best + 1e-12, `seed ${seed}: ${found} above the grid's ${best}`);
      assert.ok(found >= best * (1 - 1e-3), `seed ${seed}: ${found} far below the grid's ${best}: the budget is not what the grid holds`);
    }
  });

  it('prunes the linears whose error grows slowly, and leaves a linear that costs nothing at its highest ratio', () => {
    const ratios = ladder(0.5);
    const cheap: ErrorCurve = { size: 1000, ratios, errors: ratios.map((r) => r * r) };
    const dear: ErrorCurve = { size: 1000, ratios, errors: ratios.map((r) => 10 * r * r) };
    const free: ErrorCurve = { size: 500, ratios, errors: ratios.map(() => 0) };
    const [c, d, f] = allocateByError([cheap, dear, free], 0.5);
    assert.equal(f, 0.7);
    assert.ok(c! > d!, `cheap ${c} should be pruned more than dear ${d}`);
    assert.ok(Math.abs(1000 * c! + 1000 * d! + 500 * f! - 0.5 * 2500) < 1e-9);
  });

  it('skips a measured point above the hull (an error that falls as the ratio grows is noise, not a choice)', () => {
    const ratios = [0.4, 0.5, 0.6];
    // 0.5 lies above the chord from 0.4 to 0.6: the linear stops at 0.4 or 0.6, never there.
    const bumpy: ErrorCurve = { size: 100, ratios, errors: [1, 3, 3.2] };
    // A large linear that takes what is left of the budget, so the bumpy one takes only whole segments.
    const large: ErrorCurve = { size: 10_000, ratios, errors: [0.01, 100, 1000] };
    for (const [target, expected] of [[0.45, 0.4], [0.55, 0.6]] as const) {
      const chosen = allocateByError([bumpy, large], target);
      assert.equal(chosen[0], expected, `target ${target}`);
      assert.ok(Math.abs(pruned([bumpy, large], chosen) - target * 10_100) < 1e-9, `target ${target}: ${chosen.join(', ')}`);
    }
  });

  it('refuses a budget past every linear\'s highest ratio', () => {
    const ratios = [0.4, 0.5, 0.6];
    assert.throws(() => allocateByError([{ size: 10, ratios, errors: [1, 2, 3] }], 0.7), (err: unknown) => err instanceof PruneLensError && /cannot prune 0\.7/.test(err.message));
  });
});

describe('BESA-style ratios for a whole model', () => {
  const ratios = ladder(0.6);
  /** Two blocks with the same raw errors; the second's dense output is ten times larger. */
  const table: ErrorTable = {
    ratios,
    windows: 4,
    outputNorms: [1, 10],
    errors: [0, 1].map(() => Object.fromEntries(LINEARS.map((l, i) => [l, ratios.map((r) => (1 + i) * r * r)])) as Record<LinearName, number[]>),
  };

  it('compares blocks by error relative to their output, so the block whose output hides its errors is pruned more', () => {
    const [first, second] = besaRatios(table, sizes, 0.6);
    const share = (r: Partial<Record<LinearName, number>>) => LINEARS.reduce((n, l) => n + sizes[l] * r[l]!, 0) / LINEARS.reduce((n, l) => n + sizes[l], 0);
    assert.ok(share(second!) > share(first!) + 0.05, `${share(first!)} vs ${share(second!)}`);
    const everything = 2 * LINEARS.reduce((n, l) => n + sizes[l], 0);
    assert.ok(Math.abs(LINEARS.reduce((n, l) => n + sizes[l] * (first![l]! + second![l]!), 0) - 0.6 * everything) < 1e-6);
  });

  it('gives ratios only to the linears that were measured (the targeted ones)', () => {
    const partial: ErrorTable = { ...table, errors: table.errors.map((e) => ({ 'mlp.up_proj': e['mlp.up_proj'], 'mlp.down_proj': e['mlp.down_proj'] }) as Record<LinearName, number[]>) };
    const chosen = besaRatios(partial, sizes, 0.6);
    for (const block of chosen) assert.deepEqual(Object.keys(block).sort(), ['mlp.down_proj', 'mlp.up_proj']);
    const budget = 0.6 * 4 * sizes['mlp.up_proj'];
    assert.ok(Math.abs(chosen.reduce((n, b) => n + sizes['mlp.up_proj'] * (b['mlp.up_proj']! + b['mlp.down_proj']!), 0) - budget) < 1e-6);
  });
});
