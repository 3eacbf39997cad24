import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { COMMANDS, commandHelp } from '../../../src/cli/main';
import { editDistance, parse, suggest } from '../../../src/cli/command';

/** The built CLI (npm test builds dist/ first), run as a user runs it. */
function cli(...args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [path.resolve('dist', 'cli.js'), ...args], { encoding: 'utf8' });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

const NAMES = Object.keys(COMMANDS);

describe('prunelens --help and --version', () => {
  it('lists every command with its summary, and --version prints package.json\'s version', () => {
    const r = cli('--help');
    assert.equal(r.code, 0, r.stderr);
    for (const name of NAMES) assert.match(r.stdout, new RegExp(`^  ${name} +${COMMANDS[name]!.summary.slice(0, 20).replace(/[().]/g, '\\$&')}`, 'm'));
    const version = cli('--version');
    assert.equal(version.code, 0);
    assert.equal(version.stdout, `${(JSON.parse(fs.readFileSync('package.json', 'utf8')) as { version: string }).version}\n`);
  });

  it('gives each command its own help, naming exactly the options that command parses', () => {
    const seen = new Set<string>();
    for (const name of NAMES) {
      const r = cli(name, '--help');
      assert.equal(r.code, 0, `${name}: ${r.stderr}`);
      assert.ok(r.stdout.startsWith(`Usage:\n  prunelens ${name} `), `${name}: ${r.stdout.slice(0, 80)}`);
      const listed = [...r.stdout.matchAll(/^ {2}(?:-\w, )?--([a-z][a-z-]*)/gm)].map((m) => m[1]!);
      assert.deepEqual(listed.sort(), [...Object.keys(COMMANDS[name]!.options), 'json', 'help'].sort(), name);
      seen.add(r.stdout);
      assert.equal(cli('help', name).stdout, r.stdout, `prunelens help ${name}`);
    }
    assert.equal(seen.size, NAMES.length, 'every command prints a different help');
    assert.match(cli('prune', '--help').stdout, /--nsamples N +calibration windows \(integer in \[1, 4096\]; default 128\)/);
    assert.doesNotMatch(cli('info', '--help').stdout, /--nsamples/);
  });

  it('parses every option any usage line or option list shows, so help and parser agree', () => {
    for (const name of NAMES) {
      // The usage lines and the option list; the prose may name other commands' options.
      const help = commandHelp(name, COMMANDS[name]!).replace(/\n\n[^]*\n\nOptions:/, '\n');
      const mentioned = new Set([...help.matchAll(/--([a-z][a-z-]*)/g)].map((m) => m[1]!));
      for (const option of mentioned) {
        const spec = COMMANDS[name]!.options[option];
        if (option === 'json' || option === 'help') continue;
        assert.ok(spec, `${name} --help mentions --${option}, which ${name} does not parse`);
        const args = spec.type === 'boolean' ? [`--${option}`] : [`--${option}`, spec.range ? String(spec.range.minOpen ? (spec.range.min + spec.range.max) / 2 : spec.range.min) : 'x'];
        assert.doesNotThrow(() => parse(args, COMMANDS[name]!.options), `${name} ${args.join(' ')}`);
      }
    }
  });
});

describe('prunelens usage errors', () => {
  it('suggests the option a typo was meant to be, with exit code 2', () => {
    const r = cli('prune', '--sparsty', '0.5');
    assert.equal(r.code, 2);
    assert.match(r.stderr, /^prunelens: unknown option --sparsty; did you mean --sparsity\?\nRun "prunelens prune --help" for usage\.\n$/);
    assert.match(cli('eval', '--max-window', '3').stderr, /unknown option --max-window; did you mean --max-windows\?/);
    assert.match(cli('prune', '--nsmaples', '8').stderr, /did you mean --nsamples\?/);
    const far = cli('eval', '--frobnicate');
    assert.equal(far.code, 2);
    assert.match(far.stderr, /^prunelens: unknown option --frobnicate\n/);
    // An option another command has is still unknown here.
    assert.match(cli('info', '--sparsity', '0.5').stderr, /unknown option --sparsity/);
    const json = cli('prune', '--sedd', '1', '--json');
    assert.equal(json.code, 2);
    assert.deepEqual(JSON.parse(json.stdout), { error: { kind: 'usage', message: 'unknown option --sedd; did you mean --seed?' } });
    assert.match(cli('prnue').stderr, /unknown command "prnue" \(did you mean prune\?\)/);
    // Options a plan file overrides are refused, not silently ignored.
    assert.match(cli('prune', '--plan', 'p.json', '--owl-m', '3').stderr, /--plan gives every ratio; it cannot be combined with --owl-m\n/);
    assert.match(cli('prune', '--plan', 'p.json', '--sparsity', '0.3', '--allocation', 'owl').stderr, /cannot be combined with --allocation, --sparsity\n/);
  });

  it('refuses absurd numbers before any work, stating the range', () => {
    const cases: [string[], RegExp][] = [
      [['prune', '--nsamples', '100000000'], /--nsamples must be an integer in \[1, 4096\], got "100000000"/],
      [['eval', '--seqlen', '0'], /--seqlen must be an integer in \[2, 131072\], got "0"/],
      [['eval', '--seqlen', '1'], /--seqlen must be an integer in \[2, 131072\], got "1"/],
      [['prune', '--sparsity', '1.5'], /--sparsity must be a number in \[0, 1\), got "1\.5"/],
      [['plan', '--sparsity', '-0.1', '--out', 'x.json'], /--sparsity must be a number in \[0, 1\), got "-0\.1"/],
      [['eval', '--max-windows', '2.5'], /--max-windows must be an integer in \[1, 10000000\], got "2\.5"/],
      [['generate', '--tokens', '1e9'], /--tokens must be an integer in \[1, 4096\], got "1e9"/],
      [['prune', '--owl-lambda', '0.5', '--allocation', 'owl'], /--owl-lambda must be a number in \[0, 0\.5\), got "0\.5"/],
      [['scores', '--seed', '-1'], /--seed must be an integer in \[0, 4294967295\], got "-1"/],
      [['eval', '--threads', 'many'], /--threads must be an integer in \[1, 1024\], got "many"/],
    ];
    for (const [args, message] of cases) {
      const r = cli(...args);
      assert.equal(r.code, 2, args.join(' '));
      assert.match(r.stderr, message, args.join(' '));
    }
  });
});

describe('suggestions', () => {
  it('measures edit distance with adjacent swaps as one edit', () => {
    assert.equal(editDistance('sparsty', 'sparsity'), 1);
    assert.equal(editDistance('nsmaples', 'nsamples'), 1);
    assert.equal(editDistance('', 'abc'), 3);
    assert.equal(editDistance('kitten', 'sitting'), 3);
    assert.equal(suggest('seqlne', ['seqlen', 'seed']), 'seqlen');
    assert.equal(suggest('zzz', ['seqlen', 'seed']), undefined);
  });
});
