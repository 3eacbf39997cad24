import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { PruneLensError } from '../../../src/engine/errors';
import { evaluateModel } from '../../../src/engine/evaluate/evaluate-model';
import type { EngineEvent } from '../../../src/engine/progress';
import { EngineJobs } from '../../../src/extension/worker/engine-jobs';
import { FIXTURE_MODEL, tempDir } from '../../helpers/fixtures';

// npm test builds dist/ first (pretest); this is the file the extension forks.
const jobs = new EngineJobs(path.resolve('dist', 'engine-worker.js'));
const runtime = { provider: 'cpu' as const };
// The bundled sample, so the test needs nothing beside the checkout.
const EVAL_TEXT = path.resolve('data', 'tinystories', 'eval.txt');

describe('engine jobs in a child process', () => {
  it('evaluates in the engine process exactly as in this one, with its progress', async () => {
    const events: EngineEvent[] = [];
    const options = { model: FIXTURE_MODEL, textFile: EVAL_TEXT, seqlen: 64, maxWindows: 6, runtime };
    const remote = await jobs.run('evaluate', options, { onProgress: (e) => events.push(e) });
    const local = await evaluateModel(options);
    assert.equal(remote.ppl, local.ppl);
    assert.equal(remote.windows, 6);
    // Typed arrays cross the process boundary as typed arrays.
    assert.ok(remote.windowIds instanceof Int32Array);
    assert.deepEqual([...remote.windowIds], [...local.windowIds]);
    assert.ok(events.some((e) => e.type === 'stage'), 'progress events reach the host');
  });

  it('brings a PruneLensError back with its kind, message and where', async () => {
    const missing = path.join(tempDir(), 'no-model');
    await assert.rejects(jobs.run('evaluate', { model: missing, textFile: EVAL_TEXT, seqlen: 64, runtime }), (err: unknown) => {
      assert.ok(err instanceof PruneLensError, String(err));
      assert.ok(err.where, 'where is kept');
      assert.ok(err.message.startsWith(`${err.where}: `), err.message);
      assert.ok(!err.message.startsWith(`${err.where}: ${err.where}: `), 'the prefix is not doubled');
      return true;
    });
  });

  it('cancels a prune: the engine stops and leaves no output and no partial folder', async () => {
    const dir = tempDir();
    const out = path.join(dir, 'pruned');
    const abort = new AbortController();
    const job = jobs.run(
      'prune',
      {
        model: FIXTURE_MODEL,
        out,
        spec: { method: 'wanda', sparsity: 0.5, include: [], exclude: [], blocksize: 128, percdamp: 0.01 },
        calibration: { file: EVAL_TEXT, nsamples: 8, seqlen: 64, seed: 0 },
        evaluation: { file: EVAL_TEXT, seqlen: 64, maxWindows: 4 },
        runtime,
      },
      // Cancel once the output folder is being written, so there is something to clean up.
      { signal: abort.signal, onProgress: (e) => e.type === 'stage' && e.stage === 'prune' && abort.abort() },
    );
    await assert.rejects(job, (err: unknown) => err instanceof PruneLensError && err.kind === 'cancelled');
    assert.deepEqual(fs.readdirSync(dir), []);
  });

  it('kills an engine process that does not stop within a second, and removes its partial folder', async () => {
    const dir = tempDir();
    const out = path.join(dir, 'stuck');
    // A stand-in engine that starts writing its output and then never looks at the cancel.
    const script = path.join(dir, 'stuck-worker.js');
    fs.writeFileSync(
      script,
      `process.on('message', (m) => { if (m.type !== 'run') return;
         require('fs').mkdirSync(m.options.out + '.partial-' + process.pid);
         process.send({ type: 'progress', event: { type: 'stage', stage: 'prune', done: 0, total: 1 } });
         setInterval(() => {}, 1000); });`,
    );
    const abort = new AbortController();
    const started = Date.now();
    let cancelledAt = 0;
    const job = new EngineJobs(script).run('prune', { out } as never, {
      signal: abort.signal,
      onProgress: () => {
        cancelledAt = Date.now();
        abort.abort();
      },
    });
    await assert.rejects(job, (err: unknown) => err instanceof PruneLensError && err.kind === 'cancelled');
    assert.ok(cancelledAt >= started);
    assert.deepEqual(fs.readdirSync(dir), ['stuck-worker.js']);
  });
});
