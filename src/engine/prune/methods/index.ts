import { PruneLensError } from '../../errors';
import type { PruneSettings } from '../spec';
import { admm } from './admm-update';
import { alps } from './alps';
import { DEFAULT_METHOD, isMethod, METHOD_LABELS, METHOD_NAMES, UPDATE_NAMES, type Method, type Update } from './catalog';
import { magnitude } from './magnitude';
import { STATISTICS, type PruneMethod, type Statistic, type WeightUpdate } from './method';
import { sparsegpt } from './sparsegpt';
import { wanda } from './wanda';

/**
 * The registry: every method and update by name. The sequential loop, the CLI's usage and choices,
 * the wizard's items, the report and the record read them from here; the labels, which the webview
 * needs without the engine, from ./catalog.ts. The type makes this list and the catalog agree.
 */
const METHODS: { readonly [M in Method]: PruneMethod<M> } = {
  magnitude,
  wanda,
  sparsegpt,
  alps,
};

const UPDATES: { readonly [U in Update]: WeightUpdate<U> } = { admm };

export { DEFAULT_METHOD, isMethod, METHOD_LABELS, METHOD_NAMES, UPDATE_NAMES, type Method, type Update };

/** Every method, in the catalog's order. */
export function methods(): PruneMethod[] {
  return METHOD_NAMES.map((name) => METHODS[name]);
}

export function methodOf(name: Method): PruneMethod {
  return METHODS[name];
}

export function updateOf(name: Update): WeightUpdate {
  return UPDATES[name];
}

/** Who reads a setting: the methods, and the updates as `--update NAME`, that list it. */
export function settingReaders(setting: keyof PruneSettings): string {
  const readers = [...methods().filter((m) => m.settings.includes(setting)).map((m) => m.name), ...UPDATE_NAMES.filter((u) => UPDATES[u].settings.includes(setting)).map((u) => `--update ${u}`)];
  return readers.join(', ');
}

/** "a, b and c" */
function listText(items: readonly string[]): string {
  return items.length <= 1 ? items.join('') : `${items.slice(0, -1).join(', ')} and ${items[items.length - 1]}`;
}

/** The method named by `value`, or a usage error listing them. */
export function parseMethod(value: string): Method {
  if (!isMethod(value)) throw new PruneLensError('usage', `--method must be one of ${METHOD_NAMES.join(', ')}; got "${value}"`);
  return value;
}

/** The update named by `value` for `method`, refusing names it does not know and methods that fit their own weights. */
export function parseUpdate(value: string, method: Method): Update {
  if (!(UPDATE_NAMES as readonly string[]).includes(value)) throw new PruneLensError('usage', `--update must be ${UPDATE_NAMES.join(' or ')}; got "${value}"`);
  if (!METHODS[method].acceptsUpdate) {
    const accepting = methods().filter((m) => m.acceptsUpdate).map((m) => m.name);
    throw new PruneLensError('usage', `${METHOD_LABELS[method]} fits its own weights; --update applies to ${listText(accepting)}`);
  }
  return value as Update;
}

/** The statistic a spec's method and update need together: the stronger of the two (a Gram matrix also gives the norms). */
export function statisticOf(spec: { method: Method; update?: Update }): Statistic {
  const update = spec.update ? UPDATES[spec.update].statistic : 'none';
  const own = METHODS[spec.method].statistic;
  return STATISTICS.indexOf(update) > STATISTICS.indexOf(own) ? update : own;
}

export function needsCalibration(spec: { method: Method; update?: Update }): boolean {
  return statisticOf(spec) !== 'none';
}
