/**
 * SIGKILL at random moments of a Wanda and a SparseGPT prune of the embedded model, each followed by
 * `--resume`: every resumed output must be byte-identical to an uninterrupted run's (sha256 of every
 * model file; prunelens.json equal except times, memory and the output path), and the time the resumed
 * run took is compared with starting over.
 *
 * Settings: calibration 128 windows x 256 tokens (the full protocol) from the first 100 kB of the
 * bundled calibration text (about 50,000 tokens); evaluation on the first 40 kB of the bundled
 * evaluation text, 16 windows of 256; one ORT thread (a resumed run must use the thread count of the run it continues).
 * Besides wall time, each run's CPU time (user + system, all threads) is measured, which a machine
 * shared with other work disturbs far less: that is the figure "saved" compares.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { CALIB_TEXT, EVAL_TEXT, FIXTURE_MODEL, partialsOf, run, sha256File } from './harness';

const KILLS = 10;
const METHODS = ['wanda', 'sparsegpt'] as const;

/** Deterministic "random" moments in [0, 1) (a fixed LCG), so a rerun kills at the same fractions. */
function* moments(seed: number): Generator<number> {
  let x = seed;
  for (;;) {
    x = (x * 1103515245 + 12345) % 2 ** 31;
    yield x / 2 ** 31;
  }
}

/** Model files byte for byte, and the record without what differs between any two runs (times, memory, paths). */
function fingerprint(out: string): Record<string, string> {
  const result: Record<string, string> = {};
  for (const f of fs.readdirSync(out).sort()) {
    if (f === 'prunelens.json') {
      const record = JSON.parse(fs.readFileSync(path.join(out, f), 'utf8')) as Record<string, unknown>;
      for (const k of ['created', 'seconds', 'peakRssMb', 'output']) delete record[k];
      type Cost = { loss: number; ms: number; rssMb: number };
      record.layers = (record.layers as (Record<string, unknown> & { linears?: Record<string, Cost> })[]).map(({ seconds: _s, rssMb: _r, linears, ...rest }) => ({
        ...rest,
        // A linear's loss must match; its time and memory differ between any two runs.
        linears: Object.fromEntries(Object.entries(linears ?? {}).map(([name, { loss }]) => [name, loss])),
      }));
      result[f] = JSON.stringify(record);
    } else if (!['prunelens-report.md', 'prunelens-manifest.json', 'prunelens-sparsity.svg', 'prunelens-loss-histogram.svg'].includes(f)) {
      result[f] = sha256File(path.join(out, f));
    }
  }
  return result;
}

/**
 * CPU seconds (user + system, every thread) of the children this process has waited for: Linux adds a
 * child's times to its parent's cutime/cstime when it is reaped, so the difference around one run is
 * that run's CPU time. A CLI process's own process.cpuUsage() would miss what it does after the call.
 */
function reapedCpuSeconds(): number {
  const fields = fs.readFileSync('/proc/self/stat', 'utf8').split(') ')[1]!.split(' ');
  // Fields 16 and 17 of stat(5) (cutime, cstime), counted from the state field, which is field 3.
  return (Number(fields[16 - 3]) + Number(fields[17 - 3])) / 100;
}

/** Runs the CLI and measures its CPU time as well. */
async function timed(...args: Parameters<typeof run>): Promise<Awaited<ReturnType<typeof run>> & { cpu: number }> {
  const before = reapedCpuSeconds();
  const outcome = await run(...args);
  return { ...outcome, cpu: reapedCpuSeconds() - before };
}

export async function killResume(args: string[]): Promise<number> {
  const kills = args.includes('--kills') ? Number(args[args.indexOf('--kills') + 1]) : KILLS;
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'prunelens-kill-'));
  const calib = path.join(root, 'calib.txt');
  const evalText = path.join(root, 'eval.txt');
  fs.writeFileSync(calib, fs.readFileSync(CALIB_TEXT).subarray(0, 100_000));
  fs.writeFileSync(evalText, fs.readFileSync(EVAL_TEXT).subarray(0, 40_000));
  // --method wanda|sparsegpt runs one of the two (two processes can then share the work).
  const methods = args.includes('--method') ? METHODS.filter((m) => m === args[args.indexOf('--method') + 1]) : METHODS;
  let failures = 0;
  try {
    for (const method of methods) {
      const prune = (out: string, ...extra: string[]): string[] => [
        'prune', FIXTURE_MODEL, '--method', method, '--calib', calib, '--nsamples', '128', '--seqlen', '256',
        '--eval', evalText, '--max-windows', '16', '--threads', '1', '--out', out, '--json', ...extra,
      ];
      const reference = path.join(root, `${method}-reference`);
      const full = await timed(prune(reference));
      const fullCpu = full.cpu;
      if (full.code !== 0) throw new Error(`uninterrupted ${method} run failed: ${full.stdout}${full.stderr}`);
      const expected = fingerprint(reference);
      process.stdout.write(`\n${method}: uninterrupted run ${full.seconds.toFixed(1)} s wall, ${fullCpu.toFixed(1)} s CPU; model.safetensors sha256 ${expected['model.safetensors']!.slice(0, 16)}…\n`);
      process.stdout.write('kill at   blocks done  resumed run (wall, CPU)  identical  CPU saved vs. starting over\n');
      let saved = 0;
      let resumedRuns = 0;
      // A kill that lands after the run finished interrupts nothing; draw further moments until `kills`
      // runs were really interrupted (at most twice as many tries).
      const fractions = moments(method === 'wanda' ? 1 : 2);
      for (let i = 0; resumedRuns < kills && i < 2 * kills; i++) {
        const out = path.join(root, `${method}-${i}`);
        const at = 0.3 + fractions.next().value! * full.seconds;
        const killed = await timed(prune(out), {
          during: async (child) => {
            await new Promise((r) => setTimeout(r, at * 1000));
            child.kill('SIGKILL');
          },
        });
        let blocks = '-';
        const partial = partialsOf(out)[0];
        if (partial && fs.existsSync(path.join(partial, 'prunelens-resume.json'))) {
          const progress = (JSON.parse(fs.readFileSync(path.join(partial, 'prunelens-resume.json'), 'utf8')) as { progress: { blocksDone?: number } }).progress;
          blocks = progress.blocksDone === undefined ? 'before' : String(progress.blocksDone);
        }
        const finishedAnyway = killed.code === 0;
        const resumed = finishedAnyway ? killed : await timed(prune(out, '--resume'));
        const same = resumed.code === 0 && JSON.stringify(fingerprint(out)) === JSON.stringify(expected);
        if (!same) failures++;
        const gain = fullCpu - resumed.cpu;
        if (!finishedAnyway) {
          saved += gain;
          resumedRuns++;
        }
        process.stdout.write(
          `${at.toFixed(1).padStart(6)} s  ${(finishedAnyway ? 'finished' : blocks).padEnd(11)}  ${finishedAnyway ? '-'.padEnd(23) : `${resumed.seconds.toFixed(1).padStart(6)} s, ${resumed.cpu.toFixed(1).padStart(5)} s CPU`.padEnd(23)}  ${same ? 'yes' : `NO (exit ${resumed.code}: ${resumed.stdout.slice(0, 200)})`}        ${finishedAnyway ? '-' : `${gain.toFixed(1)} s (${((100 * gain) / fullCpu).toFixed(0)}%)`}\n`,
        );
        fs.rmSync(out, { recursive: true, force: true });
      }
      if (resumedRuns < kills) failures++;
      process.stdout.write(`${method}: ${resumedRuns} runs interrupted and resumed (${kills} wanted); CPU time saved by resuming instead of starting over: ${saved.toFixed(1)} s in all, ${(saved / Math.max(1, resumedRuns)).toFixed(1)} s (${((100 * saved) / Math.max(1, resumedRuns) / fullCpu).toFixed(0)}% of a run) per resume\n`);
    }
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
  process.stdout.write(`\n${failures === 0 ? 'every resumed output is identical to the uninterrupted run' : `${failures} resumed output(s) differ`}\n`);
  return failures > 0 ? 1 : 0;
}
