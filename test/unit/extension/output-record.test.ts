import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import type { PruneRecord } from '../../../src/engine/export/record';
import type { StructuredRecord } from '../../../src/engine/structured/structured-prune';
import { readOutputRecord, runLabel, runPerplexity } from '../../../src/extension/runs/output-record';
import { tempDir } from '../../helpers/fixtures';

const unstructured = (fields: Partial<PruneRecord>): PruneRecord => ({ method: 'wanda', sparsity: 0.5, nm: null, plan: { allocation: 'uniform' }, perplexity: { dense: 4.6482, pruned: 18.8412 }, ...fields }) as PruneRecord;
const structured = (fields: Partial<StructuredRecord>): StructuredRecord => ({ kind: 'structured', target: null, explicit: null, perplexity: { dense: 4.6482, pruned: 13.07 }, ...fields }) as StructuredRecord;

describe('PruneLens outputs in the Runs view', () => {
  it('labels a run by method and target, and describes it by perplexity', () => {
    assert.equal(runLabel(unstructured({})), 'Wanda 50.0% uniform');
    assert.equal(runLabel(unstructured({ method: 'sparsegpt', nm: '2:4', sparsity: 0.5 })), 'SparseGPT 2:4');
    assert.equal(runLabel(unstructured({ method: 'magnitude', sparsity: 0.7, plan: { allocation: 'owl' } as PruneRecord['plan'] })), 'magnitude 70.0% OWL');
    assert.equal(runLabel(unstructured({ sparsity: 0.6, plan: { allocation: 'manual' } as PruneRecord['plan'] })), 'Wanda 60.0% manual');
    assert.equal(runLabel(unstructured({ plan: undefined })), 'Wanda 50.0% uniform', 'records from before allocation existed');
    const target = { heads: true, channels: true, layers: false, ratio: 0.2, metrics: { heads: 'output', channels: 'flap', layers: 'bi' }, seed: 0 } as const;
    assert.equal(runLabel(structured({ target })), 'heads, channels 20.0%');
    assert.equal(runLabel(structured({ explicit: { heads: [[3, 2], [3, 5]], layers: [4] } })), 'removed 3.h2, 3.h5, L4');
    assert.equal(runPerplexity(unstructured({})), 'ppl 4.65 → 18.84');
    assert.equal(runPerplexity(unstructured({ perplexity: { dense: null, pruned: null } })), 'not evaluated');
  });

  it('reads prunelens.json, ignores folders without one, and names a damaged one', async () => {
    const dir = tempDir();
    assert.equal(await readOutputRecord(dir), undefined);
    fs.writeFileSync(path.join(dir, 'prunelens.json'), JSON.stringify({ format: 'prunelens.record', version: 1, created: '2026-01-01T00:00:00Z', perplexity: { dense: 1, pruned: 2 }, method: 'magnitude' }));
    assert.equal((await readOutputRecord(dir))?.created, '2026-01-01T00:00:00Z');
    fs.writeFileSync(path.join(dir, 'prunelens.json'), '{"format": "something else"}');
    await assert.rejects(readOutputRecord(dir), /prunelens\.json: not a PruneLens record/);
    fs.writeFileSync(path.join(dir, 'prunelens.json'), '{');
    await assert.rejects(readOutputRecord(dir), /prunelens\.json: invalid JSON/);
  });
});
