import { monitorEventLoopDelay } from 'node:perf_hooks';
import * as vscode from 'vscode';
import type { RunControl } from '../engine/progress';
import { StageProgress, type StageWeight } from './stage-progress';

/**
 * Runs an engine job under a cancellable notification. Cancelling aborts the job's signal; the engine
 * process stops after the ONNX Runtime run in flight and removes what it wrote, or is killed after a
 * second and its partial output removed (EngineJobs). Stages the caller did not list still show their name.
 */
export function withEngineProgress<T>(
  title: string,
  stages: readonly StageWeight[],
  output: vscode.LogOutputChannel,
  job: (control: RunControl) => Promise<T>,
): Thenable<T> {
  return vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title, cancellable: true }, async (progress, token) => {
    const abort = new AbortController();
    const subscription = token.onCancellationRequested(() => {
      output.info(`${title}: cancelling after the current ONNX Runtime run`);
      abort.abort();
    });
    const bar = new StageProgress(stages);
    let stage: { name: string; start: number } | undefined;
    const start = performance.now();
    // The host's own responsiveness during the job, logged at its end: the engine runs in its own process, so this stays small.
    const lag = monitorEventLoopDelay({ resolution: 20 });
    lag.enable();
    output.info(`${title}: started`);
    // The engine process takes a moment to start and load ONNX Runtime; say so before its first event.
    progress.report({ message: 'starting…' });
    try {
      const result = await job({
        signal: abort.signal,
        log: output,
        onProgress: (event) => {
          if (event.type === 'warning') return output.warn(event.message);
          if (event.type === 'memory') {
            output.info(event.message);
            return progress.report({ message: event.message });
          }
          if (stage?.name !== event.stage) {
            stage = { name: event.stage, start: performance.now() };
            output.info(`${event.stage}: started`);
          }
          if (event.done >= event.total) output.info(`${event.stage}: done in ${((performance.now() - stage.start) / 1000).toFixed(1)} s`);
          const step = bar.update(event);
          if (step) progress.report(step);
        },
      });
      output.info(`${title}: finished in ${((performance.now() - start) / 1000).toFixed(1)} s`);
      return result;
    } finally {
      lag.disable();
      output.info(`${title}: extension host event loop delay max ${(lag.max / 1e6).toFixed(0)} ms, p99 ${(lag.percentile(99) / 1e6).toFixed(0)} ms`);
      subscription.dispose();
    }
  });
}
