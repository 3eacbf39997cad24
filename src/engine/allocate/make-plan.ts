import { drawCalibration, type CalibrationRequest } from '../calibrate/calibration-data';
import { PruneLensError } from '../errors';
import type { RuntimeSettings } from '../graph/session';
import { withModelSession } from '../model/model-session';
import { checkPruneOptions } from '../prune/prune-model';
import { pruneSequentially } from '../prune/sequential';
import type { PruneSpec } from '../prune/spec';
import type { RunControl } from '../progress';
import { checkAllocationFor, prepareAllocation, type AllocationRequest } from './allocation';
import type { Plan } from './plan';

export interface MakePlanOptions extends RunControl {
  model: string;
  spec: PruneSpec;
  allocation: Exclude<AllocationRequest, { kind: 'plan' }>;
  calibration: CalibrationRequest;
  runtime: RuntimeSettings;
}

/**
 * Makes a plan without writing a model: the sequential loop runs as for pruning (each block pruned at
 * its ratios so the next block sees pruned inputs), measuring every targeted linear's block error at
 * a ladder of ratios around the target. BESA chooses from those errors (measured at the uniform
 * target, in its own pass); for every allocation they become the plan's error table, which prices
 * hand edits in the allocation panel.
 */
export async function makePlan(options: MakePlanOptions): Promise<Plan> {
  const { spec, allocation } = options;
  checkPruneOptions(spec, allocation, options.calibration);
  if (spec.nm) throw new PruneLensError('usage', 'a plan allocates unstructured sparsity; N:M is the same in every layer and needs no plan');
  return withModelSession(options.model, options.runtime, async (session) => {
    checkAllocationFor(session.checkpoint.config, allocation, session.checkpoint.dir);
    const calibration = await drawCalibration(session.tokenizer, options.calibration, options, session.checkpoint.config);
    const allocator = await prepareAllocation({ ...session, spec, calibration }, allocation, true, options);
    // The BESA-style search measured its table in its own pass; pruning again would add nothing to the plan.
    if (!allocator.ladder) return allocator.plan({ layers: [] });
    const result = await pruneSequentially({ ...session, spec, calibration, ladder: allocator.ladder, ratios: allocator.ratios }, options);
    return allocator.plan(result);
  });
}
