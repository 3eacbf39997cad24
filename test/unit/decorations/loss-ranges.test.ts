import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  hoverText,
  legend,
  LEVELS,
  levelOf,
  lossBuckets,
  lossSegments,
  segmentAt,
  THRESHOLDS,
  worstFirst,
  type LossBuckets,
  type Span,
  type TokenLossColumns,
} from '../../../src/extension/decorations/loss-ranges';
import { seededRandom } from '../../helpers/seeded-random';

/** Tokens given as [start, end, dense, pruned]. */
function columns(tokens: [number, number, number, number][]): TokenLossColumns {
  return {
    starts: Int32Array.from(tokens.map((t) => t[0])),
    ends: Int32Array.from(tokens.map((t) => t[1])),
    dense: Float32Array.from(tokens.map((t) => t[2])),
    pruned: Float32Array.from(tokens.map((t) => t[3])),
  };
}

function allSpans(b: LossBuckets): Span[] {
  return [...b.worse.flat(), ...b.better.flat(), ...b.neutral].sort((x, y) => x[0] - y[0]);
}

describe('inline loss diff: levels', () => {
  it('puts each threshold at the start of its level, on both sides, with a neutral band around 0', () => {
    assert.equal(levelOf(0), 0);
    assert.equal(levelOf(THRESHOLDS[0] - 1e-9), 0);
    assert.equal(levelOf(-(THRESHOLDS[0] - 1e-9)), 0);
    THRESHOLDS.forEach((t, k) => {
      assert.equal(levelOf(t), k + 1, `+${t}`);
      assert.equal(levelOf(-t), -(k + 1), `-${t}`);
      if (k + 1 < LEVELS) assert.equal(levelOf(THRESHOLDS[k + 1]! - 1e-9), k + 1);
    });
    assert.equal(levelOf(1e9), LEVELS);
    assert.equal(levelOf(Number.POSITIVE_INFINITY), LEVELS);
    assert.equal(levelOf(Number.NEGATIVE_INFINITY), -LEVELS);
    assert.equal(levelOf(Number.NaN), 0);
  });
});

describe('inline loss diff: ranges', () => {
  const text = 'Once upon a time, there was a cat.';
  // Whitespace-led tokens as a BPE tokenizer places them; the first token ("Once") is context only.
  const tokens: [number, number, number, number][] = [
    [4, 9, 1.0, 1.05], // " upon": +0.05, neutral
    [9, 11, 0.5, 0.8], // " a": +0.3, level 1
    [11, 16, 2.0, 0.9], // " time": -1.1, level -3
    [16, 17, 0.2, 2.5], // ",": +2.3, level 4
    [17, 23, 1.0, 1.6], // " there": +0.6, level 2
    [23, 27, 0.7, 0.4], // " was": -0.3, level -1
    [27, 29, 0.1, 0.1], // " a": neutral
    [29, 33, 3.0, 7.5], // " cat": +4.5, level 5
    [33, 34, 0.05, 0.05], // ".": neutral
  ];
  const segments = lossSegments(columns(tokens));

  it('buckets every token by its change', () => {
    const b = lossBuckets(segments);
    assert.deepEqual(b.worse, [[[9, 11]], [[17, 23]], [], [[16, 17]], [[29, 33]]]);
    assert.deepEqual(b.better, [[[23, 27]], [], [[11, 16]], [], []]);
    assert.deepEqual(b.neutral, [[4, 9], [27, 29], [33, 34]]);
  });

  it('covers exactly the tokens, sorted and without overlaps', () => {
    const spans = allSpans(lossBuckets(segments));
    assert.deepEqual(spans, tokens.map(([s, e]) => [s, e]));
    for (let i = 1; i < spans.length; i++) assert.ok(spans[i - 1]![1] <= spans[i]![0], `${spans[i - 1]} overlaps ${spans[i]}`);
    for (const bucket of [...lossBuckets(segments).worse, ...lossBuckets(segments).better]) {
      for (let i = 1; i < bucket.length; i++) assert.ok(bucket[i - 1]![0] < bucket[i]![0], 'each bucket is sorted');
    }
    assert.equal(text.slice(29, 33), ' cat');
  });

  it('keeps only the segments that touch a visible window', () => {
    const b = lossBuckets(segments, { from: 12, to: 24 });
    assert.deepEqual(allSpans(b), [[11, 16], [16, 17], [17, 23], [23, 27]]);
    assert.deepEqual(allSpans(lossBuckets(segments, { from: 34, to: 100 })), []);
    assert.deepEqual(allSpans(lossBuckets(segments, { from: 0, to: 4 })), []);
    assert.deepEqual(allSpans(lossBuckets(segments, { from: 0, to: 5 })), [[4, 9]]);
  });

  it('merges tokens that share characters and adds their losses', () => {
    // "é" split over two byte tokens, both spanning the same character, then a token with no characters.
    const merged = lossSegments(columns([[0, 3, 1, 1], [3, 4, 0.5, 1.5], [3, 4, 0.25, 0.75], [4, 4, 0.1, 0.2], [4, 8, 1, 1]]));
    assert.deepEqual([...merged.starts], [0, 3, 4]);
    assert.deepEqual([...merged.ends], [3, 4, 8]);
    assert.deepEqual([...merged.tokens], [1, 3, 1]);
    assert.ok(Math.abs(merged.pruned[1]! - merged.dense[1]! - (1 + 0.5 + 0.1)) < 1e-6);
    assert.deepEqual(lossBuckets(merged).worse[2], [[3, 4]], '+1.6 nats is level 3');
  });

  it('sorts tokens that arrive out of order and drops what cannot be drawn', () => {
    const s = lossSegments(columns([[5, 9, 1, 2], [0, 5, 1, 1], [9, 9, 0, 0]]));
    assert.deepEqual([...s.starts], [0, 5]);
    assert.deepEqual([...s.tokens], [1, 2]);
    assert.equal(lossSegments(columns([])).starts.length, 0);
    assert.equal(lossSegments(columns([[3, 3, 1, 1]])).starts.length, 0);
  });

  it('holds on random token streams: exact cover of the characters, no overlaps, every token counted', () => {
    const random = seededRandom(7);
    for (let round = 0; round < 50; round++) {
      const list: [number, number, number, number][] = [];
      let at = 0;
      for (let i = 0; i < 200; i++) {
        // Mostly fresh spans, sometimes a repeat of the last (byte tokens) or an empty one.
        const r = random();
        const prev = list[list.length - 1];
        if (r < 0.1 && prev) list.push([prev[0], prev[1], random() * 3, random() * 3]);
        else if (r < 0.15) list.push([at, at, random(), random()]);
        else {
          const len = 1 + Math.floor(random() * 6);
          list.push([at, at + len, random() * 3, random() * 3]);
          at += len;
        }
      }
      const s = lossSegments(columns(list));
      const spans = allSpans(lossBuckets(s));
      const covered = new Set<number>();
      for (const [a, b] of spans) for (let c = a; c < b; c++) covered.add(c);
      const expected = new Set<number>();
      for (const [a, b] of list) for (let c = a; c < b; c++) expected.add(c);
      assert.deepEqual([...covered].sort((x, y) => x - y), [...expected].sort((x, y) => x - y));
      for (let i = 1; i < spans.length; i++) assert.ok(spans[i - 1]![1] <= spans[i]![0]);
      // Empty tokens join a neighbour, so with any characters at all no token's loss is lost.
      assert.equal([...s.tokens].reduce((a, b) => a + b, 0), list.length);
      const total = (xs: ArrayLike<number>): number => Array.from(xs).reduce((a, b) => a + b, 0);
      assert.ok(Math.abs(total(s.pruned) - total(columns(list).pruned)) < 1e-3);
    }
  });
});

describe('inline loss diff: hover', () => {
  const s = lossSegments(columns([[0, 4, Math.log(2), Math.log(8)], [4, 8, 1, 1.01]]));

  it('finds the segment under a character', () => {
    assert.equal(segmentAt(s, 0), 0);
    assert.equal(segmentAt(s, 3), 0);
    assert.equal(segmentAt(s, 4), 1);
    assert.equal(segmentAt(s, 8), undefined);
  });

  it('gives both losses, the change, and their exponentials', () => {
    const text = hoverText(s, 0);
    assert.match(text, /dense: 0\.693 nats \(p = 0\.500, 1 in 2\.0\)/);
    assert.match(text, /pruned: 2\.079 nats \(p = 0\.125, 1 in 8\.0\)/);
    assert.match(text, /change: \+1\.386 nats, 4\.00× less likely after pruning \(level 3 of ±5\)/);
    assert.match(hoverText(s, 1), /about the same \(level 0/);
    assert.match(hoverText(lossSegments(columns([[0, 1, 0.05, 0.1]])), 0), /dense: 0\.050 nats \(p = 0\.951\)/);
  });
});

describe('inline loss diff: the token, the legend and the worst tokens', () => {
  const s = lossSegments(columns([[0, 4, 1, 3], [4, 8, 1, 0.5], [8, 9, 1, 5], [9, 12, 2, 2]]));

  it('names the hovered token with its escapes shown, and the two runs compared', () => {
    assert.match(hoverText(s, 0, ' the\n'), /\*\*PruneLens token loss\*\* `" the\\n"`/);
    assert.match(hoverText(s, 0, 'a`b'), /`"a'b"`/, 'a backtick would end the code span');
    const text = hoverText(s, 0, 'x', { before: 'run A', after: 'run B' });
    assert.match(text, /run A: 1\.000 nats/);
    assert.match(text, /run B: 3\.000 nats/);
    assert.match(text, /less likely in run B/);
  });

  it('walks tokens from the largest rise in loss to the largest fall', () => {
    assert.deepEqual(Array.from(worstFirst(s)), [2, 0, 3, 1]);
  });

  it('draws a swatch for every level, labelled with its threshold, in the text it returns', () => {
    const { text, swatches } = legend();
    assert.equal(swatches.length, 2 * LEVELS);
    assert.deepEqual(swatches.map((w) => w.level).sort((a, b) => a - b), [-5, -4, -3, -2, -1, 1, 2, 3, 4, 5]);
    for (const w of swatches) {
      const label = text.slice(w.start, w.end).trim();
      assert.equal(label, `${w.level > 0 ? '+' : '-'}${THRESHOLDS[Math.abs(w.level) - 1]}`);
    }
    assert.ok(text.endsWith('\n\n'), 'a blank line separates the legend from the text');
    assert.ok(text.indexOf('\n') < 100, 'the swatches fit an editor line');
    assert.match(text, /Red: the pruned model is less sure/);
    assert.match(legend({ before: 'A', after: 'B' }).text, /B minus A\. Red: the second run is less sure/);
  });
});
