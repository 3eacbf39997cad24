import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { PythonRandom } from '../../../src/engine/calibrate/python-random';

/** Expected values printed by CPython 3.11: `random.seed(s); [random.randint(a, b) for _ in range(n)]`. */
describe('CPython-compatible random', () => {
  it('draws the same randint sequence as CPython for the same seed', () => {
    const draw = (seed: number, a: number, b: number, n: number) => {
      const r = new PythonRandom(seed);
      return Array.from({ length: n }, () => r.randint(a, b));
    };
    assert.deepEqual(draw(0, 0, 303853, 6), [201979, 220500, 21225, 135746, 268055, 254766]);
    assert.deepEqual(draw(1234, 0, 999, 6), [989, 796, 451, 119, 7, 92]);
    assert.deepEqual(draw(2 ** 40 + 7, 0, 2 ** 31, 4), [2044078442, 1077368710, 544390359, 1611772094]);
    // A power of two: CPython draws bit_length(n) bits and rejects, one bit more than needed.
    assert.deepEqual(draw(5, 0, 1023, 6), [523, 734, 59, 953, 510, 106]);
  });
});
