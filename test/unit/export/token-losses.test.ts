import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { PruneLensError } from '../../../src/engine/errors';
import { readTokenLosses, tokenLossesFor, writeTokenLosses, type TokenLosses } from '../../../src/engine/export/token-losses';
import { writeSafetensors } from '../../../src/engine/io/safetensors-writer';
import { TextTokenizer } from '../../../src/engine/text/tokenizer';
import { FIXTURE_MODEL, tempDir } from '../../helpers/fixtures';

function sample(): TokenLosses {
  const n = 2 * 7;
  const dense = Float32Array.from({ length: n }, (_, i) => Math.fround(Math.PI * (i + 1)) / 3);
  const pruned = Float32Array.from({ length: n }, (_, i) => (i % 5 === 0 ? 0 : 1 / (i + 0.1)));
  pruned[3] = -0;
  return {
    textFile: '/data/eval text ü.txt',
    seqlen: 8,
    windows: 2,
    starts: Int32Array.from({ length: n }, (_, i) => i * 3),
    ends: Int32Array.from({ length: n }, (_, i) => i * 3 + 2 + (i % 2)),
    dense,
    pruned,
  };
}

function bits(a: Float32Array): Uint32Array {
  return new Uint32Array(a.buffer, a.byteOffset, a.length);
}

describe('token losses file', () => {
  it('round-trips bit-exactly', async () => {
    const file = path.join(tempDir(), 'prunelens-tokens.safetensors');
    const losses = sample();
    await writeTokenLosses(file, losses);
    const back = await readTokenLosses(file);
    assert.equal(back.textFile, losses.textFile);
    assert.equal(back.seqlen, 8);
    assert.equal(back.windows, 2);
    assert.deepEqual(back.starts, losses.starts);
    assert.deepEqual(back.ends, losses.ends);
    assert.deepEqual(bits(back.dense), bits(losses.dense));
    assert.deepEqual(bits(back.pruned), bits(losses.pruned));
  });

  it('names a missing tensor and lengths that disagree with the windows', async () => {
    const dir = tempDir();
    const losses = sample();
    const metadata = { textFile: 'x', seqlen: '8', windows: '2' };
    const missing = path.join(dir, 'missing.safetensors');
    await writeSafetensors(missing, [{ name: 'starts', dtype: 'I32', shape: [14] }, { name: 'ends', dtype: 'I32', shape: [14] }, { name: 'dense', dtype: 'F32', shape: [14] }], (s) => new Uint8Array(s.shape[0]! * 4), metadata);
    await assert.rejects(readTokenLosses(missing), (err: unknown) => err instanceof PruneLensError && err.kind === 'checkpoint' && /no "pruned" tensor/.test(err.message));
    const short = path.join(dir, 'short.safetensors');
    await writeTokenLosses(short, { ...losses, windows: 3 });
    await assert.rejects(readTokenLosses(short), /"starts" has 14 values but 3 windows of 8 tokens predict 21/);
    await assert.rejects(writeTokenLosses(path.join(dir, 'bad.safetensors'), { ...losses, pruned: losses.pruned.subarray(1) }), /"pruned" has 13 values, "starts" 14/);
    assert.ok(!fs.existsSync(path.join(dir, 'bad.safetensors')));
  });

  it('places each window target on the token it predicts', async () => {
    const tokenizer = await TextTokenizer.load(FIXTURE_MODEL);
    const text = 'Once upon a time, there was a little girl named Lily. She loved to play outside in the sunshine.';
    const ids = tokenizer.encode(text);
    const seqlen = 6;
    const windows = Math.floor(ids.length / seqlen);
    const n = windows * (seqlen - 1);
    const losses = tokenLossesFor(tokenizer, text, 'story.txt', ids, seqlen, windows, new Float32Array(n), new Float32Array(n).fill(1));
    for (let w = 0; w < windows; w++) {
      for (let t = 0; t < seqlen - 1; t++) {
        const k = w * (seqlen - 1) + t;
        const slice = text.slice(losses.starts[k], losses.ends[k]);
        // decode drops the space a lone `▁word` token starts with.
        assert.equal(slice.replace(/^ /, ''), tokenizer.decode([ids[w * seqlen + t + 1]!]), `window ${w} target ${t}`);
      }
    }
    assert.throws(() => tokenLossesFor(tokenizer, text, 'story.txt', ids, seqlen, windows, new Float32Array(n - 1), new Float32Array(n)), /predict \d+ tokens, but the losses have/);
  });
});
