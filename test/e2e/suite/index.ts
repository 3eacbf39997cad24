// Loaded by the extension host through extensionTestsPath (scripts/e2e/run-tests.js): the same
// contract as @vscode/test-electron, run(): Promise<void>. Every *.e2e.js bundled beside it is a test file;
// the suffix keeps them out of `npm test`, which bundles and runs every *.test.ts under test/ in plain Node.
import * as fs from 'node:fs';
import * as path from 'node:path';
import Mocha from 'mocha';

export async function run(): Promise<void> {
  // Tests wait on events, not on the clock; this only stops one that would never end (see SAFETY_NET_MS).
  const mocha = new Mocha({ ui: 'bdd', color: false, timeout: 900_000 });
  const grep = process.env.PRUNELENS_E2E_GREP;
  if (grep) mocha.grep(grep);
  for (const f of fs.readdirSync(__dirname).filter((f) => f.endsWith('.e2e.js')).sort()) {
    mocha.addFile(path.join(__dirname, f));
  }
  const failures = await new Promise<number>((resolve) => mocha.run(resolve));
  if (failures > 0) throw new Error(`${failures} end-to-end test(s) failed`);
}
