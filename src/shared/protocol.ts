/**
 * Messages between the allocation panel (extension host) and its webview, shared by both builds.
 * Only types and small pure validators live here: the webview bundle must not pull in the engine.
 *
 * The webview owns the edits (allocation, per-block sparsities) and keeps them in its own state, so
 * they survive the panel being hidden (the page is discarded) and the window reloading; every request
 * carries the whole edit, so the host never has to keep a copy in step.
 */
import type { Allocation } from '../engine/allocate/plan';
import type { Method } from '../engine/prune/spec';

/** Exhaustive maps, so a method or allocation added to the engine fails to compile until labelled here. */
export const METHOD_LABELS: Record<Method, string> = { magnitude: 'Magnitude', wanda: 'Wanda', sparsegpt: 'SparseGPT', alps: 'ALPS' };
export const ALLOCATION_LABELS: Record<Allocation, string> = { uniform: 'Uniform', owl: 'OWL', besa: 'BESA-style' };
export const ALLOCATION_KINDS = Object.keys(ALLOCATION_LABELS) as Allocation[];
export const PLAN_METHODS = Object.keys(METHOD_LABELS) as Method[];

/**
 * Highest sparsity a slider or a plan target offers: the error ladder stops at 0.95, past it the estimate
 * only extrapolates. A plan itself may go higher (OWL at 0.9 reaches 0.98); any ratio below 1 is valid.
 */
export const MAX_SPARSITY = 0.95;
/** More decoder blocks than any model PruneLens can load; bounds what an inbound message may carry. */
export const MAX_BLOCKS = 4096;

export interface ModelInfo {
  path: string;
  name: string;
  modelType: string;
  layers: number;
  parameters: number;
}

/** One allocation's plan as the webview draws it; the error table stays in the host. */
export interface PlanSummary {
  blocks: number[];
  /** estimatePlan's score of the unedited plan and its blocks' shares: the baseline an edit is compared with. */
  score: number;
  perBlock: number[];
}

export type Job = 'plans' | 'apply' | 'export';

export type ToWebview =
  | { type: 'init'; model: ModelInfo; method: Method; target: number; calibration: string; evaluation: string }
  | { type: 'plans'; method: Method; target: number; plans: Record<Allocation, PlanSummary> }
  | { type: 'estimate'; requestId: number; score: number; perBlock: number[]; target: number }
  | { type: 'progress'; job: Job; stage: string; done: number; total: number; detail?: string }
  | { type: 'done'; job: 'apply' | 'export'; output: string; pplDense: number | null; ppl: number | null; sparsity: number }
  | { type: 'cancelled'; job: Job }
  /** `job` is set when the failure ended that job; otherwise a request was refused and nothing stopped. */
  | { type: 'error'; message: string; job?: Job };

export type FromWebview =
  | { type: 'ready' }
  | { type: 'computePlans'; method: Method; target: number }
  | { type: 'requestEstimate'; requestId: number; allocation: Allocation; blocks: number[] }
  | { type: 'apply'; allocation: Allocation; blocks: number[] }
  | { type: 'export'; allocation: Allocation; blocks: number[] }
  | { type: 'cancel' }
  | { type: 'openReport' };

/** What the webview keeps with setState; the host reads `model`, `method` and `target` back on revive. */
export interface PanelState {
  model: string;
  method: Method;
  target: number;
  info?: ModelInfo;
  plans?: { method: Method; target: number; plans: Record<Allocation, PlanSummary> };
  allocation?: Allocation;
  blocks?: number[];
}

export function assertNever(value: never): never {
  throw new Error(`unexpected message ${JSON.stringify(value)}`);
}

type Fields = Record<string, unknown>;

const isObject = (x: unknown): x is Fields => typeof x === 'object' && x !== null && !Array.isArray(x);
const isSparsity = (x: unknown): x is number => typeof x === 'number' && Number.isFinite(x) && x >= 0 && x < 1;
const isTarget = (x: unknown): x is number => isSparsity(x) && x > 0 && x <= MAX_SPARSITY;
const isMethod = (x: unknown): x is Method => typeof x === 'string' && Object.hasOwn(METHOD_LABELS, x);
const isAllocation = (x: unknown): x is Allocation => typeof x === 'string' && Object.hasOwn(ALLOCATION_LABELS, x);
const isBlocks = (x: unknown): x is number[] => Array.isArray(x) && x.length > 0 && x.length <= MAX_BLOCKS && x.every(isSparsity);
const isRequestId = (x: unknown): x is number => Number.isSafeInteger(x) && (x as number) >= 0;

/** The host's gate: every inbound message is checked field by field before it is acted on. */
export function isFromWebview(x: unknown): x is FromWebview {
  if (!isObject(x) || typeof x.type !== 'string') return false;
  const type = x.type as FromWebview['type'];
  switch (type) {
    case 'ready':
    case 'cancel':
    case 'openReport':
      return true;
    case 'computePlans':
      return isMethod(x.method) && isTarget(x.target);
    case 'requestEstimate':
      return isRequestId(x.requestId) && isAllocation(x.allocation) && isBlocks(x.blocks);
    case 'apply':
    case 'export':
      return isAllocation(x.allocation) && isBlocks(x.blocks);
    default:
      return false;
  }
}

/** A revived panel's saved state, or undefined when it cannot say which model it showed. */
export function restorableState(x: unknown): Pick<PanelState, 'model' | 'method' | 'target'> | undefined {
  if (!isObject(x) || typeof x.model !== 'string' || x.model.length === 0 || !isMethod(x.method) || !isTarget(x.target)) return undefined;
  return { model: x.model, method: x.method, target: x.target };
}
