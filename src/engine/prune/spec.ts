import { PruneLensError } from '../errors';
import { inRange, rangeText, type NumberRange } from '../range';

export const METHODS = ['magnitude', 'wanda', 'sparsegpt', 'alps'] as const;
export type Method = (typeof METHODS)[number];

/** A weight update run after the method's mask is chosen: ADMM re-fits the kept weights (admm.ts). */
export const UPDATES = ['admm'] as const;
export type Update = (typeof UPDATES)[number];

/** N:M sparsity: n of every m consecutive input weights are zero. */
export interface NM {
  n: number;
  m: number;
}

/** What to prune and how; the same object is recorded in prunelens.json. */
export interface PruneSpec {
  method: Method;
  /** Fraction of each targeted matrix's weights to zero; for N:M it is n/m. */
  sparsity: number;
  nm?: NM;
  /** Glob patterns over module names of block linears (`model.layers.*.mlp.*`); all by default. */
  include: string[];
  exclude: string[];
  /** Re-fit the kept weights to the layer's output after any method's mask; absent keeps the method's weights. */
  update?: Update;
  /** SparseGPT's lazy-update block width; dampening for SparseGPT, ALPS and the ADMM update. */
  blocksize: number;
  percdamp: number;
}

export function isMethod(value: string): value is Method {
  return (METHODS as readonly string[]).includes(value);
}

/** The update named by `value` for `method`, refusing names it does not know and ALPS, which fits its own weights. */
export function parseUpdate(value: string, method: Method): Update {
  if (!(UPDATES as readonly string[]).includes(value)) throw new PruneLensError('usage', `--update must be ${UPDATES.join(' or ')}; got "${value}"`);
  if (method === 'alps') throw new PruneLensError('usage', 'ALPS fits its own weights; --update applies to magnitude, wanda and sparsegpt');
  return value as Update;
}

export function parseNM(text: string): NM {
  const match = /^(\d+):(\d+)$/.exec(text.trim());
  const n = Number(match?.[1]);
  const m = Number(match?.[2]);
  if (!match || !(n >= 1 && m > n)) throw new PruneLensError('usage', `N:M must look like 2:4 with 0 < N < M, got "${text}"`);
  return { n, m };
}

/** The fraction of a matrix unstructured pruning may zero: the one definition the CLI and the engine check. */
export const SPARSITY_RANGE: NumberRange = { integer: false, min: 0, max: 1, maxOpen: true };

export function checkSparsity(sparsity: number): number {
  if (!inRange(sparsity, SPARSITY_RANGE)) throw new PruneLensError('usage', `sparsity must be in ${rangeText(SPARSITY_RANGE)}, got ${sparsity}`);
  return sparsity;
}

/** `*` matches within one dot-separated part, `**` across parts; the whole name must match. */
export function globToRegExp(glob: string): RegExp {
  const body = glob
    .split('**')
    .map((part) => part.split('*').map((s) => s.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('[^.]*'))
    .join('.*');
  return new RegExp(`^${body}$`);
}

/**
 * Whether a linear's weight is pruned under the spec's include and exclude patterns, which match the
 * module name (the tensor name without `.weight`), as llm-compressor's targets do.
 */
export function isTargeted(spec: Pick<PruneSpec, 'include' | 'exclude'>, tensorName: string): boolean {
  const module = tensorName.replace(/\.weight$/, '');
  const matches = (globs: string[]): boolean => globs.some((g) => globToRegExp(g).test(module));
  return (spec.include.length === 0 || matches(spec.include)) && !matches(spec.exclude);
}
