import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, describe, it } from 'node:test';
import { CASES } from './cases';
import { runCase } from './harness';

/**
 * The quick reliability cases that reproduce a numbered item of the issue (they end before any heavy
 * work), through the built CLI; `npm run reliability` runs every case.
 */
describe('reliability (quick cases)', () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'prunelens-reliability-'));
  after(() => fs.rmSync(root, { recursive: true, force: true }));
  for (const c of CASES.filter((c) => c.fast && c.issue !== undefined)) {
    it(c.name, async (t) => {
      const { failures, skipped } = await runCase(c, root);
      if (skipped) return t.skip(skipped);
      assert.deepEqual(failures, []);
    });
  }
});
