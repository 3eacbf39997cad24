import { fork, type ChildProcess } from 'node:child_process';
import { PruneLensError } from '../../engine/errors';
import { recoverOutput } from '../../engine/export/output-recovery';
import type { RunControl } from '../../engine/progress';
import type { EngineJobKind, FromEngine, JobOptions, JobResult, ToEngine } from './protocol';
import { fromWire } from './wire-error';

/** How long a cancelled job may take to stop by itself (it checks between ONNX Runtime runs) before it is killed. */
const CANCEL_GRACE_MS = 1000;

/**
 * The one way the extension runs engine work: each job in a child process of its own (dist/engine-worker.js),
 * so that nothing the engine does (tokenizing, ONNX Runtime, JS loops over weights) runs on the extension
 * host's thread. The host only forwards the job's options, its progress and its result.
 */
export class EngineJobs {
  constructor(private readonly workerScript: string) {}

  run<K extends EngineJobKind>(kind: K, options: JobOptions<K>, control: RunControl = {}): Promise<JobResult<K>> {
    const { signal, onProgress, log } = control;
    if (signal?.aborted) return Promise.reject(new PruneLensError('cancelled', 'cancelled by the user'));
    const child = fork(this.workerScript, [], {
      // The extension host may be Electron; as plain Node its binary runs the bundle without a window.
      execPath: process.execPath,
      env: { ...process.env, ELECTRON_RUN_AS_NODE: '1', ORT_DISABLE_TELEMETRY: '1' },
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
      // Typed arrays and Maps cross as they are.
      serialization: 'advanced',
    });
    // Whatever the engine prints is diagnostics, never protocol.
    child.stdout?.on('data', (b: Buffer) => log?.info(b.toString().trimEnd()));
    child.stderr?.on('data', (b: Buffer) => log?.warn(b.toString().trimEnd()));
    return new Promise<JobResult<K>>((resolve, reject) => {
      let settled = false;
      let killTimer: NodeJS.Timeout | undefined;
      let cancelled = false;
      const finish = (outcome: () => void): void => {
        if (settled) return;
        settled = true;
        signal?.removeEventListener('abort', cancel);
        outcome();
      };
      function cancel(): void {
        cancelled = true;
        send(child, { type: 'cancel' });
        killTimer = setTimeout(() => child.kill('SIGKILL'), CANCEL_GRACE_MS);
      }
      signal?.addEventListener('abort', cancel, { once: true });
      child.on('message', (message: FromEngine) => {
        switch (message.type) {
          case 'progress':
            onProgress?.(message.event);
            break;
          case 'log':
            log?.[message.level](message.message);
            break;
          case 'result':
            finish(() => resolve(message.value as JobResult<K>));
            break;
          case 'error':
            finish(() => reject(fromWire(message.error)));
            break;
        }
      });
      child.on('error', (err) => finish(() => reject(new PruneLensError('output', `cannot start the engine process: ${err.message}`, this.workerScript))));
      child.on('exit', (code, sig) => {
        clearTimeout(killTimer);
        const pid = child.pid;
        if (settled || pid === undefined) return;
        // Killed after a cancel, or died on its own: either way it could not remove what it was writing.
        const out = (options as { out?: string }).out;
        const cleanup = out ? recoverOutput(out, { discard: true, log }).then(() => undefined) : Promise.resolve();
        void cleanup.then(
          () =>
            finish(() =>
              reject(cancelled ? new PruneLensError('cancelled', 'cancelled by the user') : new Error(`the engine process stopped (${sig ?? `exit code ${code}`}) before it finished`)),
            ),
          (err: Error) => finish(() => reject(new PruneLensError('output', `cannot remove the unfinished output: ${err.message}`, out))),
        );
      });
      send(child, { type: 'run', kind, options });
    });
  }
}

function send(child: ChildProcess, message: ToEngine): void {
  if (child.connected) child.send(message);
}
