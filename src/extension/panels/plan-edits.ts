import { linearSizes, planSparsity, type BlockPlan, type Plan } from '../../engine/allocate/plan';
import { PruneLensError } from '../../engine/errors';
import { LINEARS, type LinearName, type ModelConfig } from '../../engine/model/config';
import type { BlockLinears, Edit, LinearInfo, PlanSummary } from '../../shared/protocol';

/** The linears in the order every per-linear array of the panel's messages follows, with their sizes. */
export function linearInfo(cfg: ModelConfig): LinearInfo[] {
  const sizes = linearSizes(cfg);
  return LINEARS.map((name) => ({ name, label: name.slice(name.indexOf('.') + 1), size: sizes[name] }));
}

/** A plan's per-linear ratios as the page edits them: all seven in LINEARS order, or null for a block-wide ratio. */
export function planLinears(plan: Plan): BlockLinears {
  return plan.blocks.map((b) => (b.linears && Object.keys(b.linears).length > 0 ? LINEARS.map((l) => b.linears![l] ?? b.sparsity) : null));
}

export function planSummary(plan: Plan, estimate: { score: number; perBlock: number[] }): PlanSummary {
  return { blocks: plan.blocks.map((b) => b.sparsity), linears: planLinears(plan), ...estimate };
}

/**
 * The plan the page's edit describes, built on the plan it started from. A block with per-linear ratios
 * gets all seven, and its sparsity is their size-weighted mean (what parsePlan requires); any other
 * block one ratio. The error table and the rest of the base plan are kept, so estimatePlan prices the
 * edit from the table the base measured; an edited plan is recorded as a manual allocation.
 */
export function editPlan(base: Plan, edit: Pick<Edit, 'blocks' | 'linears'>, cfg: ModelConfig): Plan {
  const blocks = edit.blocks;
  const linears = edit.linears ?? blocks.map(() => null);
  if (blocks.length !== base.blocks.length || linears.length !== base.blocks.length) {
    throw new PruneLensError('usage', `the edit has ${blocks.length} block sparsities but the plan has ${base.blocks.length} blocks`);
  }
  const sizes = linearSizes(cfg);
  const total = LINEARS.reduce((n, l) => n + sizes[l], 0);
  const baseLinears = planLinears(base);
  let edited = false;
  const moved = base.blocks.map((block, i): BlockPlan => {
    const ratios = linears[i];
    if (ratios) {
      if (ratios.length !== LINEARS.length) throw new PruneLensError('usage', `block ${i} has ${ratios.length} linear ratios; a block has ${LINEARS.length} linears`);
      const before = baseLinears[i];
      if (before && ratios.every((r, k) => Math.abs(r - before[k]!) < 1e-9)) return block;
      edited = true;
      const named = Object.fromEntries(LINEARS.map((l, k) => [l, ratios[k]!])) as Record<LinearName, number>;
      return { layer: block.layer, sparsity: LINEARS.reduce((n, l) => n + sizes[l] * named[l], 0) / total, linears: named };
    }
    const requested = blocks[i]!;
    if (!baseLinears[i] && Math.abs(requested - block.sparsity) < 1e-9) return block;
    edited = true;
    return { layer: block.layer, sparsity: requested };
  });
  if (!edited) return base;
  const plan: Plan = { ...base, allocation: 'manual', blocks: moved };
  return { ...plan, target: planSparsity(plan, cfg) };
}

/** Two plans prune alike: the same ratio for every linear of every block. */
export function samePlan(a: Plan, b: Plan): boolean {
  if (a.blocks.length !== b.blocks.length) return false;
  return a.blocks.every((x, i) => {
    const y = b.blocks[i]!;
    return x.layer === y.layer && LINEARS.every((l) => Math.abs((x.linears?.[l] ?? x.sparsity) - (y.linears?.[l] ?? y.sparsity)) < 1e-9);
  });
}
