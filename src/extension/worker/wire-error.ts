import { PruneLensError } from '../../engine/errors';
import type { WireError } from './protocol';

/** What the engine process sends for a failure: a PruneLensError as it is, anything else as an internal error with its stack. */
export function toWire(err: unknown): WireError {
  if (err instanceof PruneLensError) {
    const prefix = err.where ? `${err.where}: ` : '';
    return { kind: err.kind, message: err.message.startsWith(prefix) ? err.message.slice(prefix.length) : err.message, ...(err.where ? { where: err.where } : {}) };
  }
  return { kind: 'internal', message: err instanceof Error ? (err.stack ?? err.message) : String(err) };
}

/** The host's side: the same PruneLensError the engine threw, or an Error for a bug, so callers handle both as before. */
export function fromWire(error: WireError): Error {
  if (error.kind === 'internal') return new Error(error.message);
  return new PruneLensError(error.kind, error.message, error.where);
}
