import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { evaluatePerplexity } from '../../../src/engine/evaluate/perplexity';
import { Checkpoint } from '../../../src/engine/io/checkpoint';
import { DecoderRunner } from '../../../src/engine/model/decoder-runner';
import { TextTokenizer } from '../../../src/engine/text/tokenizer';
import { referenceTokenNll, type RefConfig } from '../../reference/llama-f64';
import { loadF32Tensors } from '../../reference/safetensors-minimal';
import { EVAL_TEXT } from '../../helpers/fixtures';

/** The second trained model (no grouped-query attention, head dim 24): see its SOURCE.md. */
const SECOND_MODEL = path.resolve('models', 'tinystories-382K');

describe('the second trained model (tinystories-382K)', () => {
  let checkpoint: Checkpoint;
  let runner: DecoderRunner;
  let ids: Int32Array;
  before(async () => {
    checkpoint = await Checkpoint.open(SECOND_MODEL);
    runner = await DecoderRunner.create(checkpoint, { provider: 'cpu' });
    ids = (await TextTokenizer.load(SECOND_MODEL)).encode(fs.readFileSync(EVAL_TEXT, 'utf8'));
  });
  after(async () => {
    await runner.release();
    await checkpoint.close();
  });

  it('gives the perplexity of the numpy forward pass it was trained with (first 8 windows of 256)', async () => {
    const r = await evaluatePerplexity(runner, checkpoint, ids, { seqlen: 256, maxWindows: 8 });
    // scripts/train-tiny-llama.py --evaluate-only, float64, weights read back from model.safetensors.
    assert.ok(Math.abs(r.ppl / 10.93614298 - 1) < 1e-5, `ppl ${r.ppl}`);
  });

  it('keeps per-token losses equal to the float64 reference of this repository', async () => {
    const seqlen = 256;
    const r = await evaluatePerplexity(runner, checkpoint, ids, { seqlen, maxWindows: 1 });
    const tensors = loadF32Tensors(path.join(SECOND_MODEL, 'model.safetensors'));
    const expected = referenceTokenNll(checkpoint.config.raw as unknown as RefConfig, (n) => tensors.get(n), Array.from(ids.subarray(0, seqlen)));
    for (let t = 0; t < seqlen - 1; t++) assert.ok(Math.abs(r.tokenNll[t]! - expected[t]!) < 1e-4, `token ${t}: ${r.tokenNll[t]} vs ${expected[t]}`);
  });
});
