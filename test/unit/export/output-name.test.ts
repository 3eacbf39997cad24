import assert from 'node:assert/strict';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { planLabel, pruneOutputName, structuredOutputName } from '../../../src/engine/export/output-name';
import { pruneOutputName as extensionName } from '../../../src/extension/prune/prune-options';

const model = path.resolve('/models/stories260K');
const half = { kind: 'sparsity', sparsity: 0.5 } as const;

describe('output names', () => {
  it('are the one policy the CLI and the extension both use', () => {
    assert.equal(extensionName, pruneOutputName);
  });

  it('name what --include and --exclude changed, readably and without collisions', () => {
    assert.equal(pruneOutputName(model, 'wanda', half, 'uniform', { include: [], exclude: [] }), 'stories260K-wanda-50');
    const names = [
      pruneOutputName(model, 'wanda', half, 'uniform', { include: ['model.layers.*.mlp.*'] }),
      pruneOutputName(model, 'wanda', half, 'uniform', { include: ['**.mlp.*'] }),
      pruneOutputName(model, 'wanda', half, 'uniform', { exclude: ['model.layers.*.mlp.*'] }),
      pruneOutputName(model, 'wanda', half, 'uniform', { include: ['model.layers.*.mlp.*'], exclude: ['model.layers.0.**'] }),
      pruneOutputName(model, 'wanda', half, 'uniform', { include: ['model.layers.*.mlp.*', 'model.layers.*.self_attn.o_proj'] }),
    ];
    assert.match(names[0]!, /^stories260K-wanda-50-only-mlp-[0-9a-f]{6}$/);
    // Two globs that read alike still get different names.
    assert.match(names[1]!, /^stories260K-wanda-50-only-mlp-[0-9a-f]{6}$/);
    assert.match(names[2]!, /^stories260K-wanda-50-except-mlp-[0-9a-f]{6}$/);
    assert.match(names[3]!, /^stories260K-wanda-50-only-mlp-except-0-[0-9a-f]{6}$/);
    assert.match(names[4]!, /^stories260K-wanda-50-only-mlp\+self_attn\.o_proj-[0-9a-f]{6}$/);
    assert.equal(new Set(names).size, names.length);
    for (const name of names) assert.match(name, /^[A-Za-z0-9_.+-]+$/, 'portable folder names');
  });

  it('name plans by their fingerprint and structured runs by what they removed', () => {
    assert.equal(pruneOutputName(model, 'wanda', { kind: 'sparsity', sparsity: 0.6 }, planLabel('a1b2c3d4e5')), 'stories260K-wanda-plan-a1b2c3-60');
    assert.equal(structuredOutputName(path.join(model, 'config.json'), { heads: true, channels: true, layers: false, ratio: 0.2 }), 'stories260K-heads-channels-20');
  });
});
