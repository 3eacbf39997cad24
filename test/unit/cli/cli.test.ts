import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { EVAL_TEXT, FIXTURE_MODEL, tempDir } from '../../helpers/fixtures';

/** The built CLI (npm test builds dist/ first), run as a user runs it. */
function cli(...args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [path.resolve('dist', 'cli.js'), ...args], { encoding: 'utf8' });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function json(stdout: string): Record<string, unknown> {
  const lines = stdout.trim().split('\n');
  assert.equal(lines.length, 1, `expected one JSON line, got: ${stdout}`);
  return JSON.parse(lines[0]!) as Record<string, unknown>;
}

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
