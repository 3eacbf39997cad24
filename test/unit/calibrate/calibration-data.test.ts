import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { before, describe, it } from 'node:test';
import { drawCalibration } from '../../../src/engine/calibrate/calibration-data';
import { PythonRandom } from '../../../src/engine/calibrate/python-random';
import { PruneLensError } from '../../../src/engine/errors';
import { TextTokenizer } from '../../../src/engine/text/tokenizer';
import { FIXTURE_MODEL, SHARED_DATA, tempDir } from '../../helpers/fixtures';

const CALIB = path.join(SHARED_DATA, 'tinystories', 'calibration.txt');
const C4 = path.join(SHARED_DATA, 'c4', 'c4_en_train_first1000.jsonl');

describe('calibration windows', () => {
  let tokenizer: TextTokenizer;
  before(async () => {
    tokenizer = await TextTokenizer.load(FIXTURE_MODEL);
  });

  it('draws a plain text as the reference WikiText loader does: random.seed(0), randint(0, n - seqlen - 1)', async () => {
    const set = await drawCalibration(tokenizer, { file: CALIB, nsamples: 4, seqlen: 256, seed: 0 });
    const all = tokenizer.encode(fs.readFileSync(CALIB, 'utf8'));
    assert.equal(all.length, 304110);
    assert.equal(set.tokens, 304110);
    // CPython: random.seed(0); random.randint(0, 304110 - 256 - 1) == 201979, then 220500.
    assert.deepEqual(set.ids.subarray(0, 256), all.subarray(201979, 201979 + 256));
    assert.deepEqual(set.ids.subarray(256, 512), all.subarray(220500, 220500 + 256));
    assert.equal(set.sha256, '4288cb17602d082702ca74f1ebe710be140cb352eedb505777b8d1a080700fab');
    assert.equal(set.format, 'text');
  });

  it('draws the same windows for the same seed and different ones for another', async () => {
    const file = path.join(tempDir(), 'part.txt');
    fs.writeFileSync(file, fs.readFileSync(CALIB, 'utf8').slice(0, 20000));
    const a = await drawCalibration(tokenizer, { file, nsamples: 8, seqlen: 64, seed: 3 });
    const b = await drawCalibration(tokenizer, { file, nsamples: 8, seqlen: 64, seed: 3 });
    const c = await drawCalibration(tokenizer, { file, nsamples: 8, seqlen: 64, seed: 4 });
    assert.deepEqual(a.ids, b.ids);
    assert.notDeepEqual(a.ids, c.ids);
  });

  it('reads JSON Lines as the reference C4 loader does: a random document, drawn again until long enough', async () => {
    const lines = fs.readFileSync(C4, 'utf8').trim().split('\n').slice(0, 40);
    const file = path.join(tempDir(), 'c4-40.jsonl');
    fs.writeFileSync(file, lines.join('\n') + '\n');
    const set = await drawCalibration(tokenizer, { file, nsamples: 2, seqlen: 512, seed: 0 });
    assert.equal(set.format, 'jsonl');
    assert.equal(set.documents, 40);
    // Replays CPython's draws for seed 0: randint(0, 39) picks documents until one has more than 512 tokens.
    const docs = lines.map((l) => tokenizer.encode((JSON.parse(l) as { text: string }).text));
    const replay = new PythonRandom(0);
    for (let s = 0; s < 2; s++) {
      let doc: Int32Array;
      do doc = docs[replay.randint(0, 39)]!;
      while (doc.length <= 512);
      const start = replay.randint(0, doc.length - 513);
      assert.deepEqual(set.ids.subarray(s * 512, (s + 1) * 512), doc.subarray(start, start + 512));
    }
  });

  it('says how much text is needed when there is too little', async () => {
    const short = path.join(tempDir(), 'short.txt');
    fs.writeFileSync(short, 'Once upon a time there was a cat. '.repeat(20));
    await assert.rejects(
      drawCalibration(tokenizer, { file: short, nsamples: 128, seqlen: 256, seed: 0 }),
      (err: unknown) =>
        err instanceof PruneLensError &&
        err.kind === 'text' &&
        /^\S*short\.txt: too little calibration text: 128 windows of 256 tokens need at least 32768 tokens, but the text has \d+;/.test(err.message),
    );
    fs.writeFileSync(short, fs.readFileSync(CALIB, 'utf8').slice(0, 20000));
    await assert.rejects(drawCalibration(tokenizer, { file: short, nsamples: 200, seqlen: 256, seed: 0 }), /need at least 51200 tokens, but the text has \d+;/);
    const shortDocs = path.join(tempDir(), 'short.jsonl');
    fs.writeFileSync(shortDocs, '{"text": "A short story."}\n{"text": "Another one."}\n');
    await assert.rejects(drawCalibration(tokenizer, { file: shortDocs, nsamples: 4, seqlen: 64, seed: 0 }), /need documents longer than 64 tokens, and none of the 2 is/);
  });

  it('names the line of a bad JSON Lines file, and a missing file', async () => {
    const bad = path.join(tempDir(), 'bad.jsonl');
    fs.writeFileSync(bad, '{"text": "fine"}\n{"txt": "no text field"}\n');
    await assert.rejects(drawCalibration(tokenizer, { file: bad, nsamples: 1, seqlen: 8, seed: 0 }), /bad\.jsonl: line 2 has no string "text" field/);
    fs.writeFileSync(bad, '{"text": "fine"}\n{"text": \n');
    await assert.rejects(drawCalibration(tokenizer, { file: bad, nsamples: 1, seqlen: 8, seed: 0 }), /bad\.jsonl: line 2 is not valid JSON/);
    await assert.rejects(drawCalibration(tokenizer, { file: bad + '.missing', nsamples: 1, seqlen: 8, seed: 0 }), /calibration file not found/);
  });
});
