/**
 * The reliability suite, on its own: `npm run reliability` runs every case of cases.ts against the
 * built CLI and prints one line per case; `-- --grep TEXT` runs the cases whose name holds TEXT.
 * `npm run reliability -- --kill` runs the kill-and-resume experiment instead (kill-resume.ts).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { CASES } from './cases';
import { runCase } from './harness';
import { killResume } from './kill-resume';

async function main(): Promise<number> {
  const args = process.argv.slice(2);
  if (args.includes('--kill')) return killResume(args);
  const grep = args.includes('--grep') ? args[args.indexOf('--grep') + 1] ?? '' : '';
  // --fast: only the cases that end before any heavy work; --slow: only the others.
  const speed = args.includes('--fast') ? true : args.includes('--slow') ? false : undefined;
  const cases = CASES.filter((c) => c.name.includes(grep) && (speed === undefined || (c.fast ?? false) === speed));
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'prunelens-reliability-'));
  let failed = 0;
  let skipped = 0;
  const start = performance.now();
  try {
    for (const [i, c] of cases.entries()) {
      const { failures, outcome, skipped: why } = await runCase(c, root);
      const tag = why ? 'skip' : failures.length === 0 ? 'ok  ' : 'FAIL';
      if (why) skipped++;
      if (failures.length > 0) failed++;
      process.stdout.write(`${tag} ${String(i + 1).padStart(3)} ${c.issue ? `[#${c.issue}] ` : ''}${c.name}${outcome ? ` (exit ${outcome.code}, ${outcome.seconds.toFixed(1)} s)` : ''}${why ? `: ${why}` : ''}\n`);
      for (const f of failures) process.stdout.write(`       ${f}\n`);
    }
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
  process.stdout.write(`\n${cases.length} cases: ${cases.length - failed - skipped} passed, ${failed} failed, ${skipped} skipped, in ${((performance.now() - start) / 1000).toFixed(0)} s\n`);
  return failed > 0 ? 1 : 0;
}

void main().then((code) => {
  process.exitCode = code;
});
