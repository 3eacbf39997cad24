import { PruneLensError } from '../errors';
import { inRange, rangeText, type NumberRange } from '../range';
import type { Method, Update } from './methods/catalog';

export type { Method, Update } from './methods/catalog';

/** N:M sparsity: n of every m consecutive input weights are zero. */
export interface NM {
  n: number;
  m: number;
}

/** The settings a method may read (each method lists those it reads); their defaults and ranges are SETTINGS. */
export interface PruneSettings {
  /** SparseGPT's lazy-update block width. */
  blocksize: number;
  /** Dampening of the inputs' Gram matrix, a fraction of its mean diagonal (SparseGPT, ALPS, the ADMM update). */
  percdamp: number;
}

/** Each setting's one default and range: the CLI's options, the extension's jobs and the engine's checks read these. */
export const SETTINGS = {
  blocksize: { default: 128, range: { integer: true, min: 1, max: 65536 } },
  percdamp: { default: 0.01, range: { integer: false, min: 0, max: 1, minOpen: true } },
} as const satisfies Record<keyof PruneSettings, { default: number; range: NumberRange }>;

export const DEFAULT_SETTINGS: PruneSettings = { blocksize: SETTINGS.blocksize.default, percdamp: SETTINGS.percdamp.default };

/** What to prune and how; the same object is recorded in prunelens.json. */
export interface PruneSpec extends PruneSettings {
  method: Method;
  /** Fraction of each targeted matrix's weights to zero; for N:M it is n/m. */
  sparsity: number;
  nm?: NM;
  /** Glob patterns over module names of block linears (`model.layers.*.mlp.*`); all by default. */
  include: string[];
  exclude: string[];
  /** Re-fit the kept weights to the layer's output after any method's mask; absent keeps the method's weights. */
  update?: Update;
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

/** The sparsity a run prunes to when none is given (the CLI, the wizard, the Prune command's arguments). */
export const DEFAULT_SPARSITY = 0.5;

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
