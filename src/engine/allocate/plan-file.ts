import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { PruneLensError } from '../errors';
import { LINEARS, type ModelConfig } from '../model/config';
import { parsePlan, type BlockPlan, type Plan } from './plan';

/**
 * A hash of what a plan prunes: each block's ratio and its per-linear ratios in a fixed order, so
 * reformatting or reordering keys in an editor does not count as an edit but changing any number does.
 */
export function blocksFingerprint(blocks: readonly BlockPlan[]): string {
  const canonical = blocks.map((b) => [b.layer, b.sparsity, LINEARS.map((l) => b.linears?.[l] ?? null)]);
  return createHash('sha256').update(JSON.stringify(canonical)).digest('hex');
}

/** Marks a plan as the allocator's own, so a later hand edit is detected. */
export function sealPlan(plan: Plan): Plan {
  return { ...plan, blocksSha256: blocksFingerprint(plan.blocks) };
}

/** Reads and checks a plan file against the model it is for: the one check `prune --plan` and `estimate` share. */
export async function readPlan(file: string, cfg: ModelConfig): Promise<Plan> {
  const text = await fs.readFile(file, 'utf8').catch((err: NodeJS.ErrnoException) => {
    throw new PruneLensError('usage', err.code === 'ENOENT' ? 'plan file not found' : `cannot read the plan: ${err.message}`, file);
  });
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new PruneLensError('usage', `invalid JSON: ${(err as Error).message}`, file);
  }
  const plan = parsePlan(raw, cfg, file);
  // Provenance is recomputed, not trusted: edited ratios are no longer what OWL or BESA chose.
  const edited = plan.allocation !== 'manual' && plan.blocksSha256 !== blocksFingerprint(plan.blocks);
  return edited ? { ...plan, allocation: 'manual' } : plan;
}
