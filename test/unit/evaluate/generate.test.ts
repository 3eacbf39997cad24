import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { PruneLensError } from '../../../src/engine/errors';
import { generate } from '../../../src/engine/evaluate/generate';
import { Checkpoint } from '../../../src/engine/io/checkpoint';
import { DecoderRunner } from '../../../src/engine/model/decoder-runner';
import type { EngineEvent } from '../../../src/engine/progress';
import { TextTokenizer } from '../../../src/engine/text/tokenizer';
import { FIXTURE_MODEL } from '../../helpers/fixtures';

describe('greedy generation', () => {
  let checkpoint: Checkpoint;
  let runner: DecoderRunner;
  let tokenizer: TextTokenizer;
  before(async () => {
    checkpoint = await Checkpoint.open(FIXTURE_MODEL);
    runner = await DecoderRunner.create(checkpoint, { provider: 'cpu' });
    tokenizer = await TextTokenizer.load(FIXTURE_MODEL);
  });
  after(async () => {
    await runner.release();
    await checkpoint.close();
  });

  it("continues BOS with the model's documented greedy story", async () => {
    const bos = tokenizer.encode('');
    assert.deepEqual(Array.from(bos), [1]);
    const events: EngineEvent[] = [];
    const r = await generate(runner, checkpoint, bos, 30, { onProgress: (e) => events.push(e) });
    assert.equal(r.ids.length, 31);
    assert.equal(r.ids[0], 1);
    const text = tokenizer.decode(r.ids);
    assert.ok(text.startsWith('Once upon a time, there was a little girl named Lily'), text);
    assert.ok(r.seconds > 0 && r.tokensPerSecond > 0);
    assert.deepEqual(events.map((e) => (e.type === 'stage' ? e.done : -1)), Array.from({ length: 30 }, (_, i) => i + 1));
  });

  it('gives from a prompt the continuation it gives when it wrote that prompt itself', async () => {
    const free = await generate(runner, checkpoint, Int32Array.of(1), 30);
    const prompt = tokenizer.encode('Once upon a time');
    // The prompt tokenizes as the model wrote it, so the two runs see the same ids.
    assert.deepEqual(Array.from(prompt), Array.from(free.ids.subarray(0, prompt.length)));
    const prompted = await generate(runner, checkpoint, prompt, 30 - (prompt.length - 1));
    assert.deepEqual(Array.from(prompted.ids), Array.from(free.ids));
  });

  it('refuses an empty prompt and a sequence longer than the context', async () => {
    await assert.rejects(generate(runner, checkpoint, new Int32Array(0), 4), PruneLensError);
    await assert.rejects(generate(runner, checkpoint, Int32Array.of(1), runner.config.maxPositionEmbeddings), PruneLensError);
  });
});
