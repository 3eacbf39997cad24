import { linearSizes, planSparsity, type BlockPlan, type Plan } from '../../engine/allocate/plan';
import { PruneLensError } from '../../engine/errors';
import { LINEARS, type LinearName, type ModelConfig } from '../../engine/model/config';
import { MAX_SPARSITY } from '../../shared/protocol';

/**
 * A plan with its block sparsities moved to the panel's sliders. A block whose plan names per-linear
 * ratios (BESA-style) keeps their spread: every linear moves by the same amount as the block. The error
 * table and the rest of the plan are kept, so estimatePlan prices the edit from the table the base plan
 * measured; an edited plan is recorded as a manual allocation.
 */
export function editPlan(base: Plan, blocks: readonly number[], cfg: ModelConfig): Plan {
  if (blocks.length !== base.blocks.length) {
    throw new PruneLensError('usage', `the edit has ${blocks.length} block sparsities but the plan has ${base.blocks.length} blocks`);
  }
  const sizes = linearSizes(cfg);
  let edited = false;
  const moved = base.blocks.map((block, i): BlockPlan => {
    const requested = blocks[i]!;
    if (Math.abs(requested - block.sparsity) < 1e-9) return block;
    edited = true;
    return moveBlock(block, requested, sizes);
  });
  if (!edited) return base;
  const plan: Plan = { ...base, allocation: 'manual', blocks: moved };
  return { ...plan, target: planSparsity(plan, cfg) };
}

function moveBlock(block: BlockPlan, requested: number, sizes: Record<LinearName, number>): BlockPlan {
  const named = LINEARS.filter((l) => block.linears?.[l] !== undefined);
  if (named.length === 0) return { layer: block.layer, sparsity: requested };
  const delta = requested - block.sparsity;
  const linears = Object.fromEntries(named.map((l) => [l, clamp(block.linears![l]! + delta)])) as Partial<Record<LinearName, number>>;
  // With every linear named the block figure must be their size-weighted mean (parsePlan checks it);
  // clamping at either end can leave it short of the request.
  if (named.length < LINEARS.length) return { layer: block.layer, sparsity: requested, linears };
  const total = LINEARS.reduce((n, l) => n + sizes[l], 0);
  const sparsity = LINEARS.reduce((n, l) => n + sizes[l] * linears[l]!, 0) / total;
  return { layer: block.layer, sparsity, linears };
}

function clamp(ratio: number): number {
  return Math.min(MAX_SPARSITY, Math.max(0, ratio));
}
