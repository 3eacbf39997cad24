/**
 * Every engine job the allocation panel runs, one function each: the one place to change when engine
 * work moves off the extension host's thread.
 */
import { makePlan, type MakePlanOptions } from '../../engine/allocate/make-plan';
import type { Plan } from '../../engine/allocate/plan';
import { evaluateModel, type EvaluateModelOptions } from '../../engine/evaluate/evaluate-model';
import type { PerplexityResult } from '../../engine/evaluate/perplexity';
import type { PruneRecord } from '../../engine/export/record';
import { pruneModel, type PruneModelOptions } from '../../engine/prune/prune-model';

/** One allocation's plan (uniform, OWL or the BESA-style search) with its error table. */
export function makePlans(options: MakePlanOptions): Promise<Plan> {
  return makePlan(options);
}

/** The dense model's perplexity and per-token losses, made once per (model, text, seqlen) and cached. */
export function evaluateDense(options: EvaluateModelOptions): Promise<PerplexityResult> {
  return evaluateModel(options);
}

/** Prunes by a plan file into a new folder (the dense evaluation given, not repeated). */
export function applyPlan(options: PruneModelOptions): Promise<PruneRecord> {
  return pruneModel(options);
}
