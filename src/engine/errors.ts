/**
 * Every failure the engine reports on purpose is a PruneLensError: the message says what went wrong
 * and `where` names the file, tensor or setting, so the CLI and the extension can show it unchanged.
 * Anything else escaping the engine is a bug.
 */
export type ErrorKind =
  | 'checkpoint' // a safetensors file or shard index that cannot be trusted
  | 'config' // config.json missing, malformed, or disagreeing with the tensors
  | 'architecture' // a model_type the engine cannot build
  | 'weights' // non-finite values in a tensor
  | 'text' // calibration or evaluation text unusable for the request
  | 'usage' // an option out of range
  | 'provider' // an execution provider that this ORT build or machine lacks
  | 'output' // an output location that cannot be written
  | 'memory' // a run predicted to need more memory than is available
  | 'cancelled';

export class PruneLensError extends Error {
  override readonly name = 'PruneLensError';
  constructor(
    readonly kind: ErrorKind,
    message: string,
    readonly where?: string,
  ) {
    super(where ? `${where}: ${message}` : message);
  }
}

export function isCancelled(err: unknown): boolean {
  return err instanceof PruneLensError && err.kind === 'cancelled';
}
