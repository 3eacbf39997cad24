// Bundles the end-to-end suite for the extension host: test/e2e/suite/index.ts and every *.e2e.ts
// beside it, one file each, into out/e2e/suite/. out/e2e lies inside the extension's folder, which is
// how the host hands the tests the extension's own `vscode` API object. vscode comes from the host and
// mocha from node_modules, so that the test files and the runner share one mocha instance;
// onnxruntime-node loads a native library, should a test import engine code.
import * as esbuild from 'esbuild';
import { readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';

const dir = 'test/e2e/suite';
const outdir = 'out/e2e/suite';
// index.js runs every *.e2e.js it finds, so a bundle whose source is gone must go too.
rmSync(outdir, { recursive: true, force: true });
const entryPoints = readdirSync(dir)
  .filter((f) => f === 'index.ts' || f.endsWith('.e2e.ts'))
  .map((f) => join(dir, f));
await esbuild.build({
  entryPoints,
  outdir,
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  external: ['vscode', 'mocha', 'onnxruntime-node'],
  logLevel: 'warning',
});
