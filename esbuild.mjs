// Bundles the extension, the CLI, the benchmark, the allocation panel's page and (with --tests) every unit test.
// onnxruntime-node stays external: it loads a native library that cannot be bundled.
import * as esbuild from 'esbuild';
import { readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';

const tests = process.argv.includes('--tests');
const common = {
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  sourcemap: 'linked',
  external: ['onnxruntime-node', 'vscode', 'node-llama-cpp'],
  logLevel: 'warning',
};

function findTests(dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? findTests(join(dir, e.name)) : e.name.endsWith('.test.ts') ? [join(dir, e.name)] : [],
  );
}

if (tests) {
  rmSync('out', { recursive: true, force: true });
  await esbuild.build({ ...common, entryPoints: findTests('test'), outdir: 'out/test', outbase: 'test' });
} else {
  await Promise.all([
    esbuild.build({ ...common, entryPoints: { cli: 'src/cli/index.ts' }, outdir: 'dist', banner: { js: '#!/usr/bin/env node' } }),
    esbuild.build({ ...common, entryPoints: { extension: 'src/extension/extension.ts' }, outdir: 'dist' }),
    // The extension forks this for every engine job, so the extension host's thread never runs engine work.
    esbuild.build({ ...common, entryPoints: { 'engine-worker': 'src/extension/worker/engine-worker.ts' }, outdir: 'dist' }),
    esbuild.build({ ...common, entryPoints: { bench: 'scripts/bench.ts', 'bench-gpu': 'scripts/bench-gpu.ts' }, outdir: 'dist' }),
    // Tokenizing runs in a worker thread, which loads its own file.
    esbuild.build({ ...common, entryPoints: { 'tokenize-worker': 'src/engine/text/tokenize-worker.ts' }, outdir: 'dist' }),
    // The webviews run in VS Code's Chromium; one script file each, so a page's CSP can allow exactly its script.
    esbuild.build({
      entryPoints: { main: 'webview/main.ts', heatmap: 'webview/heatmap.ts' },
      outdir: 'dist/webview',
      bundle: true,
      platform: 'browser',
      format: 'iife',
      target: 'es2022',
      sourcemap: 'linked',
      logLevel: 'warning',
    }),
  ]);
}
