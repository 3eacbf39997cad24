/**
 * How PruneLens writes its names and numbers, everywhere a person reads them (report, extension, panel):
 * one spelling per method and allocation, one format per quantity. Type-only imports and the dependency-free
 * method catalog, so the webview bundle can use this without pulling in the engine.
 */
import type { Allocation } from './allocate/plan';

/** The methods' labels are the registry's (prune/methods/catalog.ts), a dependency-free table. */
export { METHOD_LABELS, UPDATE_LABELS } from './prune/methods/catalog';
export const ALLOCATION_NAMES: Record<Allocation | 'manual', string> = { uniform: 'uniform', owl: 'OWL', besa: 'BESA-style', manual: 'manual' };

/** Perplexity: two decimals (4.65, 18.84). */
export const formatPerplexity = (v: number | null): string => (v === null ? '–' : v.toFixed(2));
/** A fraction as a percentage with one decimal (50.0%). */
export const formatPercent = (v: number): string => `${(100 * v).toFixed(1)}%`;
/** Losses and their changes: nats with three decimals. */
export const formatNats = (v: number): string => `${v.toFixed(3)} nats`;
/** Layer losses, which span many orders of magnitude: four significant digits. */
export const formatLoss = (v: number): string => (v === 0 ? '0' : v.toPrecision(4));
/** A linear's pruning time: whole milliseconds. */
export const formatMs = (v: number): string => `${v.toFixed(0)} ms`;
/** Durations: seconds with one decimal. */
export const formatSeconds = (v: number): string => `${v.toFixed(1)} s`;
/** Sizes on disk: MiB with one decimal. */
export const formatMiB = (bytes: number): string => `${(bytes / 2 ** 20).toFixed(1)} MiB`;
