import * as vscode from 'vscode';
import type { RunControl } from '../engine/progress';
import { StageProgress, type StageWeight } from './stage-progress';

/**
 * Runs an engine job under a cancellable notification. Cancelling aborts the job's signal; the engine
 * stops after the ONNX Runtime run in flight (runs cannot be interrupted) and removes what it wrote.
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
    output.info(`${title}: started`);
    try {
      const result = await job({
        signal: abort.signal,
        log: output,
        onProgress: (event) => {
          if (event.type === 'warning') return output.warn(event.message);
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
      subscription.dispose();
    }
  });
}
