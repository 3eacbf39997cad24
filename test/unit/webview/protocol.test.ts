import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isFromHeatmap, isFromWebview, MAX_BLOCKS, restorableHeatmap, restorableState, type FromWebview, type HeatmapFromWebview, type ToWebview } from '../../../src/shared/protocol';

const blocks = [0.5, 0.55, 0.6, 0.65, 0.7];

describe('allocation panel protocol: inbound messages', () => {
  it('accepts every well-formed message', () => {
    const valid: FromWebview[] = [
      { type: 'ready' },
      { type: 'cancel' },
      { type: 'openReport', output: '/m-wanda-50' },
      { type: 'computePlans', method: 'wanda', target: 0.7, quick: true },
      { type: 'computePlans', method: 'sparsegpt', target: 0.95, quick: false },
      { type: 'requestEstimate', requestId: 0, allocation: 'owl', blocks },
      { type: 'requestEstimate', requestId: Number.MAX_SAFE_INTEGER, allocation: 'besa', blocks: [0, 0.999] },
      { type: 'apply', allocation: 'uniform', blocks },
      { type: 'export', allocation: 'besa', blocks },
      { type: 'export', what: 'plan', allocation: 'besa', blocks, linears: blocks.map((_, i) => (i === 1 ? [0.5, 0.6, 0.7, 0.5, 0.5, 0.5, 0.4] : null)) },
      { type: 'apply', allocation: 'owl', blocks, linears: blocks.map(() => null) },
    ];
    for (const message of valid) assert.ok(isFromWebview(message), JSON.stringify(message));
  });

  it('ignores extra fields but never a missing or mistyped one', () => {
    assert.ok(isFromWebview({ type: 'ready', extra: 1 }));
    const malformed: unknown[] = [
      null,
      undefined,
      'ready',
      42,
      [],
      [{ type: 'ready' }],
      {},
      { type: 42 },
      { type: 'setBlock', layer: 1, sparsity: 0.5 },
      { type: 'READY' },
      { type: 'computePlans', method: 'wanda' },
      { type: 'computePlans', method: 'random', target: 0.5 },
      { type: 'computePlans', method: 'toString', target: 0.5 },
      { type: 'computePlans', method: 'wanda', target: 0, quick: true },
      { type: 'computePlans', method: 'wanda', target: 0.96 },
      { type: 'computePlans', method: 'wanda', target: Number.NaN },
      { type: 'computePlans', method: 'wanda', target: '0.5' },
      { type: 'requestEstimate', allocation: 'owl', blocks },
      { type: 'requestEstimate', requestId: -1, allocation: 'owl', blocks },
      { type: 'requestEstimate', requestId: 1.5, allocation: 'owl', blocks },
      { type: 'requestEstimate', requestId: '1', allocation: 'owl', blocks },
      { type: 'requestEstimate', requestId: 1, allocation: 'manual', blocks },
      { type: 'requestEstimate', requestId: 1, allocation: '__proto__', blocks },
      { type: 'requestEstimate', requestId: 1, allocation: 'owl', blocks: [] },
      { type: 'requestEstimate', requestId: 1, allocation: 'owl', blocks: [0.5, 1] },
      { type: 'requestEstimate', requestId: 1, allocation: 'owl', blocks: [0.5, -0.01] },
      { type: 'requestEstimate', requestId: 1, allocation: 'owl', blocks: [0.5, Number.POSITIVE_INFINITY] },
      { type: 'requestEstimate', requestId: 1, allocation: 'owl', blocks: [0.5, null] },
      { type: 'requestEstimate', requestId: 1, allocation: 'owl', blocks: { 0: 0.5, length: 1 } },
      { type: 'requestEstimate', requestId: 1, allocation: 'owl', blocks: new Array(MAX_BLOCKS + 1).fill(0.5) },
      { type: 'apply', blocks },
      { type: 'apply', allocation: 'owl' },
      { type: 'export', allocation: 'owl', blocks: '0.5,0.5' },
      { type: 'export', what: 'weights', allocation: 'owl', blocks },
      { type: 'apply', allocation: 'owl', blocks, linears: [null] },
      { type: 'apply', allocation: 'owl', blocks, linears: blocks.map(() => [1]) },
      { type: 'apply', allocation: 'owl', blocks, linears: blocks.map(() => []) },
      { type: 'openReport' },
      { type: 'openReport', output: '' },
      { type: 'computePlans', method: 'wanda', target: 0.5 },
    ];
    for (const message of malformed) assert.equal(isFromWebview(message), false, JSON.stringify(message));
  });

  it('turns malformed message literals into compile errors', () => {
    const rejected: unknown[] = [
      // @ts-expect-error the message types are closed: an unknown type does not compile
      { type: 'setBlock', layer: 1, sparsity: 0.5 } satisfies FromWebview,
      // @ts-expect-error block sparsities are numbers
      { type: 'apply', allocation: 'owl', blocks: ['0.5'] } satisfies FromWebview,
      // @ts-expect-error an estimate request needs its id
      { type: 'requestEstimate', allocation: 'owl', blocks } satisfies FromWebview,
      // @ts-expect-error only the engine's methods can be planned
      { type: 'computePlans', method: 'random', target: 0.5 } satisfies FromWebview,
      // @ts-expect-error a hand-edited plan is not an allocation to start from
      { type: 'export', allocation: 'manual', blocks } satisfies FromWebview,
      // @ts-expect-error the host's messages have their own shapes: an estimate carries its score
      { type: 'estimate', requestId: 1, perBlock: [], target: 0.5 } satisfies ToWebview,
      // @ts-expect-error perplexity is a number or null, never missing
      { type: 'done', job: 'apply', output: '/m', ppl: 4 } satisfies ToWebview,
    ];
    // The runtime check agrees with the compiler on the inbound ones.
    for (const message of rejected.slice(0, 5)) assert.equal(isFromWebview(message), false, JSON.stringify(message));
  });
});

describe('allocation panel protocol: restoring a panel', () => {
  it('needs the model, the method and the target', () => {
    assert.deepEqual(restorableState({ model: '/m', method: 'wanda', target: 0.6, blocks: [0.6] }), { model: '/m', method: 'wanda', target: 0.6 });
    for (const state of [undefined, null, {}, { model: '', method: 'wanda', target: 0.6 }, { model: '/m', method: 'x', target: 0.6 }, { model: '/m', method: 'wanda', target: 1 }]) {
      assert.equal(restorableState(state), undefined, JSON.stringify(state));
    }
  });
});

describe('expert heat map protocol: inbound messages', () => {
  it('accepts well-formed messages and refuses malformed selections', () => {
    const valid: HeatmapFromWebview[] = [
      { type: 'ready' },
      { type: 'computeStats' },
      { type: 'cancel' },
      { type: 'requestCost', requestId: 3, selection: { '0': [3, 5], '2': [1] } },
      { type: 'apply', selection: {} },
      { type: 'openReport', output: '/m-experts-removed-3-abcdef' },
    ];
    for (const message of valid) assert.ok(isFromHeatmap(message), JSON.stringify(message));
    const malformed: unknown[] = [
      { type: 'apply' },
      { type: 'apply', selection: [[0, 3]] },
      { type: 'apply', selection: { L0: [3] } },
      { type: 'apply', selection: { '0': [-1] } },
      { type: 'apply', selection: { '0': [1.5] } },
      { type: 'apply', selection: { '0': '3' } },
      { type: 'requestCost', selection: { '0': [3] } },
      { type: 'openReport', output: '' },
      { type: 'computePlans' },
    ];
    for (const message of malformed) assert.ok(!isFromHeatmap(message), JSON.stringify(message));
    assert.equal(restorableHeatmap({ model: '/ws/moe', metric: 'reap' }), '/ws/moe');
    assert.equal(restorableHeatmap({ metric: 'reap' }), undefined);
  });
});

