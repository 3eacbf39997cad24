import { PruneLensError } from '../engine/errors';
import { isProvider, type Provider } from '../engine/graph/session';
import { checkSparsity, isMethod, parseNM, type PruneSpec } from '../engine/prune/spec';

export function positiveInt(value: string | undefined, option: string): number | undefined {
  const n = nonNegativeInt(value, option);
  if (n === 0) throw new PruneLensError('usage', `${option} must be a positive integer, got "${value}"`);
  return n;
}

export function nonNegativeInt(value: string | undefined, option: string): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (value.trim() === '' || !Number.isSafeInteger(n) || n < 0) throw new PruneLensError('usage', `${option} must be a non-negative integer, got "${value}"`);
  return n;
}

function fraction(value: string | undefined, option: string): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n)) throw new PruneLensError('usage', `${option} must be a number, got "${value}"`);
  return n;
}

export function provider(value: string | undefined): Provider {
  const name = value ?? 'cpu';
  if (!isProvider(name)) throw new PruneLensError('usage', `--provider must be one of cpu, webgpu, cuda; got "${name}"`);
  return name;
}

function globs(value: string | undefined): string[] {
  return value === undefined ? [] : value.split(',').map((g) => g.trim()).filter((g) => g.length > 0);
}

export function pruneSpec(values: {
  method?: string;
  sparsity?: string;
  nm?: string;
  include?: string;
  exclude?: string;
  blocksize?: string;
  percdamp?: string;
}): PruneSpec {
  const method = values.method ?? 'wanda';
  if (!isMethod(method)) throw new PruneLensError('usage', `--method must be one of magnitude, wanda, sparsegpt; got "${method}"`);
  if (values.nm !== undefined && values.sparsity !== undefined) {
    throw new PruneLensError('usage', '--nm fixes the sparsity at N/M; give --sparsity or --nm, not both');
  }
  const nm = values.nm === undefined ? undefined : parseNM(values.nm);
  const percdamp = fraction(values.percdamp, '--percdamp') ?? 0.01;
  if (!(percdamp > 0)) throw new PruneLensError('usage', `--percdamp must be positive, got ${percdamp}`);
  return {
    method,
    sparsity: nm ? nm.n / nm.m : checkSparsity(fraction(values.sparsity, '--sparsity') ?? 0.5),
    nm,
    include: globs(values.include),
    exclude: globs(values.exclude),
    blocksize: positiveInt(values.blocksize, '--blocksize') ?? 128,
    percdamp,
  };
}
