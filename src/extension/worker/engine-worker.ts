// The engine process: bundled to dist/engine-worker.js and forked by EngineJobs, one process per job.
// It runs ONNX Runtime and every JS loop of the engine away from the extension host's thread, so the
// editor stays responsive however long tokenizing, planning, scoring or pruning takes. No vscode here.
import { makePlan } from '../../engine/allocate/make-plan';
import { pruneExperts } from '../../engine/experts/expert-prune';
import { expertStatsOf } from '../../engine/experts/expert-stats';
import { evaluateModel } from '../../engine/evaluate/evaluate-model';
import { exportRunGguf } from '../../engine/llamacpp/export-run-gguf';
import { tryRun } from '../../engine/llamacpp/try-run';
import { pruneModel } from '../../engine/prune/prune-model';
import type { RunControl } from '../../engine/progress';
import { scoreModel, structuredPrune } from '../../engine/structured/structured-prune';
import type { EngineJobKind, EngineJobTypes, FromEngine, ToEngine } from './protocol';
import { toWire } from './wire-error';

type Runner<K extends EngineJobKind> = (options: EngineJobTypes[K]['options'] & RunControl) => Promise<EngineJobTypes[K]['result']>;
const JOBS: { [K in EngineJobKind]: Runner<K> } = {
  prune: pruneModel,
  structured: structuredPrune,
  evaluate: evaluateModel,
  scores: scoreModel,
  plan: makePlan,
  gguf: exportRunGguf,
  try: tryRun,
  expertStats: expertStatsOf,
  experts: pruneExperts,
};

const abort = new AbortController();

function send(message: FromEngine): Promise<void> {
  return new Promise((resolve) => {
    // After the host has gone, the job still runs to its abort (which removes its partial output) but reports to no one.
    if (!process.connected) return resolve();
    process.send!(message, undefined, {}, () => resolve());
  });
}

async function run(kind: EngineJobKind, options: unknown): Promise<void> {
  const control: RunControl = {
    signal: abort.signal,
    onProgress: (event) => void send({ type: 'progress', event }),
    log: { info: (message) => void send({ type: 'log', level: 'info', message }), warn: (message) => void send({ type: 'log', level: 'warn', message }) },
  };
  try {
    const runner = JOBS[kind] as Runner<EngineJobKind>;
    const value = await runner({ ...(options as object), ...control } as never);
    await send({ type: 'result', value });
  } catch (err) {
    await send({ type: 'error', error: toWire(err) });
  }
  // ONNX Runtime's thread pools would otherwise keep a finished process around until it is collected.
  process.exit(0);
}

process.on('message', (message: ToEngine) => {
  if (message.type === 'cancel') abort.abort();
  else void run(message.kind, message.options);
});
// The host went away (window closed, extension host restarted): nothing is left to report to.
process.on('disconnect', () => {
  if (!abort.signal.aborted) abort.abort();
});
