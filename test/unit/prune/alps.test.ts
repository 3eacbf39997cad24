import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, describe, it } from 'node:test';
import { OpRegistry } from '../../../src/engine/graph/op-registry';
import { alps } from '../../../src/engine/prune/methods/alps';
import type { NM } from '../../../src/engine/prune/spec';
import { cli, json } from '../../helpers/cli';
import { tempDir } from '../../helpers/fixtures';
import { pruneLinear, sparseGpt, smallLayer } from '../../helpers/prune-linear';

const ops = new OpRegistry({ provider: 'cpu' });
after(() => ops.release());

const { rows, cols, inputs, h, w, err } = smallLayer();
const percdamp = 0.01;

function zeros(p: Float32Array, from = 0, to = p.length): number {
  let n = 0;
  for (let i = from; i < to; i++) if (p[i] === 0) n++;
  return n;
}

const sparseGptAt = (sparsity: number, nm?: NM): Promise<Float32Array> => sparseGpt(ops, w, rows, cols, h, { sparsity, nm, blocksize: 32, percdamp });

describe('ALPS: mask and weights chosen together', () => {
  for (const sparsity of [0.5, 0.7]) {
    it(`${sparsity * 100}%: exactly the count, a lower output error than SparseGPT, and that error as its loss`, async () => {
      const { weight: ours, loss } = await pruneLinear(alps, ops, w, rows, cols, h, { sparsity, percdamp });
      assert.equal(zeros(ours), Math.round(rows * cols * sparsity));
      const sgpt = await sparseGptAt(sparsity);
      assert.ok(err(ours) <= err(sgpt), `ALPS ${err(ours)} vs SparseGPT ${err(sgpt)}`);
      assert.ok(Math.abs(loss - err(ours) / inputs.length) <= 1e-3 * (err(ours) / inputs.length), `loss ${loss} vs ${err(ours) / inputs.length}`);
    });
  }

  it('2:4: two zeros in every group of four, and a lower output error than SparseGPT', async () => {
    const nm = { n: 2, m: 4 };
    const { weight: ours } = await pruneLinear(alps, ops, w, rows, cols, h, { sparsity: 0.5, nm, percdamp });
    for (let g = 0; g < rows * cols; g += 4) assert.equal(zeros(ours, g, g + 4), 2, `group at ${g}`);
    const sgpt = await sparseGptAt(0.5, nm);
    assert.ok(err(ours) <= err(sgpt), `ALPS ${err(ours)} vs SparseGPT ${err(sgpt)}`);
  });
});

describe('prunelens prune --method alps', () => {
  it('prunes, recording the method', () => {
    const out = path.join(tempDir(), 'out');
    const r = cli('prune', '--method', 'alps', '--sparsity', '0.5', '--nsamples', '8', '--seqlen', '64', '--max-windows', '4', '--out', out, '--json');
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.equal(json(r.stdout).sparsity, 0.5);
    const record = JSON.parse(fs.readFileSync(path.join(out, 'prunelens.json'), 'utf8')) as { method: string; settings: { update: string | null } };
    assert.equal(record.method, 'alps');
    assert.equal(record.settings.update, null);
  });

  it('refuses --update: ALPS fits its own weights', () => {
    const r = cli('prune', '--method', 'alps', '--update', 'admm');
    assert.equal(r.code, 2);
    assert.match(r.stderr, /ALPS fits its own weights; --update applies to magnitude, wanda and sparsegpt/);
  });
});
