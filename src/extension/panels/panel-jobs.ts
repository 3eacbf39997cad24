/**
 * Every engine job the allocation panel runs, one function each, all in the engine process (never on
 * the extension host's thread).
 */
import type { MakePlanOptions } from '../../engine/allocate/make-plan';
import type { Plan } from '../../engine/allocate/plan';
import type { EvaluateModelOptions, EvaluateModelResult } from '../../engine/evaluate/evaluate-model';
import type { PruneRecord } from '../../engine/export/record';
import type { RunControl } from '../../engine/progress';
import type { PruneModelOptions } from '../../engine/prune/prune-model';
import { engineJobs } from '../worker/engine';

/** One allocation's plan (uniform, OWL or the BESA-style search) with its error table. */
export function makePlans(options: MakePlanOptions): Promise<Plan> {
  const [data, control] = split(options);
  return engineJobs.run('plan', data, control);
}

/** The dense model's perplexity and per-token losses, made once per (model, text, seqlen) and cached. */
export function evaluateDense(options: EvaluateModelOptions): Promise<EvaluateModelResult> {
  const [data, control] = split(options);
  return engineJobs.run('evaluate', data, control);
}

/** Prunes by a plan file into a new folder (the dense evaluation given, not repeated). */
export function applyPlan(options: PruneModelOptions): Promise<PruneRecord> {
  const [data, control] = split(options);
  return engineJobs.run('prune', data, control);
}

/** What crosses to the engine process, and what the host keeps (the signal and the callbacks). */
function split<T extends RunControl>(options: T): [Omit<T, keyof RunControl>, RunControl] {
  const { signal, onProgress, log, ...data } = options;
  return [data, { signal, onProgress, log }];
}
