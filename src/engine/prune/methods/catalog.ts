/**
 * The names of the pruning methods and weight updates, and how a person reads them, in the order every
 * list shows them (CLI usage and choices, the wizard, the allocation panel, reports). Everything else
 * about a method is in its own file, ./<name>.ts, listed in ./index.ts. This table stands apart
 * because it has no imports: the webview's protocol names the methods without bundling the engine.
 */
export const METHOD_LABELS = {
  magnitude: 'magnitude',
  wanda: 'Wanda',
  sparsegpt: 'SparseGPT',
  alps: 'ALPS',
} as const;

export type Method = keyof typeof METHOD_LABELS;

export const METHOD_NAMES = Object.keys(METHOD_LABELS) as Method[];

/** The method a run uses when none is named: Wanda, which needs no settings and little time. */
export const DEFAULT_METHOD: Method = 'wanda';

export function isMethod(value: unknown): value is Method {
  return typeof value === 'string' && Object.hasOwn(METHOD_LABELS, value);
}

/** Weight updates run after a method's mask (`--update`): each re-fits the kept weights. */
export const UPDATE_LABELS = {
  admm: 'ADMM update',
} as const;

export type Update = keyof typeof UPDATE_LABELS;

export const UPDATE_NAMES = Object.keys(UPDATE_LABELS) as Update[];
