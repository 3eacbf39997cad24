import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import type { PerplexityResult } from '../../../src/engine/evaluate/perplexity';
import { FileHashes } from '../../../src/extension/file-hashes';
import { DenseCache } from '../../../src/extension/panels/dense-cache';
import { tempDir } from '../../helpers/fixtures';
import { createHash } from 'node:crypto';

describe('the dense evaluation cache', () => {
  it('gives back what was kept, under a key that changes with any input file\'s content and the seqlen', async () => {
    const dir = tempDir();
    const weights = path.join(dir, 'model.safetensors');
    const text = path.join(dir, 'eval.txt');
    fs.writeFileSync(weights, 'weights');
    fs.writeFileSync(text, 'some text');
    const storage = path.join(dir, 'storage');
    const cache = new DenseCache(path.join(storage, 'dense'), new FileHashes(storage));
    const key = await cache.key([weights], text, 64);
    assert.equal(await cache.read(key), undefined);
    const result: PerplexityResult = { ppl: 5.5, nll: Math.log(5.5), windows: 2, seqlen: 64, tokens: 128, targets: 126, textTokens: 130, seconds: 1.5, tokenNll: Float32Array.from({ length: 126 }, (_, i) => i / 10) };
    await cache.write(key, result);
    const read = await cache.read(key);
    assert.deepEqual({ ...read, tokenNll: Array.from(read!.tokenNll) }, { ...result, tokenNll: Array.from(result.tokenNll) });
    assert.notEqual(await cache.key([weights], text, 128), key, 'another seqlen');
    fs.writeFileSync(text, 'other text');
    assert.notEqual(await cache.key([weights], text, 64), key, 'another text');
    // A fresh instance reads the hash index back; it still hashes by content.
    const again = new DenseCache(path.join(storage, 'dense'), new FileHashes(storage));
    fs.writeFileSync(text, 'some text');
    assert.equal(await again.key([weights], text, 64), key, 'the same contents give the same key');
    assert.equal(await new FileHashes(storage).of([weights]), createHash('sha256').update(createHash('sha256').update('weights').digest('hex')).digest('hex'));
    assert.ok(!fs.readdirSync(path.join(storage, 'dense')).some((n) => n.includes('partial')), 'no partial file is left');
  });
});
