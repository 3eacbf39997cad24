import { PruneLensError } from '../errors';
import { SPARSITY_RANGE } from '../prune/spec';
import { inRange, rangeText } from '../range';
import { blockLinears, LINEARS, linearShapes, type LinearName, type ModelConfig } from '../model/config';

export const ALLOCATIONS = ['uniform', 'owl', 'besa'] as const;
export type Allocation = (typeof ALLOCATIONS)[number];

/** One decoder block's share of the pruning. */
export interface BlockPlan {
  layer: number;
  /** Fraction of the block's linear weights to prune. */
  sparsity: number;
  /** Per-linear fractions (block-relative names); a linear without one takes the block's. */
  linears?: Partial<Record<LinearName, number>>;
}

/**
 * Block reconstruction errors measured per linear at a ladder of ratios: errors[layer][linear][k] is
 * the squared error of the block's output when only that linear is pruned at ratios[k]. They price
 * any plan without pruning (see estimate.ts).
 */
export interface ErrorTable {
  ratios: number[];
  errors: Record<LinearName, number[]>[];
  /** Squared norm of each dense block output on the same windows, to read errors as fractions. */
  outputNorms: number[];
  /** How many calibration windows the errors were measured on. */
  windows: number;
}

/**
 * A sparsity allocation: how much of each block (and optionally each linear) to prune, and how the
 * plan was made. Version 1 of the schema; documented in the README.
 */
export interface Plan {
  format: 'prunelens.plan';
  version: 1;
  model: { modelType: string; layers: number; hiddenSize: number; intermediateSize: number };
  /** The model-wide fraction of linear weights the plan prunes. */
  target: number;
  allocation: Allocation | 'manual';
  /**
   * sha256 of the blocks' ratios as the allocator wrote them (see plan-file.ts). A plan file whose
   * blocks no longer match was edited by hand and is read as `manual`, whatever `allocation` says.
   */
  blocksSha256?: string;
  /** The method whose scores or errors made the plan (pruning may use another). */
  method: string;
  parameters: Record<string, number>;
  calibration: { file: string; sha256: string; seed: number; nsamples: number; seqlen: number } | null;
  blocks: BlockPlan[];
  statistics: {
    /** OWL: share of Wanda scores above M times their block mean, per block. */
    outlierRatios?: number[];
    errors?: ErrorTable;
  };
}

/** Linear weights per block, by block-relative linear name. */
export function linearSizes(cfg: ModelConfig): Record<LinearName, number> {
  // From the widths, not a block's tensors: a MoE layer has experts where the MLP linears would be.
  // A linear the family does not have (the gate of GPT-2, OPT, GPT-NeoX) holds no weights.
  const shapes = linearShapes(cfg);
  const present = new Set(blockLinears(cfg));
  return Object.fromEntries(LINEARS.map((l) => [l, present.has(l) ? shapes[l][0] * shapes[l][1] : 0])) as Record<LinearName, number>;
}

/** The ratio a plan gives one linear of one block. */
export function linearRatio(plan: Plan, layer: number, linear: LinearName): number {
  const block = plan.blocks[layer]!;
  return block.linears?.[linear] ?? block.sparsity;
}

/** The fraction of all linear weights the plan prunes (parameter-weighted). */
export function planSparsity(plan: Plan, cfg: ModelConfig): number {
  const sizes = linearSizes(cfg);
  let pruned = 0;
  let total = 0;
  for (const block of plan.blocks) {
    for (const linear of LINEARS) {
      pruned += sizes[linear] * linearRatio(plan, block.layer, linear);
      total += sizes[linear];
    }
  }
  return pruned / total;
}

export function planHeader(cfg: ModelConfig): Plan['model'] {
  return { modelType: cfg.modelType, layers: cfg.numLayers, hiddenSize: cfg.hiddenSize, intermediateSize: cfg.intermediateSize };
}

export function uniformBlocks(cfg: ModelConfig, target: number): BlockPlan[] {
  return Array.from({ length: cfg.numLayers }, (_, layer) => ({ layer, sparsity: target }));
}

/**
 * Checks a plan read from a file against the model it will prune; every error names the entry
 * (`blocks[3].linears["mlp.gate"]`) so a hand edit can be found and fixed.
 */
export function parsePlan(raw: unknown, cfg: ModelConfig, where: string): Plan {
  const fail = (entry: string, message: string): never => {
    throw new PruneLensError('usage', `${entry}: ${message}`, where);
  };
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) fail('plan', 'must be a JSON object');
  const plan = raw as Partial<Plan>;
  if (plan.format !== 'prunelens.plan') fail('format', `must be "prunelens.plan", got ${JSON.stringify(plan.format ?? null)}`);
  if (plan.version !== 1) fail('version', `this PruneLens reads plan version 1, got ${JSON.stringify(plan.version ?? null)}`);
  const allocations: readonly string[] = [...ALLOCATIONS, 'manual'];
  if (typeof plan.allocation !== 'string' || !allocations.includes(plan.allocation)) {
    fail('allocation', `must be one of ${allocations.join(', ')}, got ${JSON.stringify(plan.allocation ?? null)}`);
  }
  const model = plan.model;
  if (model && model.layers !== undefined && model.layers !== cfg.numLayers) {
    fail('model', `the plan was made for ${model.layers} decoder blocks, but this model has ${cfg.numLayers}`);
  }
  if (model && (model.hiddenSize !== cfg.hiddenSize || model.intermediateSize !== cfg.intermediateSize)) {
    fail('model', `the plan was made for hidden ${model.hiddenSize} / MLP ${model.intermediateSize}, but this model has ${cfg.hiddenSize} / ${cfg.intermediateSize}`);
  }
  if (!Array.isArray(plan.blocks)) fail('blocks', 'must be an array with one entry per decoder block');
  const blocks = plan.blocks!;
  if (blocks.length !== cfg.numLayers) fail('blocks', `has ${blocks.length} entries but the model has ${cfg.numLayers} decoder blocks`);
  const ratio = (entry: string, value: unknown): number => {
    if (typeof value !== 'number' || !inRange(value, SPARSITY_RANGE)) fail(entry, `sparsity must be a number in ${rangeText(SPARSITY_RANGE)}, got ${JSON.stringify(value ?? null)}`);
    return value as number;
  };
  const sizes = linearSizes(cfg);
  blocks.forEach((block, i) => {
    const entry = `blocks[${i}]`;
    if (typeof block !== 'object' || block === null) fail(entry, 'must be an object with "layer" and "sparsity"');
    if (block.layer !== i) fail(`${entry}.layer`, `must be ${i} (blocks are listed in layer order), got ${JSON.stringify(block.layer ?? null)}`);
    ratio(`${entry}.sparsity`, block.sparsity);
    if (block.linears === undefined) return;
    if (typeof block.linears !== 'object' || block.linears === null) fail(`${entry}.linears`, 'must be an object of linear name -> sparsity');
    for (const [name, value] of Object.entries(block.linears)) {
      if (!(LINEARS as readonly string[]).includes(name)) fail(`${entry}.linears["${name}"]`, `unknown linear; known: ${LINEARS.join(', ')}`);
      ratio(`${entry}.linears["${name}"]`, value);
    }
    // With every linear given, the block figure is derived; a disagreement means one of them was edited alone.
    if (LINEARS.every((l) => block.linears![l] !== undefined)) {
      const total = LINEARS.reduce((n, l) => n + sizes[l], 0);
      const mean = LINEARS.reduce((n, l) => n + sizes[l] * block.linears![l]!, 0) / total;
      if (Math.abs(mean - block.sparsity) > 1e-4) {
        fail(`${entry}.sparsity`, `${block.sparsity} disagrees with its linears, which prune ${mean.toFixed(4)} of the block; edit the linears or remove them`);
      }
    }
  });
  const parsed = raw as Plan;
  checkErrorTable(parsed, cfg, fail);
  return { ...parsed, target: planSparsity(parsed, cfg) };
}

/** The error table, when there is one, must cover every block the plan has, or pricing it would read past its end. */
function checkErrorTable(plan: Plan, cfg: ModelConfig, fail: (entry: string, message: string) => never): void {
  const table = plan.statistics?.errors;
  if (table === undefined) return;
  const entry = 'statistics.errors';
  if (!Array.isArray(table.ratios) || !table.ratios.every((r) => typeof r === 'number' && inRange(r, SPARSITY_RANGE))) {
    fail(`${entry}.ratios`, `must be an array of ratios in ${rangeText(SPARSITY_RANGE)}`);
  }
  if (!Array.isArray(table.errors) || table.errors.length !== cfg.numLayers) fail(`${entry}.errors`, `must have one entry per decoder block (${cfg.numLayers})`);
  if (!Array.isArray(table.outputNorms) || table.outputNorms.length !== cfg.numLayers || !table.outputNorms.every((n) => typeof n === 'number' && n > 0)) {
    fail(`${entry}.outputNorms`, `must have one positive number per decoder block (${cfg.numLayers})`);
  }
  table.errors.forEach((linears, layer) => {
    for (const [name, errors] of Object.entries(linears ?? {})) {
      if (!(LINEARS as readonly string[]).includes(name)) fail(`${entry}.errors[${layer}]["${name}"]`, `unknown linear; known: ${LINEARS.join(', ')}`);
      if (!Array.isArray(errors) || errors.length !== table.ratios.length || !errors.every((e) => typeof e === 'number' && e >= 0)) {
        fail(`${entry}.errors[${layer}]["${name}"]`, `must have one non-negative error per ratio (${table.ratios.length})`);
      }
    }
  });
}
