import { PruneLensError } from './errors';

/** Plain, JSON-serialisable progress events, so the CLI can print them and the extension can post them. */
export type EngineEvent =
  | { type: 'stage'; stage: string; done: number; total: number; detail?: string }
  | { type: 'warning'; message: string }
  /** The run's predicted peak memory, sent once before any weight is read. */
  | { type: 'memory'; message: string; predictedBytes: number; availableBytes: number };

export interface Logger {
  info(message: string): void;
  warn(message: string): void;
}

/** The options bag every long engine call takes. */
export interface RunControl {
  signal?: AbortSignal;
  onProgress?: (event: EngineEvent) => void;
  log?: Logger;
}

/** ORT runs cannot be interrupted, so long loops call this between runs. */
export function throwIfCancelled(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new PruneLensError('cancelled', 'cancelled by the user');
}
