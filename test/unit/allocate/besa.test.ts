import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { chooseRatios, ladder } from '../../../src/engine/allocate/besa';
import { linearSizes } from '../../../src/engine/allocate/plan';
import { LINEARS, parseModelConfig, type LinearName } from '../../../src/engine/model/config';
import { seededRandom } from '../../helpers/seeded-random';

const cfg = parseModelConfig(
  { model_type: 'llama', hidden_size: 64, intermediate_size: 172, num_hidden_layers: 5, num_attention_heads: 8, num_key_value_heads: 4, vocab_size: 512 },
  'config.json',
);
const sizes = linearSizes(cfg);

/** Convex-ish random error curves: error grows faster the more a linear is pruned, with random scales. */
function randomErrors(ratios: number[], seed: number): Record<LinearName, number[]> {
  const random = seededRandom(seed);
  return Object.fromEntries(LINEARS.map((l) => {
    const scale = 0.1 + random() * 10;
    const power = 1.5 + random() * 2;
    return [l, ratios.map((r) => scale * Math.pow(r, power) * (1 + 0.05 * random()))];
  })) as Record<LinearName, number[]>;
}

const cost = (chosen: Partial<Record<LinearName, number>>, linears: readonly LinearName[]) => linears.reduce((n, l) => n + sizes[l] * chosen[l]!, 0);
const error = (chosen: Partial<Record<LinearName, number>>, errors: Record<LinearName, number[]>, ratios: number[], linears: readonly LinearName[]) =>
  linears.reduce((n, l) => n + errors[l][ratios.indexOf(chosen[l]!)]!, 0);

describe('BESA-style search over a ladder of ratios', () => {
  it('builds a ladder of 0.05 steps around the target, within [0, 0.95]', () => {
    assert.deepEqual(ladder(0.5), [0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7]);
    assert.deepEqual(ladder(0.9), [0.7, 0.75, 0.8, 0.85, 0.9, 0.95]);
    assert.deepEqual(ladder(0.1), [0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3]);
  });

  it('meets the block budget exactly and is never worse than uniform', () => {
    for (const target of [0.5, 0.6, 0.7, 0.9]) {
      const ratios = ladder(target);
      for (let seed = 1; seed <= 20; seed++) {
        const errors = randomErrors(ratios, seed);
        const chosen = chooseRatios(LINEARS, errors, sizes, ratios, target);
        const budget = target * LINEARS.reduce((n, l) => n + sizes[l], 0);
        assert.ok(Math.abs(cost(chosen, LINEARS) - budget) < 1e-6, `target ${target} seed ${seed}: ${cost(chosen, LINEARS)} vs ${budget}`);
        const uniform = Object.fromEntries(LINEARS.map((l) => [l, target]));
        assert.ok(error(chosen, errors, ratios, LINEARS) <= error(uniform, errors, ratios, LINEARS) + 1e-12);
      }
    }
  });

  it('finds the optimum that brute force finds', () => {
    const linears: LinearName[] = ['self_attn.q_proj', 'self_attn.k_proj', 'self_attn.v_proj', 'mlp.up_proj'];
    const ratios = ladder(0.6);
    for (let seed = 1; seed <= 10; seed++) {
      const errors = randomErrors(ratios, 100 + seed);
      const budget = 0.6 * linears.reduce((n, l) => n + sizes[l], 0);
      let best = Infinity;
      const walk = (i: number, chosen: Partial<Record<LinearName, number>>): void => {
        if (i === linears.length) {
          if (Math.abs(cost(chosen, linears) - budget) < 1e-6) best = Math.min(best, error(chosen, errors, ratios, linears));
          return;
        }
        for (const r of ratios) walk(i + 1, { ...chosen, [linears[i]!]: r });
      };
      walk(0, {});
      const chosen = chooseRatios(linears, errors, sizes, ratios, 0.6);
      assert.ok(Math.abs(error(chosen, errors, ratios, linears) - best) < 1e-12, `seed ${seed}`);
    }
  });

  it('stays uniform when every linear costs the same at every ratio', () => {
    const ratios = ladder(0.5);
    const flat = Object.fromEntries(LINEARS.map((l) => [l, ratios.map(() => 1)])) as Record<LinearName, number[]>;
    assert.deepEqual(chooseRatios(LINEARS, flat, sizes, ratios, 0.5), Object.fromEntries(LINEARS.map((l) => [l, 0.5])));
  });
});
