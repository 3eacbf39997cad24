import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { PruneLensError } from '../../../src/engine/errors';
import { evaluatePerplexity } from '../../../src/engine/evaluate/perplexity';
import { Checkpoint } from '../../../src/engine/io/checkpoint';
import { DecoderRunner } from '../../../src/engine/model/decoder-runner';
import type { EngineEvent } from '../../../src/engine/progress';
import { TextTokenizer } from '../../../src/engine/text/tokenizer';
import { referenceTokenNll, type RefConfig } from '../../reference/llama-f64';
import { loadF32Tensors } from '../../reference/safetensors-minimal';
import { EVAL_TEXT, FIXTURE_MODEL } from '../../helpers/fixtures';

describe('perplexity by the WikiText protocol', () => {
  let checkpoint: Checkpoint;
  let runner: DecoderRunner;
  let ids: Int32Array;
  before(async () => {
    checkpoint = await Checkpoint.open(FIXTURE_MODEL);
    runner = await DecoderRunner.create(checkpoint, { provider: 'cpu' });
    ids = (await TextTokenizer.load(FIXTURE_MODEL)).encode(fs.readFileSync(EVAL_TEXT, 'utf8'));
  });
  after(async () => {
    await runner.release();
    await checkpoint.close();
  });

  it('gives 4.648 on the TinyStories evaluation text at seqlen 256 (float64 reference: 4.6482)', async () => {
    assert.equal(ids.length, 152506);
    const events: EngineEvent[] = [];
    const r = await evaluatePerplexity(runner, checkpoint, ids, { seqlen: 256, onProgress: (e) => events.push(e) });
    assert.equal(r.windows, 595);
    assert.equal(r.tokens, 595 * 256);
    assert.equal(r.targets, 595 * 255);
    assert.equal(r.tokenNll.length, r.targets);
    assert.ok(Math.abs(r.ppl / 4.6482 - 1) < 1e-3, `ppl ${r.ppl}`);
    assert.ok(Math.abs(r.nll - Math.log(r.ppl)) < 1e-12);
    const stages = events.filter((e) => e.type === 'stage');
    assert.ok(stages.length > 0);
    assert.deepEqual(stages.map((e) => e.done), stages.map((_, i) => i + 1));
    assert.equal(stages.at(-1)!.done, stages.at(-1)!.total);
  });

  it('keeps per-token losses equal to an independent float64 computation', async () => {
    const seqlen = 64;
    const r = await evaluatePerplexity(runner, checkpoint, ids, { seqlen, maxWindows: 3 });
    assert.equal(r.windows, 3);
    const tensors = loadF32Tensors(path.join(FIXTURE_MODEL, 'model.safetensors'));
    const cfg = checkpoint.config.raw as unknown as RefConfig;
    for (let win = 0; win < 3; win++) {
      const expected = referenceTokenNll(cfg, (n) => tensors.get(n), Array.from(ids.subarray(win * seqlen, (win + 1) * seqlen)));
      const actual = r.tokenNll.subarray(win * (seqlen - 1), (win + 1) * (seqlen - 1));
      for (let t = 0; t < seqlen - 1; t++) assert.ok(Math.abs(actual[t]! - expected[t]!) < 1e-4, `window ${win} token ${t}`);
    }
  });

  it('gives the same result whatever the batch and chunk sizes', async () => {
    const base = await evaluatePerplexity(runner, checkpoint, ids, { seqlen: 128, maxWindows: 10 });
    const small = await evaluatePerplexity(runner, checkpoint, ids, { seqlen: 128, maxWindows: 10, batchTokens: 300, chunkBytes: 3 * 128 * 64 * 4 });
    assert.ok(Math.abs(base.ppl - small.ppl) < 1e-5);
  });

  it('refuses a text shorter than one window, naming the text and the counts', async () => {
    await assert.rejects(
      evaluatePerplexity(runner, checkpoint, ids.subarray(0, 100), { seqlen: 256, source: 'short.txt' }),
      (err: unknown) => err instanceof PruneLensError && err.kind === 'text' && /short\.txt: the text has 100 tokens, fewer than one window of 256/.test(err.message),
    );
  });

  it('refuses a seqlen beyond the model context', async () => {
    await assert.rejects(
      evaluatePerplexity(runner, checkpoint, ids, { seqlen: 1024 }),
      /seqlen 1024 exceeds the model's context \(max_position_embeddings 512\)/,
    );
  });

  it('stops between runs when cancelled', async () => {
    const abort = new AbortController();
    let runs = 0;
    await assert.rejects(
      evaluatePerplexity(runner, checkpoint, ids, {
        seqlen: 256,
        batchTokens: 256,
        signal: abort.signal,
        onProgress: () => {
          if (++runs === 3) abort.abort();
        },
      }),
      (err: unknown) => err instanceof PruneLensError && err.kind === 'cancelled',
    );
    assert.equal(runs, 3);
  });
});
