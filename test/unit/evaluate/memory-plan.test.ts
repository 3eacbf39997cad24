import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { PruneLensError } from '../../../src/engine/errors';
import { checkMemoryFits, predictPeakMemory, type MemoryJob } from '../../../src/engine/memory-plan';
import { parseModelConfig } from '../../../src/engine/model/config';

const LLAMA_1B = parseModelConfig(JSON.parse(readFileSync(path.resolve('test', 'fixtures', 'configs', 'Llama-3.2-1B.json'), 'utf8')), 'config.json');

const wanda = (nsamples: number, seqlen: number): MemoryJob => ({
  evalWindows: 8,
  evalSeqlen: 512,
  prune: { statistic: 'norms', nsamples, seqlen, admm: false, blockErrors: false },
});

test('the calibration hidden states are nsamples x seqlen x hidden float32 values, and only they grow with nsamples', () => {
  const small = predictPeakMemory(LLAMA_1B, 2, wanda(16, 512));
  const large = predictPeakMemory(LLAMA_1B, 2, wanda(32, 512));
  assert.equal(large.peakBytes - small.peakBytes, 16 * 512 * LLAMA_1B.hiddenSize * 4);
});

test('a prune that evaluates counts the calibration forward\'s working set beside the evaluation\'s (one session, two shapes)', () => {
  const parts = (evalWindows: number) => new Map(predictPeakMemory(LLAMA_1B, 2, { ...wanda(16, 512), evalWindows }).parts.map((p) => [p.what, p.bytes]));
  const evaluating = parts(8);
  const silent = parts(0);
  assert.ok(evaluating.has('evaluation working set'));
  assert.equal(evaluating.get('calibration working set'), silent.get('calibration working set'));
});

test('a run that does not fit is refused with the memory it needs and the setting that shrinks its largest part', () => {
  const prediction = predictPeakMemory(LLAMA_1B, 2, wanda(4096, 2048));
  assert.equal(prediction.parts[0]!.what, 'calibration hidden states');
  assert.throws(
    () => checkMemoryFits(prediction, 8 * 2 ** 30),
    (err: unknown) => err instanceof PruneLensError && err.kind === 'memory' && /needs about \d+(\.\d)? GiB/.test(err.message) && /--nsamples/.test(err.message) && /8\.0 GiB is available/.test(err.message),
  );
  assert.doesNotThrow(() => checkMemoryFits(prediction, prediction.peakBytes));
});

test('the CLI prints the prediction before the run and it is within 25% of the measured peak on the embedded model', () => {
  const r = spawnSync(process.execPath, [path.resolve('dist', 'cli.js'), 'eval', '--max-windows', '40', '--json'], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, /^memory: predicted peak memory \d+ MiB .* available$/m);
  const { peak_rss_mb: measured, predicted_peak_mb: predicted } = JSON.parse(r.stdout) as { peak_rss_mb: number; predicted_peak_mb: number };
  assert.ok(Math.abs(predicted - measured) / measured < 0.25, `predicted ${predicted.toFixed(0)} MiB, measured ${measured.toFixed(0)} MiB`);
});
