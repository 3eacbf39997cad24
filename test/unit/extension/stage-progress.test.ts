import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { StageProgress } from '../../../src/extension/stage-progress';

describe('one progress bar over the stages of a job', () => {
  const stage = (name: string, done: number, total: number, detail?: string) => ({ type: 'stage' as const, stage: name, done, total, detail });

  it('gives each stage its share, adds up to 100 and names the stage and block', () => {
    let time = 0;
    const bar = new StageProgress([{ stage: 'evaluate dense', weight: 1 }, { stage: 'prune', weight: 2 }, { stage: 'evaluate pruned', weight: 1 }], () => (time += 1000));
    const steps = [
      bar.update(stage('evaluate dense', 3, 6)),
      bar.update(stage('evaluate dense', 6, 6)),
      bar.update(stage('prune', 1, 5, 'block 1/5')),
      ...[2, 3, 4, 5].map((b) => bar.update(stage('prune', b, 5, `block ${b}/5`))),
      bar.update(stage('evaluate pruned', 6, 6)),
    ];
    assert.deepEqual(steps.map((s) => +s!.increment.toFixed(6)), [12.5, 12.5, 10, 10, 10, 10, 10, 25]);
    assert.equal(steps[2]!.message, 'prune: block 1/5');
    assert.equal(steps[0]!.message, 'evaluate dense: 3/6');
  });

  it('thins out frequent events but never drops the end of a stage, and never moves back', () => {
    let time = 0;
    const bar = new StageProgress([{ stage: 'evaluate', weight: 1 }], () => time);
    assert.ok(bar.update(stage('evaluate', 1, 100)));
    time += 10;
    assert.equal(bar.update(stage('evaluate', 2, 100)), undefined);
    time += 10;
    assert.equal(bar.update(stage('evaluate', 100, 100))!.increment, 99);
    time += 1000;
    const unknown = bar.update(stage('scores', 1, 5, 'block 1/5'))!;
    assert.deepEqual(unknown, { increment: 0, message: 'scores: block 1/5' });
  });
});
