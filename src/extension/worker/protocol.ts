import type { Plan } from '../../engine/allocate/plan';
import type { MakePlanOptions } from '../../engine/allocate/make-plan';
import type { ErrorKind } from '../../engine/errors';
import type { ExpertPruneOptions, ExpertRecord } from '../../engine/experts/expert-prune';
import type { expertStatsOf, ExpertStats } from '../../engine/experts/expert-stats';
import type { EvaluateModelOptions, EvaluateModelResult } from '../../engine/evaluate/evaluate-model';
import type { PruneRecord } from '../../engine/export/record';
import type { ExportRunGgufOptions, ExportRunGgufResult } from '../../engine/llamacpp/export-run-gguf';
import type { TryRunOptions, TryRunResult } from '../../engine/llamacpp/try-run';
import type { PruneModelOptions } from '../../engine/prune/prune-model';
import type { EngineEvent, RunControl } from '../../engine/progress';
import type { StructuredScores } from '../../engine/structured/scores';
import type { scoreModel, StructuredPruneOptions, StructuredRecord } from '../../engine/structured/structured-prune';

/** An engine call's options without what the host keeps for itself (signal, progress callback, logger). */
type Data<T> = Omit<T, keyof RunControl>;

/** Every job the engine process runs: its options and its result, both plain data that crosses the process boundary. */
export interface EngineJobTypes {
  prune: { options: Data<PruneModelOptions>; result: PruneRecord };
  structured: { options: Data<StructuredPruneOptions>; result: StructuredRecord };
  evaluate: { options: Data<EvaluateModelOptions>; result: EvaluateModelResult };
  scores: { options: Data<Parameters<typeof scoreModel>[0]>; result: StructuredScores };
  plan: { options: Data<MakePlanOptions>; result: Plan };
  gguf: { options: Data<ExportRunGgufOptions>; result: ExportRunGgufResult };
  try: { options: Data<TryRunOptions>; result: TryRunResult };
  expertStats: { options: Data<Parameters<typeof expertStatsOf>[0]>; result: ExpertStats };
  experts: { options: Data<ExpertPruneOptions>; result: ExpertRecord };
}

export type EngineJobKind = keyof EngineJobTypes;
export type JobOptions<K extends EngineJobKind> = EngineJobTypes[K]['options'];
export type JobResult<K extends EngineJobKind> = EngineJobTypes[K]['result'];

/** A PruneLensError as it crosses the boundary; `message` is the text without the `where: ` prefix. */
export interface WireError {
  kind: ErrorKind | 'internal';
  message: string;
  where?: string;
}

export type ToEngine = { type: 'run'; kind: EngineJobKind; options: unknown } | { type: 'cancel' };

export type FromEngine =
  | { type: 'progress'; event: EngineEvent }
  | { type: 'log'; level: 'info' | 'warn'; message: string }
  | { type: 'result'; value: unknown }
  | { type: 'error'; error: WireError };
