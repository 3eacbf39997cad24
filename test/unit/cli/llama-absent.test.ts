/**
 * node-llama-cpp is optional: a copy of PruneLens installed without it (`npm install --omit=optional`)
 * must say so when asked for llama.cpp, before exporting anything. The CLI runs with a module hook that
 * makes `import('node-llama-cpp')` fail as it does when the package is absent.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { FIXTURE_MODEL, tempDir } from '../../helpers/fixtures';

const HOOK = `
import { register } from 'node:module';
register('data:text/javascript,' + encodeURIComponent(\`
export async function resolve(specifier, context, next) {
  if (specifier === 'node-llama-cpp') throw Object.assign(new Error("Cannot find package 'node-llama-cpp'"), { code: 'ERR_MODULE_NOT_FOUND' });
  return next(specifier, context);
}\`));
`;

describe('without node-llama-cpp', () => {
  it('try and export --measure say that llama.cpp is missing, and write nothing', () => {
    const dir = tempDir();
    // A run whose record names the embedded model as its dense model (the run's weights are the same files).
    const run = path.join(dir, 'run');
    fs.cpSync(FIXTURE_MODEL, run, { recursive: true });
    fs.writeFileSync(path.join(run, 'prunelens.json'), JSON.stringify({ source: { path: FIXTURE_MODEL } }));
    const hook = path.join(dir, 'no-llama.mjs');
    fs.writeFileSync(hook, HOOK);
    const cache = path.join(dir, 'cache');
    for (const args of [['try', run, '--prompt', 'Once upon a time'], ['export', run, '--format', 'gguf', '--measure', '--out', path.join(dir, 'run.gguf')]]) {
      const r = spawnSync(process.execPath, ['--import', hook, path.resolve('dist', 'cli.js'), ...args], { encoding: 'utf8', env: { ...process.env, PRUNELENS_CACHE: cache } });
      assert.equal(r.status, 1, `${args[0]}: ${r.stdout}${r.stderr}`);
      assert.match(r.stderr, /llama\.cpp is not available: the optional package node-llama-cpp is not installed/);
      assert.doesNotMatch(r.stderr, /\n\s+at /, 'a stack trace');
    }
    assert.equal(fs.existsSync(cache), false, 'something was exported into the cache');
  });
});
