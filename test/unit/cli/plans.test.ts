import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { before, describe, it } from 'node:test';
import { copyOfFixture, tempDir } from '../../helpers/fixtures';

/** The built CLI (npm test builds dist/ first), run as a user runs it. Texts are the bundled defaults. */
function cli(...args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [path.resolve('dist', 'cli.js'), ...args], { encoding: 'utf8' });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function json(stdout: string): Record<string, unknown> {
  const lines = stdout.trim().split('\n');
  assert.equal(lines.length, 1, `expected one JSON line, got: ${stdout}`);
  return JSON.parse(lines[0]!) as Record<string, unknown>;
}

type PlanFile = { allocation: string; blocks: { layer: number; sparsity: number; linears?: Record<string, number> }[]; blocksSha256?: string };

describe('estimate and prune --plan share one plan check', () => {
  // Made here, not in before(): a temporary folder lives as long as the scope that made it.
  const dir = tempDir();
  const model = copyOfFixture();
  const made = path.join(dir, 'owl.json');
  before(() => {
    const r = cli('plan', model, '--allocation', 'owl', '--sparsity', '0.6', '--nsamples', '8', '--seqlen', '64', '--out', made, '--json');
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const out = json(r.stdout);
    assert.equal(out.windows, 8, 'the plan states how many windows its errors were measured on');
    assert.equal((out.calibration as { seqlen: number }).seqlen, 64);
    assert.equal(typeof out.seconds, 'number');
  });

  function variant(name: string, edit: (plan: PlanFile) => void): string {
    const plan = JSON.parse(fs.readFileSync(made, 'utf8')) as PlanFile;
    edit(plan);
    const file = path.join(dir, `${name}.json`);
    fs.writeFileSync(file, JSON.stringify(plan, null, 2));
    return file;
  }

  it('reports an untouched plan as its allocator made it, and a hand-edited one as manual', () => {
    const untouched = json(cli('estimate', made, model, '--json').stdout);
    assert.equal(untouched.allocation, 'owl');
    // Reformatting is not an edit; changing a ratio is.
    const reformatted = variant('reformatted', () => {});
    assert.equal(json(cli('estimate', reformatted, model, '--json').stdout).allocation, 'owl');
    const edited = variant('edited', (p) => {
      p.blocks[0]!.sparsity += 0.05;
      p.blocks[4]!.sparsity -= 0.05;
    });
    const estimate = json(cli('estimate', edited, model, '--json').stdout);
    assert.equal(estimate.allocation, 'manual');
    assert.notEqual(estimate.score, untouched.score);
    assert.match(cli('estimate', edited, model).stdout, /^plan +.*edited\.json: manual allocation/m);
  });

  it('refuses, with the same message as prune --plan, every plan prune refuses', () => {
    const bad: [string, (p: PlanFile) => void, RegExp][] = [
      ['unknown-linear', (p) => (p.blocks[2]!.linears = { 'mlp.gate': 0.5 }), /blocks\[2\]\.linears\["mlp\.gate"\]: unknown linear/],
      ['ratio', (p) => (p.blocks[1]!.sparsity = 1.5), /blocks\[1\]\.sparsity: sparsity must be a number in \[0, 1\), got 1\.5/],
      ['four-blocks', (p) => p.blocks.pop(), /blocks: has 4 entries but the model has 5 decoder blocks/],
      ['allocation', (p) => (p.allocation = 'magic'), /allocation: must be one of uniform, owl, besa, manual/],
    ];
    for (const [name, edit, message] of bad) {
      const file = variant(name, edit);
      const estimate = cli('estimate', file, model, '--json');
      assert.equal(estimate.code, 2, `${name}: ${estimate.stdout}`);
      const error = (json(estimate.stdout).error as { message: string; where: string });
      assert.match(error.message, message, name);
      assert.equal(error.where, file);
      const out = path.join(dir, `${name}-out`);
      const prune = cli('prune', model, '--plan', file, '--out', out, '--json');
      assert.equal(prune.code, 2, name);
      assert.deepEqual(json(prune.stdout).error, json(estimate.stdout).error, `${name}: prune and estimate disagree`);
      assert.equal(fs.existsSync(out), false);
    }
  });

  it('records a hand-edited plan as manual in the pruned model, and names its folder for the plan', () => {
    const edited = variant('pruned-edit', (p) => {
      p.blocks[0]!.sparsity = 0.5;
      p.blocks[4]!.sparsity = 0.7;
    });
    const r = cli('prune', model, '--plan', edited, '--max-windows', '2', '--seqlen', '64', '--nsamples', '8', '--json');
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const out = json(r.stdout);
    assert.equal(out.allocation, 'manual');
    assert.match(path.basename(out.out as string), /^model-wanda-plan-[0-9a-f]{6}-\d+$/);
    assert.equal(path.dirname(out.out as string), path.dirname(model));
    const record = JSON.parse(fs.readFileSync(path.join(out.out as string, 'prunelens.json'), 'utf8')) as { plan: { allocation: string } };
    assert.equal(record.plan.allocation, 'manual');
    // Another plan with the same target gets another folder.
    const other = variant('pruned-edit-2', (p) => {
      p.blocks[0]!.sparsity = 0.7;
      p.blocks[4]!.sparsity = 0.5;
    });
    const second = json(cli('prune', model, '--plan', other, '--max-windows', '2', '--seqlen', '64', '--nsamples', '8', '--json').stdout);
    assert.notEqual(second.out, out.out);
    assert.equal(path.basename(second.out as string).replace(/plan-[0-9a-f]{6}/, ''), path.basename(out.out as string).replace(/plan-[0-9a-f]{6}/, ''));
  });
});

describe('prune output names and structured output', () => {
  it('names outputs for --include/--exclude so different selections never share a folder, and states windows and seqlen', () => {
    const model = copyOfFixture();
    const run = (...extra: string[]) => cli('prune', model, '--method', 'magnitude', '--sparsity', '0.5', '--seqlen', '64', '--max-windows', '3', ...extra, '--json');
    const all = run();
    const mlp = run('--include', 'model.layers.*.mlp.*');
    const notFirst = run('--exclude', 'model.layers.0.**');
    const outs: string[] = [];
    for (const r of [all, mlp, notFirst]) {
      assert.equal(r.code, 0, r.stdout + r.stderr);
      const out = json(r.stdout);
      assert.equal(out.windows, 3);
      assert.equal(out.seqlen, 64);
      assert.equal(path.dirname(out.out as string), path.dirname(model));
      assert.ok(fs.existsSync(path.join(out.out as string, 'prunelens.json')));
      outs.push(path.basename(out.out as string));
    }
    assert.equal(outs[0], 'model-magnitude-50');
    assert.match(outs[1]!, /^model-magnitude-50-only-mlp-[0-9a-f]{6}$/);
    assert.match(outs[2]!, /^model-magnitude-50-except-0-[0-9a-f]{6}$/);
    assert.equal(new Set(outs).size, 3);
    // The same selection again finds its folder taken rather than writing elsewhere.
    const again = run('--include', 'model.layers.*.mlp.*');
    assert.equal(again.code, 1);
    assert.match((json(again.stdout).error as { message: string }).message, new RegExp(outs[1]!));
    assert.match(cli('prune', model, '--method', 'magnitude', '--seqlen', '64', '--max-windows', '3', '--include', 'model.layers.*.mlp.*', '--overwrite').stdout, /perplexity .*\(3 windows of 64\)/);
  });

  it('times the whole run, tokenizing included, apart from the forward passes', () => {
    const r = cli('eval', '--seqlen', '64', '--max-windows', '4', '--json');
    assert.equal(r.code, 0, r.stderr);
    const out = json(r.stdout);
    assert.ok((out.seconds as number) > (out.eval_seconds as number), `${out.seconds} s in all vs ${out.eval_seconds} s of forward passes`);
    assert.equal(out.tokens_per_second, (out.tokens as number) / (out.eval_seconds as number));
    assert.match(cli('eval', '--seqlen', '64', '--max-windows', '4').stdout, /^time +\d+\.\d\d s in all, loading and tokenizing included$/m);
  });

  it('structured pruning states its evaluation windows and seqlen', () => {
    const model = copyOfFixture();
    const r = cli('prune', model, '--structured', 'heads', '--ratio', '0.1', '--nsamples', '4', '--seqlen', '64', '--max-windows', '3', '--json');
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const out = json(r.stdout);
    assert.equal(out.windows, 3);
    assert.equal(out.seqlen, 64);
    assert.equal(path.basename(out.out as string), 'model-heads-10');
  });
});
