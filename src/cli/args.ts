import { PruneLensError } from '../engine/errors';
import { isProvider, type Provider } from '../engine/graph/session';

export function positiveInt(value: string | undefined, option: string): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < 1) throw new PruneLensError('usage', `${option} must be a positive integer, got "${value}"`);
  return n;
}

export function provider(value: string | undefined): Provider {
  const name = value ?? 'cpu';
  if (!isProvider(name)) throw new PruneLensError('usage', `--provider must be one of cpu, webgpu, cuda; got "${name}"`);
  return name;
}
