import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { PruneRecord } from '../../../src/engine/export/record';
import type { StructuredRecord } from '../../../src/engine/structured/structured-prune';
import { compareTable } from '../../../src/extension/runs/compare-table';
import { heatLevels } from '../../../src/extension/trees/model-outline';

const pruned = (fields: Partial<PruneRecord>): PruneRecord =>
  ({
    created: '2026-11-27T08:12:00.000Z',
    method: 'wanda',
    sparsity: 0.5,
    nm: null,
    plan: { allocation: 'owl' },
    perplexity: { dense: 4.6482, pruned: 18.8412 },
    evaluation: { file: '/d/eval.txt', seqlen: 256, windows: 595, tokens: 152320 },
    measured: { sparsity: 0.5, modelSparsity: 0.4167 },
    layers: [0.45, 0.5, 0.55].map((sparsity, layer) => ({ layer, sparsity, seconds: 1, rssMb: 1, ratios: {} })),
    seconds: { total: 12.34, prune: 5 },
    ...fields,
  }) as PruneRecord;

describe('Compare Runs: one table', () => {
  it('puts perplexity, sparsity overall and per block, size and time of every run side by side', () => {
    const md = compareTable([
      { folder: '/w/stories260K-wanda-owl-50', record: pruned({}), bytes: 2.5 * 2 ** 20 },
      { folder: '/w/stories260K-sparsegpt-50', record: pruned({ method: 'sparsegpt', plan: { allocation: 'uniform' } as PruneRecord['plan'], perplexity: { dense: 4.6482, pruned: 12.5 }, layers: [] }), bytes: 2 ** 20 },
      {
        folder: '/w/stories260K-removed-L4',
        record: { kind: 'structured', created: '2026-11-27T09:00:00Z', target: null, explicit: { heads: [], layers: [4] }, perplexity: { dense: 4.6482, pruned: 30 }, evaluation: null, parameters: { removedFraction: 0.175 }, seconds: { total: 3 } } as unknown as StructuredRecord,
        bytes: 2 ** 21,
      },
    ]);
    const row = (label: string): string[] => md.split('\n').find((l) => l.startsWith(label ? `| ${label} |` : '| |'))!.split('|').slice(2, -1).map((c) => c.trim());
    assert.deepEqual(row(''), ['1. stories260K-wanda-owl-50', '2. stories260K-sparsegpt-50', '3. stories260K-removed-L4']);
    assert.deepEqual(row('method'), ['Wanda', 'SparseGPT', 'structured']);
    assert.deepEqual(row('allocation'), ['OWL', 'uniform', '–']);
    assert.deepEqual(row('perplexity, pruned'), ['18.84', '12.50', '30.00']);
    assert.deepEqual(row('sparsity (pruned linears)'), ['50.0%', '50.0%', '–']);
    assert.deepEqual(row('parameters removed or zero'), ['41.7%', '41.7%', '17.5%']);
    assert.deepEqual(row('size on disk'), ['2.5 MiB', '1.0 MiB', '2.0 MiB']);
    assert.deepEqual(row('time'), ['12.3 s', '12.3 s', '3.0 s']);
    assert.deepEqual(row('evaluated on'), ['eval.txt, 595 × 256', 'eval.txt, 595 × 256', 'not evaluated']);
    assert.deepEqual(row('block 2'), ['55.0%', '–', '–']);
    assert.equal(md.split('\n').filter((l) => l.startsWith('| block ')).length, 3);
    assert.ok(!md.includes('In llama.cpp'), 'no GGUF section when no run was measured');
  });

  it('adds what a measured GGUF export saved in llama.cpp, dense → pruned, and says which runs were not measured', () => {
    const side = (bytes: number, loadMiB: number, prompt: number, generate: number) => ({ file: '/f.gguf', bytes, loadMiB, promptTokensPerSecond: prompt, generateTokensPerSecond: generate });
    const savings = { type: 'f16', measured: '2026-11-27T14:00:00Z', runtime: 'llama.cpp via node-llama-cpp 3.21.1 (prebuilt CPU, 1 thread)', promptTokens: 128, generateTokens: 32, dense: side(256 * 2 ** 20, 300, 400.4, 20.04), pruned: side(204.8 * 2 ** 20, 240, 512, 25.55) } as const;
    const md = compareTable([
      { folder: '/w/a', record: pruned({ gguf: { file: '/w/a-f16.gguf', type: 'f16', bytes: 1, savings } } as Partial<PruneRecord>), bytes: 1 },
      { folder: '/w/b', record: pruned({}), bytes: 1 },
    ]);
    const section = md.slice(md.indexOf('## In llama.cpp (GGUF, dense → pruned)'));
    const row = (label: string): string[] => section.split('\n').find((l) => l.startsWith(`| ${label} |`))!.split('|').slice(2, -1).map((c) => c.trim());
    assert.deepEqual(row('GGUF type'), ['f16', 'not measured']);
    assert.deepEqual(row('file size'), ['256.0 MiB → 204.8 MiB', 'not measured']);
    assert.deepEqual(row('memory added by loading'), ['300.0 MiB → 240.0 MiB', 'not measured']);
    assert.deepEqual(row('prompt tokens/s'), ['400 → 512', 'not measured']);
    assert.deepEqual(row('generation tokens/s'), ['20.0 → 25.6', 'not measured']);
  });
});

describe('Model view colour scale', () => {
  it('ranks each score among its siblings into five levels, lowest first', () => {
    assert.deepEqual(heatLevels([0.5, 0.1, 0.9, 0.3, 0.7]), [3, 1, 5, 2, 4]);
    assert.deepEqual(heatLevels([2, 1]), [3, 1]);
    assert.deepEqual(heatLevels([1, 1, 1]), [1, 1, 1], 'ties share the lower level');
    assert.deepEqual(heatLevels(Array.from({ length: 10 }, (_, i) => i)), [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]);
  });
});
