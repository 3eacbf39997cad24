/**
 * Messages between the allocation panel (extension host) and its webview, shared by both builds.
 * Only types and small pure validators live here: the webview bundle must not pull in the engine.
 *
 * The webview owns the edits (allocation, per-block sparsities) and keeps them in its own state, so
 * they survive the panel being hidden (the page is discarded) and the window reloading; every request
 * carries the whole edit, so the host never has to keep a copy in step.
 */
import type { Allocation } from '../engine/allocate/plan';
import type { ExpertCost } from '../engine/experts/expert-cost';
import { ALLOCATION_NAMES } from '../engine/display';
import { isMethod, METHOD_LABELS, METHOD_NAMES, type Method } from '../engine/prune/methods/catalog';
import { SPARSITY_RANGE } from '../engine/prune/spec';
import { inRange } from '../engine/range';

/** The engine's one spelling of each name: the methods' from the registry's catalog; an exhaustive map, so a new allocation fails to compile until named. */
export { METHOD_LABELS };
export const ALLOCATION_LABELS: Record<Allocation, string> = { uniform: ALLOCATION_NAMES.uniform, owl: ALLOCATION_NAMES.owl, besa: ALLOCATION_NAMES.besa };
export const ALLOCATION_KINDS = Object.keys(ALLOCATION_LABELS) as Allocation[];
export const PLAN_METHODS: readonly Method[] = METHOD_NAMES;

/**
 * Highest sparsity a slider or a plan target offers: the error ladder stops at 0.95, past it the estimate
 * only extrapolates. A plan itself may go higher (OWL at 0.9 reaches 0.98); any ratio below 1 is valid.
 */
export const MAX_SPARSITY = 0.95;
/** More decoder blocks than any model PruneLens can load; bounds what an inbound message may carry. */
export const MAX_BLOCKS = 4096;
/** More linears than a decoder block has; bounds a block's per-linear array. */
export const MAX_LINEARS = 64;

export interface ModelInfo {
  path: string;
  name: string;
  modelType: string;
  layers: number;
  parameters: number;
}

/** A targeted linear of a decoder block, in the order every per-linear array of these messages follows. */
export interface LinearInfo {
  /** Block-relative name, as plan files write it (`self_attn.q_proj`). */
  name: string;
  label: string;
  /** Weights in the linear: per-linear ratios average into the block's sparsity by these. */
  size: number;
}

/** Per block: the ratio of each linear (LinearInfo order), or null where the block prunes every linear alike. */
export type BlockLinears = (number[] | null)[];

/** One allocation's plan as the webview draws it; the error table stays in the host. */
export interface PlanSummary {
  blocks: number[];
  linears: BlockLinears;
  /** estimatePlan's score of the unedited plan and its blocks' shares: the baseline an edit is compared with. */
  score: number;
  perBlock: number[];
}

export type Job = 'plans' | 'apply' | 'export';

/** The edit the page sends: where it started, each block's sparsity and, where set, each linear's. */
export interface Edit {
  allocation: Allocation;
  blocks: number[];
  /** Absent where no block has per-linear ratios. */
  linears?: BlockLinears;
}

/** The plans' calibration: a quick set (few windows) first, then the full one the settings ask for. */
export interface PlanWindows {
  windows: number;
  quick: boolean;
  seconds: number;
  /** Windows of the full set, and its expected time from the quick one's (null once the full set is shown). */
  fullWindows: number;
  fullSeconds: number | null;
}

/** What the last Apply or Export left; kept by the page so it survives hide, show and reload. */
export interface JobResult {
  job: 'apply' | 'export';
  output: string;
  pplDense: number | null;
  ppl: number | null;
  sparsity: number;
  /** An export of the model just applied: the folder was copied, not pruned again. */
  copied: boolean;
  /** An export of the plan file only: no model, no perplexity. */
  planOnly: boolean;
}

export type ToWebview =
  | { type: 'init'; model: ModelInfo; method: Method; target: number; calibration: string; evaluation: string; linears: LinearInfo[] }
  | { type: 'plans'; method: Method; target: number; calibration: PlanWindows; plans: Record<Allocation, PlanSummary> }
  | { type: 'estimate'; requestId: number; score: number; perBlock: number[]; target: number }
  | { type: 'progress'; job: Job; stage: string; done: number; total: number; detail?: string }
  | ({ type: 'done' } & JobResult)
  | { type: 'cancelled'; job: Job }
  /** `job` is set when the failure ended that job; otherwise a request was refused and nothing stopped. */
  | { type: 'error'; message: string; job?: Job };

export type FromWebview =
  | { type: 'ready' }
  | { type: 'computePlans'; method: Method; target: number; quick: boolean }
  | ({ type: 'requestEstimate'; requestId: number } & Edit)
  | ({ type: 'apply' } & Edit)
  /** `what` defaults to the model; a plan file is written without pruning. */
  | ({ type: 'export'; what?: 'model' | 'plan' } & Edit)
  | { type: 'cancel' }
  | { type: 'openReport'; output: string };

/** What the webview keeps with setState; the host reads `model`, `method` and `target` back on revive. */
export interface PanelState {
  model: string;
  method: Method;
  target: number;
  info?: ModelInfo;
  linearInfo?: LinearInfo[];
  plans?: { method: Method; target: number; calibration: PlanWindows; plans: Record<Allocation, PlanSummary> };
  allocation?: Allocation;
  blocks?: number[];
  linears?: BlockLinears;
  /** Blocks whose per-linear ratios are shown. */
  expanded?: number[];
  result?: JobResult;
}

export function assertNever(value: never): never {
  throw new Error(`unexpected message ${JSON.stringify(value)}`);
}

type Fields = Record<string, unknown>;

const isObject = (x: unknown): x is Fields => typeof x === 'object' && x !== null && !Array.isArray(x);
const isSparsity = (x: unknown): x is number => typeof x === 'number' && inRange(x, SPARSITY_RANGE);
const isTarget = (x: unknown): x is number => isSparsity(x) && x > 0 && x <= MAX_SPARSITY;
const isAllocation = (x: unknown): x is Allocation => typeof x === 'string' && Object.hasOwn(ALLOCATION_LABELS, x);
const isBlocks = (x: unknown): x is number[] => Array.isArray(x) && x.length > 0 && x.length <= MAX_BLOCKS && x.every(isSparsity);
const isRequestId = (x: unknown): x is number => Number.isSafeInteger(x) && (x as number) >= 0;
/** Block linears: one entry per block, each null or a short array of ratios (the host checks the exact count). */
const isLinears = (x: unknown, blocks: number): x is BlockLinears =>
  Array.isArray(x) && x.length === blocks && x.every((l) => l === null || (Array.isArray(l) && l.length > 0 && l.length <= MAX_LINEARS && l.every(isSparsity)));
const isEdit = (x: Fields): boolean => isAllocation(x.allocation) && isBlocks(x.blocks) && (x.linears === undefined || isLinears(x.linears, x.blocks.length));

/** The host's gate: every inbound message is checked field by field before it is acted on. */
export function isFromWebview(x: unknown): x is FromWebview {
  if (!isObject(x) || typeof x.type !== 'string') return false;
  const type = x.type as FromWebview['type'];
  switch (type) {
    case 'ready':
    case 'cancel':
      return true;
    case 'openReport':
      return typeof x.output === 'string' && x.output.length > 0 && x.output.length <= 4096;
    case 'computePlans':
      return isMethod(x.method) && isTarget(x.target) && typeof x.quick === 'boolean';
    case 'requestEstimate':
      return isRequestId(x.requestId) && isEdit(x);
    case 'apply':
      return isEdit(x);
    case 'export':
      return isEdit(x) && (x.what === undefined || x.what === 'model' || x.what === 'plan');
    default:
      return false;
  }
}

/** A revived panel's saved state, or undefined when it cannot say which model it showed. */
export function restorableState(x: unknown): Pick<PanelState, 'model' | 'method' | 'target'> | undefined {
  if (!isObject(x) || typeof x.model !== 'string' || x.model.length === 0 || !isMethod(x.method) || !isTarget(x.target)) return undefined;
  return { model: x.model, method: x.method, target: x.target };
}

// ---- The expert heat map (src/extension/panels/expert-heatmap-panel.ts and webview/heatmap.ts).

/** What a cell's colour can show; the engine's ExpertStat fields. */
export const HEATMAP_METRICS = ['reap', 'frequency', 'meanWeight'] as const;
export type HeatmapMetric = (typeof HEATMAP_METRICS)[number];
export const HEATMAP_METRIC_LABELS: Record<HeatmapMetric, string> = { reap: 'REAP', frequency: 'routing share', meanWeight: 'mean routing weight' };

/** More experts than any layer of a model PruneLens can load (the MoE spec refuses more); bounds inbound lists. */
export const MAX_EXPERTS = 4096;

export interface HeatmapModel {
  path: string;
  name: string;
  modelType: string;
  layers: number;
  /** Layers with experts (Qwen's dense layers are absent). */
  sparseLayers: number[];
  experts: number;
  topK: number;
  parameters: number;
}

export interface HeatmapExpert {
  routed: number;
  frequency: number;
  meanWeight: number;
  reap: number;
}

export interface HeatmapStats {
  /** Calibration file name, windows and their length. */
  calibration: { file: string; nsamples: number; seqlen: number };
  tokens: number;
  layers: { layer: number; experts: HeatmapExpert[] }[];
}

export type { ExpertCost };

/** Source expert indices to remove, per layer ("0": [3, 5]). */
export type ExpertSelection = Record<string, number[]>;

export type HeatmapJob = 'stats' | 'apply';

export interface HeatmapResult {
  output: string;
  pplDense: number | null;
  ppl: number | null;
  parametersRemoved: number;
  /** Per layer with masked experts: routings to them per calibration token, measured on the written model. */
  maskedRouting: Record<string, number> | null;
}

export type HeatmapToWebview =
  | { type: 'init'; model: HeatmapModel; calibration: string; evaluation: string }
  | { type: 'stats'; stats: HeatmapStats }
  | { type: 'cost'; requestId: number; cost: ExpertCost }
  /** The selection cannot be applied (a layer below top-k); nothing ran. */
  | { type: 'costError'; requestId: number; message: string }
  | { type: 'progress'; job: HeatmapJob; stage: string; done: number; total: number }
  | ({ type: 'done' } & HeatmapResult)
  | { type: 'cancelled'; job: HeatmapJob }
  | { type: 'error'; message: string; job?: HeatmapJob };

export type HeatmapFromWebview =
  | { type: 'ready' }
  | { type: 'computeStats' }
  | { type: 'requestCost'; requestId: number; selection: ExpertSelection }
  | { type: 'apply'; selection: ExpertSelection }
  | { type: 'cancel' }
  | { type: 'openReport'; output: string };

/** What the heat map page keeps with setState; the host reads `model` back on revive. */
export interface HeatmapState {
  model: string;
  metric: HeatmapMetric;
  selection: ExpertSelection;
  lowestN: number;
  result?: HeatmapResult;
}

const isSelection = (x: unknown): x is ExpertSelection =>
  isObject(x) &&
  Object.keys(x).length <= MAX_BLOCKS &&
  Object.entries(x).every(([l, e]) => /^\d+$/.test(l) && Array.isArray(e) && e.length <= MAX_EXPERTS && e.every((j) => Number.isSafeInteger(j) && (j as number) >= 0));

/** The heat map host's gate for inbound messages (the engine checks the experts against the model). */
export function isFromHeatmap(x: unknown): x is HeatmapFromWebview {
  if (!isObject(x) || typeof x.type !== 'string') return false;
  const type = x.type as HeatmapFromWebview['type'];
  switch (type) {
    case 'ready':
    case 'computeStats':
    case 'cancel':
      return true;
    case 'requestCost':
      return isRequestId(x.requestId) && isSelection(x.selection);
    case 'apply':
      return isSelection(x.selection);
    case 'openReport':
      return typeof x.output === 'string' && x.output.length > 0 && x.output.length <= 4096;
    default:
      return false;
  }
}

/** A revived heat map's model, or undefined when its saved state names none. */
export function restorableHeatmap(x: unknown): string | undefined {
  return isObject(x) && typeof x.model === 'string' && x.model.length > 0 ? x.model : undefined;
}
