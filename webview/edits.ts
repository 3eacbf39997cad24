/**
 * The panel's edit arithmetic and saved-state check, kept free of the DOM so it runs under the unit
 * tests as well as in the page.
 */
import type { Allocation } from '../src/engine/allocate/plan';
import { ALLOCATION_KINDS, ALLOCATION_LABELS, MAX_SPARSITY, restorableState, type BlockLinears, type LinearInfo, type PanelState, type PlanSummary } from '../src/shared/protocol';

/** Slider resolution: half a percent. */
export const STEP = 0.005;

export function clampSparsity(x: number): number {
  return Math.min(MAX_SPARSITY, Math.max(0, Math.round(x / STEP) * STEP));
}

export function mean(xs: readonly number[]): number {
  return xs.reduce((a, b) => a + b, 0) / xs.length;
}

/**
 * Moves every block by the same amount so their mean (the model-wide sparsity: every decoder block has
 * the same shape) becomes `target`. Blocks pinned at 0 or the maximum stop there and the others make up
 * the difference; the shift is found by bisection, since the clamped mean grows with it.
 */
export function shiftToMean(blocks: readonly number[], target: number): number[] {
  const goal = Math.min(MAX_SPARSITY, Math.max(0, target));
  // Rounded to a millionth so saved state and exported plans read cleanly; the mean moves by less than that.
  const at = (delta: number): number[] => blocks.map((b) => Math.round(Math.min(MAX_SPARSITY, Math.max(0, b + delta)) * 1e6) / 1e6);
  let lo = -1;
  let hi = 1;
  for (let i = 0; i < 50; i++) {
    const mid = (lo + hi) / 2;
    if (mean(at(mid)) < goal) lo = mid;
    else hi = mid;
  }
  return at(hi);
}

/** The block-wide sparsity of per-linear ratios: their mean weighted by each linear's size. */
export function weightedMean(ratios: readonly number[], linears: readonly LinearInfo[]): number {
  const total = linears.reduce((n, l) => n + l.size, 0);
  return ratios.reduce((n, r, k) => n + r * linears[k]!.size, 0) / total;
}

/** Rounded to a millionth so saved state and exported plans read cleanly. */
const tidy = (x: number): number => Math.round(Math.min(MAX_SPARSITY, Math.max(0, x)) * 1e6) / 1e6;

/** An edit of block sparsities and, for blocks that have them, per-linear ratios. */
export interface BlockEdit {
  blocks: number[];
  linears: BlockLinears;
}

/**
 * Block `i` moved to `value`. A block with per-linear ratios keeps their spread: every linear moves by
 * the block's change (clamped), and the block reads what its linears then prune.
 */
export function moveBlock(edit: BlockEdit, i: number, value: number, info: readonly LinearInfo[]): BlockEdit {
  const blocks = [...edit.blocks];
  const linears = [...edit.linears];
  const ratios = linears[i];
  if (ratios) {
    const delta = value - blocks[i]!;
    linears[i] = ratios.map((r) => tidy(r + delta));
    blocks[i] = tidy(weightedMean(linears[i]!, info));
  } else {
    blocks[i] = tidy(value);
  }
  return { blocks, linears };
}

/** One linear of block `i` set to `value`; the block reads the new size-weighted mean. */
export function moveLinear(edit: BlockEdit, i: number, k: number, value: number, info: readonly LinearInfo[]): BlockEdit {
  const linears = [...edit.linears];
  const ratios = [...(linears[i] ?? info.map(() => edit.blocks[i]!))];
  ratios[k] = tidy(value);
  linears[i] = ratios;
  const blocks = [...edit.blocks];
  blocks[i] = tidy(weightedMean(ratios, info));
  return { blocks, linears };
}

/** Every block shifted alike (shiftToMean) so the model-wide sparsity becomes `target`, linears moving with their block. */
export function shiftEdit(edit: BlockEdit, target: number, info: readonly LinearInfo[]): BlockEdit {
  const shifted = shiftToMean(edit.blocks, target);
  return shifted.reduce<BlockEdit>((e, value, i) => (e.linears[i] ? moveBlock(e, i, value, info) : { ...e, blocks: e.blocks.map((b, j) => (j === i ? value : b)) }), edit);
}

export function sameBlocks(a: readonly number[] | undefined, b: readonly number[] | undefined): boolean {
  return a !== undefined && b !== undefined && a.length === b.length && a.every((x, i) => Math.abs(x - b[i]!) < 1e-9);
}

export function samePlans(a: PanelState['plans'], b: PanelState['plans']): boolean {
  return a !== undefined && b !== undefined && a.method === b.method && a.target === b.target && ALLOCATION_KINDS.every((k) => sameBlocks(a.plans[k].blocks, b.plans[k].blocks));
}

export function percent(x: number, digits = 1): string {
  return `${(100 * x).toFixed(digits)}%`;
}

/** "2.1% lower than OWL": how an edit's estimate compares with the plan it started from. */
export function comparedWith(score: number, base: number, allocation: Allocation): string {
  if (!(base > 0)) return '';
  const change = (score - base) / base;
  if (Math.abs(change) < 0.0005) return `same as ${ALLOCATION_LABELS[allocation]}`;
  return `${percent(Math.abs(change))} ${change < 0 ? 'lower' : 'higher'} than ${ALLOCATION_LABELS[allocation]}`;
}

const isLinears = (x: unknown, layers: number): x is BlockLinears =>
  Array.isArray(x) && x.length === layers && x.every((l) => l === null || (Array.isArray(l) && l.every((r) => typeof r === 'number' && r >= 0 && r < 1)));
const isSummary = (x: unknown, layers: number): x is PlanSummary =>
  typeof x === 'object' &&
  x !== null &&
  [(x as PlanSummary).blocks, (x as PlanSummary).perBlock].every((a) => Array.isArray(a) && a.length === layers) &&
  isLinears((x as PlanSummary).linears, layers) &&
  typeof (x as PlanSummary).score === 'number';

/**
 * The page's saved state, or undefined. It was written by this page, but perhaps by an older build, so
 * anything that does not fit is dropped rather than trusted; the model, method and target are required.
 */
export function restoreState(raw: unknown): PanelState | undefined {
  const base = restorableState(raw);
  if (!base) return undefined;
  const saved = raw as Partial<PanelState>;
  const state: PanelState = { ...base };
  const layers = saved.info?.layers;
  if (typeof layers !== 'number' || typeof saved.info?.name !== 'string') return state;
  state.info = saved.info;
  const plans = saved.plans;
  if (plans && typeof plans.plans === 'object' && plans.plans !== null && ALLOCATION_KINDS.every((k) => isSummary(plans.plans[k], layers))) {
    state.plans = plans;
  }
  if (saved.allocation !== undefined && (ALLOCATION_KINDS as readonly string[]).includes(saved.allocation)) state.allocation = saved.allocation;
  if (Array.isArray(saved.linearInfo) && saved.linearInfo.every((l) => typeof l?.name === 'string' && typeof l.label === 'string' && typeof l.size === 'number')) {
    state.linearInfo = saved.linearInfo;
  }
  if (Array.isArray(saved.blocks) && saved.blocks.length === layers && saved.blocks.every((b) => typeof b === 'number' && b >= 0 && b < 1)) {
    state.blocks = saved.blocks;
    state.linears = isLinears(saved.linears, layers) ? saved.linears : saved.blocks.map(() => null);
  }
  if (Array.isArray(saved.expanded) && saved.expanded.every((i) => Number.isInteger(i) && i >= 0 && i < layers)) state.expanded = saved.expanded;
  const r = saved.result;
  if (r && typeof r.output === 'string' && (r.job === 'apply' || r.job === 'export') && typeof r.sparsity === 'number') state.result = r;
  return state;
}
