/**
 * Ctrl-C (SIGINT), SIGTERM and SIGHUP all cancel a run the same way: the engine stops at its next
 * check between ONNX Runtime runs, deletes its partial output and the command exits 130. A second
 * signal exits at once (what is left is cleaned up or resumed by the next run to that output). Once
 * the command has finished, a late signal cannot turn its result into a cancel: it exits with the
 * code already decided.
 */
const SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;

export function cancelOnSignals(abort: AbortController): { settle(): void } {
  let settled = false;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (settled) process.exit(typeof process.exitCode === 'number' ? process.exitCode : 0);
    if (!abort.signal.aborted) {
      abort.abort();
      return;
    }
    process.stderr.write(`prunelens: ${signal} again, exiting now; the next run to the same output cleans up or resumes (--resume) what was left\n`);
    process.exit(130);
  };
  for (const signal of SIGNALS) process.on(signal, onSignal);
  return {
    settle: () => {
      settled = true;
    },
  };
}
