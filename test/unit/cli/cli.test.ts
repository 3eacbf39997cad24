import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { METHOD_NAMES } from '../../../src/engine/prune/methods/catalog';
import { cli, json } from '../../helpers/cli';
import { EVAL_TEXT, FIXTURE_MODEL, tempDir } from '../../helpers/fixtures';

describe('prunelens CLI', () => {
  it('info --json describes the embedded model by default', () => {
    const r = cli('info', '--json');
    assert.equal(r.code, 0, r.stderr);
    const info = json(r.stdout);
    assert.equal(info.path, FIXTURE_MODEL);
    assert.equal(info.architecture, 'LlamaForCausalLM');
    assert.equal(info.layers, 5);
    assert.equal(info.heads, 8);
    assert.equal(info.kvHeads, 4);
    assert.equal(info.hiddenSize, 64);
    assert.equal(info.intermediateSize, 172);
    assert.equal(info.parameters, 260032);
    assert.equal(info.dtype, 'F32');
    assert.equal(info.bytesOnDisk, fs.statSync(path.join(FIXTURE_MODEL, 'model.safetensors')).size);
  });

  it('eval --json reports perplexity with its protocol', () => {
    const r = cli('eval', FIXTURE_MODEL, '--text', EVAL_TEXT, '--seqlen', '128', '--max-windows', '8', '--json');
    assert.equal(r.code, 0, r.stderr);
    const out = json(r.stdout);
    for (const key of ['ppl', 'nll', 'tokens', 'windows', 'seqlen', 'seconds', 'tokens_per_second', 'peak_rss_mb']) {
      assert.equal(typeof out[key], 'number', key);
    }
    assert.equal(out.windows, 8);
    assert.equal(out.seqlen, 128);
    assert.equal(out.tokens, 8 * 128);
    assert.ok(Math.abs(Math.log(out.ppl as number) - (out.nll as number)) < 1e-9);
    assert.ok((out.ppl as number) > 3 && (out.ppl as number) < 7);
  });

  it("reports its own peak memory, not that of the process that started it", () => {
    // 1 GiB resident here: a child's getrusage maxRSS starts from it (it survives fork and exec).
    const ballast = new Float32Array(2 ** 28).fill(1);
    const r = cli('eval', FIXTURE_MODEL, '--max-windows', '1', '--json');
    assert.equal(r.code, 0, r.stderr);
    const peak = json(r.stdout)['peak_rss_mb'] as number;
    assert.ok(peak > 30 && peak < 600, `peak ${peak} MiB, beside a parent of ${ballast.length / 2 ** 18} MiB`);
  });

  it('prints human output without --json', () => {
    const r = cli('eval', '--max-windows', '2');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /perplexity\s+\d+\.\d{4}/);
    assert.match(r.stdout, /windows\s+2 x 256 tokens/);
  });

  it('reports bad input as one JSON error object and exit code 1', () => {
    const empty = path.join(tempDir(), 'empty.txt');
    fs.writeFileSync(empty, '  \n');
    const r = cli('eval', '--text', empty, '--json');
    assert.equal(r.code, 1);
    assert.deepEqual(json(r.stdout), { error: { kind: 'text', message: `${empty}: the file is empty`, where: empty } });
    const missing = cli('info', path.join(tempDir(), 'no-model'));
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /^prunelens: .*no-model: no such file or folder\n$/);
  });

  it('rejects bad usage with exit code 2', () => {
    assert.equal(cli('eval', '--seqlen', 'ten').code, 2);
    assert.match(cli('eval', '--provider', 'tpu').stderr, /--provider must be one of cpu, webgpu, cuda; got "tpu"/);
    assert.equal(cli('prune-everything').code, 2);
    assert.equal(cli('eval', '--no-such-flag').code, 2);
  });
});

describe('prunelens prune', () => {
  it('prunes and reports the JSON fields the extension and scripts read', () => {
    const out = path.join(tempDir(), 'pruned');
    const r = cli('prune', '--method', 'sparsegpt', '--nm', '2:4', '--nsamples', '8', '--seqlen', '64', '--max-windows', '4', '--out', out, '--json');
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const result = json(r.stdout);
    for (const key of ['ppl_dense', 'ppl', 'sparsity', 'seconds', 'peak_rss_mb', 'prune_seconds']) assert.equal(typeof result[key], 'number', key);
    assert.equal(result.out, out);
    assert.equal(result.nm, '2:4');
    assert.equal(result.sparsity, 0.5);
    assert.ok(fs.existsSync(path.join(out, 'prunelens.json')));
  });

  it('prunes with Wanda plus the ADMM update, recording the update and each linear\'s loss, time and memory', () => {
    const out = path.join(tempDir(), 'out');
    const r = cli('prune', '--method', 'wanda', '--update', 'admm', '--sparsity', '0.5', '--nsamples', '8', '--seqlen', '64', '--max-windows', '4', '--out', out, '--json');
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const result = json(r.stdout);
    assert.equal(result.sparsity, 0.5);
    assert.equal(result.update, 'admm');
    const record = JSON.parse(fs.readFileSync(path.join(out, 'prunelens.json'), 'utf8')) as {
      method: string;
      settings: { update: string | null };
      layers: { linears: Record<string, { loss: number; ms: number; rssMb: number }> }[];
    };
    assert.equal(record.method, 'wanda');
    assert.equal(record.settings.update, 'admm');
    for (const layer of record.layers) {
      assert.equal(Object.keys(layer.linears).length, 7);
      for (const { loss, ms, rssMb } of Object.values(layer.linears)) assert.ok(loss > 0 && ms > 0 && rssMb > 0, JSON.stringify(layer.linears));
    }
  });

  it('refuses bad pruning options with exit code 2', () => {
    assert.ok(cli('prune', '--method', 'obs').stderr.includes(`--method must be one of ${METHOD_NAMES.join(', ')}; got "obs"`));
    assert.match(cli('prune', '--update', 'obs').stderr, /--update must be admm; got "obs"/);
    assert.match(cli('prune', '--sparsity', '1.5').stderr, /--sparsity must be a number in \[0, 1\), got "1\.5"/);
    assert.match(cli('prune', '--nm', '4:2').stderr, /N:M must look like 2:4 with 0 < N < M, got "4:2"/);
    assert.match(cli('prune', '--nm', '2:4', '--sparsity', '0.5').stderr, /give --sparsity or --nm, not both/);
    assert.equal(cli('prune', '--nsamples', '0').code, 2);
  });

  it('names the calibration file when it is too short, and writes nothing', () => {
    const dir = tempDir();
    const short = path.join(dir, 'short.txt');
    fs.writeFileSync(short, 'Tom had a ball. '.repeat(10));
    const r = cli('prune', '--calib', short, '--out', path.join(dir, 'out'), '--json');
    assert.equal(r.code, 1);
    const error = json(r.stdout).error as Record<string, string>;
    assert.equal(error.kind, 'text');
    assert.equal(error.where, short);
    assert.match(error.message, /too little calibration text: 128 windows of 256 tokens need at least 32768 tokens/);
    assert.deepEqual(fs.readdirSync(dir), ['short.txt']);
  });
});

describe('prunelens structured pruning and scores', () => {
  it('prune --structured reports parameters and bytes before and after', () => {
    const out = path.join(tempDir(), 'structured');
    const r = cli('prune', '--structured', 'channels', '--ratio', '0.1', '--nsamples', '8', '--seqlen', '64', '--max-windows', '4', '--out', out, '--json');
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const result = json(r.stdout);
    for (const key of ['params_before', 'params_after', 'bytes_before', 'bytes_after', 'ppl_dense', 'ppl', 'seconds', 'peak_rss_mb']) assert.equal(typeof result[key], 'number', key);
    assert.ok((result.params_after as number) < (result.params_before as number));
    assert.equal(result.bytes_after, fs.statSync(path.join(out, 'model.safetensors')).size);
  });

  it('scores --json prints every score', () => {
    const r = cli('scores', '--nsamples', '4', '--seqlen', '32', '--json');
    assert.equal(r.code, 0, r.stderr);
    const scores = json(r.stdout) as { layers: { heads: { output: number[] }; channels: { flap: number[] }; block: { influence: number } }[] };
    assert.equal(scores.layers.length, 5);
    assert.equal(scores.layers[0]!.heads.output.length, 8);
    assert.equal(scores.layers[0]!.channels.flap.length, 172);
  });

  it('refuses malformed structured requests', () => {
    assert.match(cli('prune', '--structured', 'heads,layers', '--ratio', '0.2').stderr, /--structured takes heads, channels, heads,channels or layers/);
    assert.match(cli('prune', '--structured', 'heads', '--ratio', '2').stderr, /--ratio must be a number in \(0, 1\), got "2"/);
    assert.match(cli('prune', '--structured', 'heads').stderr, /--structured needs --ratio R/);
    assert.match(cli('prune', '--structured', 'heads', '--ratio', '0.2', '--metric', 'magic').stderr, /unknown metric "magic"/);
    assert.match(cli('prune', '--remove', '3.x2').stderr, /"3\.x2" is neither a head/);
  });
});

describe('prunelens plan and estimate', () => {
  it('writes a plan, estimates it, and refuses a plan that does not fit', () => {
    const dir = tempDir();
    const plan = path.join(dir, 'plan.json');
    const r = cli('plan', '--allocation', 'owl', '--sparsity', '0.6', '--nsamples', '8', '--seqlen', '64', '--out', plan, '--json');
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.equal((json(r.stdout).blocks as unknown[]).length, 5);
    const estimate = json(cli('estimate', plan, '--json').stdout);
    assert.equal(typeof estimate.score, 'number');
    const edited = JSON.parse(fs.readFileSync(plan, 'utf8')) as { blocks: { sparsity: number }[] };
    edited.blocks.pop();
    fs.writeFileSync(plan, JSON.stringify(edited));
    const bad = cli('prune', '--plan', plan, '--out', path.join(dir, 'out'), '--json');
    assert.equal(bad.code, 2);
    assert.match((json(bad.stdout).error as { message: string }).message, /blocks: has 4 entries but the model has 5 decoder blocks/);
    assert.deepEqual(fs.readdirSync(dir), ['plan.json']);
  });
});
