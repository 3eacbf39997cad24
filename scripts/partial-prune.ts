/**
 * A prune too long to finish in a bench (SparseGPT on an 8B shape: hours on 2 cores), timed over its
 * first decoder blocks and then cancelled as a person would (SIGINT: the CLI deletes its partial output).
 * The times come from the run's own resume journal, which the engine rewrites as each stage and each
 * block completes, so nothing in the engine exists for the bench's sake.
 */
import { spawn } from 'node:child_process';
import { promises as fsp, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { JOURNAL_FILE } from '../src/engine/export/resume-journal';
import { CLI, ROOT } from './bench-common';

export interface PartialPruneResult {
  blocksTotal: number;
  /** Seconds from the command's start until the first block began: tokenizing, allocation, the dense evaluation, copying. */
  secondsBeforeBlocks: number;
  /** Seconds the dense evaluation took (from the stage before it), which the pruned model's evaluation repeats. */
  evalSeconds: number;
  /** Each timed block's seconds, in order. */
  blockSeconds: number[];
  /** Blocks per minute over the timed blocks. */
  blocksPerMinute: number;
  /** Before the blocks + every block at the measured rate + the pruned evaluation (taken as long as the dense one). */
  projectedSeconds: number;
  peakRssMb: number;
  /** What the command printed before any work (one decimal of GiB), or undefined if it printed none. */
  predictedPeakMb: number | undefined;
}

interface JournalProgress {
  plan?: unknown;
  dense?: unknown;
  blocksDone?: number;
  blocksTotal?: number;
}

const POLL_MS = 500;

/** Runs `prunelens prune <args> --out out` until `blocks` decoder blocks are done, then cancels it. */
export async function runPartialPrune(name: string, cliArgs: string[], out: string, blocks: number, log: (message: string) => void): Promise<PartialPruneResult> {
  const start = performance.now();
  const child = spawn(process.execPath, [CLI, ...cliArgs, '--out', out], { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'] });
  let predictedPeakMb: number | undefined;
  let stderr = '';
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (chunk: string) => {
    stderr += chunk;
    const m = /predicted peak memory ([\d.]+) (GiB|MiB)/.exec(stderr);
    if (m && predictedPeakMb === undefined) predictedPeakMb = Number(m[1]) * (m[2] === 'GiB' ? 1024 : 1);
  });
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  let running = true;
  void exited.then(() => (running = false));

  const partial = path.join(path.dirname(out), `${path.basename(out)}.partial-${child.pid}`);
  const seconds = (): number => (performance.now() - start) / 1000;
  const seen: { plan?: number; dense?: number; blocks: number[] } = { blocks: [] };
  let blocksTotal = 0;
  let peakRssMb = 0;
  while (running && seen.blocks.length <= blocks) {
    await new Promise((r) => setTimeout(r, POLL_MS));
    peakRssMb = Math.max(peakRssMb, highWaterMb(child.pid!));
    const progress = await readProgress(partial);
    if (!progress) continue;
    if (progress.plan !== undefined) seen.plan ??= seconds();
    if (progress.dense !== undefined) seen.dense ??= seconds();
    blocksTotal = progress.blocksTotal ?? blocksTotal;
    // blocksDone 0 marks the start of the first block; each later count is a block finished.
    while (progress.blocksDone !== undefined && seen.blocks.length <= progress.blocksDone) {
      seen.blocks.push(seconds());
      if (seen.blocks.length > 1) log(`${name}: block ${seen.blocks.length - 1} of ${blocksTotal} done after ${seconds().toFixed(0)} s`);
    }
  }
  if (!running) throw new Error(`${name}: the prune exited before ${blocks} blocks were done: ${stderr.trim().slice(-500)}`);
  child.kill('SIGINT');
  const code = await exited;
  // Cancelled runs exit 130 and leave nothing behind; anything else is a failure of the cancel itself.
  const left = await fsp.readdir(path.dirname(out)).then((names) => names.filter((n) => n.startsWith(path.basename(out))));
  if (code !== 130 || left.length > 0) throw new Error(`${name}: cancelling exited ${code} and left ${left.join(', ') || 'nothing'}`);

  const blockSeconds = seen.blocks.slice(1, blocks + 1).map((t, i) => t - seen.blocks[i]);
  const perBlock = blockSeconds.reduce((a, b) => a + b, 0) / blockSeconds.length;
  const evalSeconds = seen.dense! - seen.plan!;
  return {
    blocksTotal,
    secondsBeforeBlocks: seen.blocks[0],
    evalSeconds,
    blockSeconds,
    blocksPerMinute: 60 / perBlock,
    projectedSeconds: seen.blocks[0] + blocksTotal * perBlock + evalSeconds,
    peakRssMb,
    predictedPeakMb,
  };
}

async function readProgress(partial: string): Promise<JournalProgress | undefined> {
  try {
    return (JSON.parse(await fsp.readFile(path.join(partial, JOURNAL_FILE), 'utf8')) as { progress: JournalProgress }).progress;
  } catch {
    // Not written yet, or caught between the engine's rename and our read.
    return undefined;
  }
}

/** The process's peak resident set so far (Linux's VmHWM), what the CLI itself reports as peak_rss_mb. */
function highWaterMb(pid: number): number {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : 0;
  } catch {
    return 0;
  }
}
