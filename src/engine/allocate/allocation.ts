import { CalibrationActivations, TapSums } from '../calibrate/activations';
import { LINEAR_INPUT, type TapPoint } from '../graph/decoder-block';
import { BlockRunner } from '../model/block-runner';
import { blockLinears, blockTensorShapes, layerPrefix, LINEARS, storedLinear, type LinearName, type ModelConfig } from '../model/config';
import { PruneLensError } from '../errors';
import { throwIfCancelled, type RunControl } from '../progress';
import { pruneSequentially, type LinearRatios, type PruneContext, type SequentialOptions, type SequentialResult } from '../prune/sequential';
import { isTargeted } from '../prune/spec';
import { allocateByError, ladder, type ErrorCurve } from './besa';
import { owlSparsities, scoresAbove, scoreSum, type OwlParameters } from './owl';
import { linearRatio, linearSizes, planHeader, uniformBlocks, type BlockPlan, type ErrorTable, type Plan } from './plan';
import { readPlan, sealPlan } from './plan-file';

export type AllocationRequest =
  | { kind: 'uniform' }
  | ({ kind: 'owl' } & OwlParameters)
  | { kind: 'besa' }
  | { kind: 'plan'; file: string };

export function allocationNeedsCalibration(request: AllocationRequest): boolean {
  return request.kind === 'owl' || request.kind === 'besa';
}

/** How the sequential loop gets each block's ratios, and how its result becomes a plan. */
export interface Allocator {
  /** Ratios at which the loop is to measure the error table; absent when none is wanted or the plan has it already. */
  ladder?: number[];
  ratios: SequentialOptions['ratios'];
  plan(result: SequentialResult): Plan;
}

/**
 * Turns an allocation request into ratios for the sequential loop. OWL needs a dense pass first;
 * BESA a measuring pass of the loop (its error table), from which it chooses every block's ratios
 * at once; a plan file or uniform is read as is. With `measureErrors`, every kind has the error table
 * that prices hand edits (BESA's is the one it chose from).
 */
/** OWL's, BESA's and a plan's ratios are per dense linear and their tables measure dense MLPs; experts would need their own. */
export function checkAllocationFor(cfg: ModelConfig, request: AllocationRequest | { kind: 'plan' }, where: string): void {
  if (cfg.arch.moe && request.kind !== 'uniform') throw new PruneLensError('usage', `a mixture-of-experts model is pruned with the uniform allocation only, not ${request.kind}`, where);
}

export async function prepareAllocation(ctx: PruneContext, request: AllocationRequest, measureErrors: boolean, control: RunControl): Promise<Allocator> {
  const cfg = ctx.checkpoint.config;
  const { spec } = ctx;
  const sizes = linearSizes(cfg);
  const base = (allocation: Plan['allocation'], parameters: Record<string, number>, blocks: BlockPlan[], outlierRatios?: number[]): Plan => sealPlan({
    format: 'prunelens.plan',
    version: 1,
    model: planHeader(cfg),
    target: spec.sparsity,
    allocation,
    method: spec.method,
    parameters,
    calibration: ctx.calibration
      ? { file: ctx.calibration.file, sha256: ctx.calibration.sha256, seed: ctx.calibration.seed, nsamples: ctx.calibration.nsamples, seqlen: ctx.calibration.seqlen }
      : null,
    blocks,
    statistics: outlierRatios ? { outlierRatios } : {},
  });
  const fromPlan = (plan: Plan, measure = measureErrors): Allocator => ({
    ladder: measure ? ladder(spec.sparsity) : undefined,
    ratios: (layer, linears) => Object.fromEntries(linears.map((l) => [l, linearRatio(plan, layer, l)])),
    plan: (result) => ({ ...plan, statistics: { ...plan.statistics, ...(result.errors ? { errors: result.errors } : {}) } }),
  });
  switch (request.kind) {
    case 'uniform':
      return fromPlan(base('uniform', {}, uniformBlocks(cfg, spec.sparsity)));
    case 'plan':
      return fromPlan(await readPlan(request.file, cfg));
    case 'owl': {
      const outliers = await outlierRatios(ctx, request.M, control);
      const blockSize = LINEARS.reduce((n, l) => n + sizes[l], 0);
      const sparsities = owlSparsities(outliers, spec.sparsity, request.lambda, outliers.map(() => blockSize));
      const blocks = sparsities.map((sparsity, layer) => ({ layer, sparsity }));
      return fromPlan(base('owl', { M: request.M, lambda: request.lambda }, blocks, outliers));
    }
    case 'besa': {
      const table = await measureUniform(ctx, control);
      const blocks = besaRatios(table, sizes, spec.sparsity).map((ratios, layer) => blockOf(layer, ratios, sizes, spec.sparsity));
      // The table it chose from is the plan's table: nothing is left to measure.
      return fromPlan({ ...base('besa', { step: 0.05, span: 0.2 }, blocks), statistics: { errors: table } }, false);
    }
  }
}

/**
 * The BESA-style search's measurements: the sequential loop at the uniform target (each block fed the
 * previous blocks pruned as uniform would prune them), measuring every targeted linear's block output
 * error at each ratio of the ladder. Nothing is written; the search then chooses from the table.
 */
async function measureUniform(ctx: PruneContext, control: RunControl): Promise<ErrorTable> {
  const { sparsity } = ctx.spec;
  const result = await pruneSequentially(
    { ...ctx, ladder: ladder(sparsity), ratios: (_layer, linears) => Object.fromEntries(linears.map((l) => [l, sparsity])) },
    { ...control, onProgress: (e) => control.onProgress?.(e.type === 'stage' ? { ...e, stage: 'search' } : e) },
  );
  return result.errors!;
}

/**
 * One ratio per targeted linear of every block, meeting the model-wide budget exactly with the least
 * summed block error. Each block's errors are divided by the squared norm of its dense output (as the
 * estimate prices them), so blocks are compared by relative error: raw errors grow with the residual
 * stream and would push the pruning into the first blocks.
 */
export function besaRatios(table: ErrorTable, sizes: Record<LinearName, number>, target: number): LinearRatios[] {
  const entries: { layer: number; linear: LinearName; curve: ErrorCurve }[] = [];
  table.errors.forEach((measured, layer) => {
    for (const linear of LINEARS) {
      const errors = measured[linear];
      if (errors) entries.push({ layer, linear, curve: { size: sizes[linear], ratios: table.ratios, errors: errors.map((e) => e / table.outputNorms[layer]!) } });
    }
  });
  const chosen = allocateByError(entries.map((e) => e.curve), target);
  const ratios: LinearRatios[] = table.errors.map(() => ({}));
  entries.forEach(({ layer, linear }, i) => (ratios[layer]![linear] = chosen[i]!));
  return ratios;
}

/** A block's plan entry from per-linear ratios; linears are listed only where they differ. */
function blockOf(layer: number, ratios: LinearRatios, sizes: Record<LinearName, number>, target: number): BlockPlan {
  const given = LINEARS.filter((l) => ratios[l] !== undefined);
  // A block with nothing targeted prunes nothing; it reads as the target, as in a uniform plan.
  if (given.length === 0) return { layer, sparsity: target };
  const total = given.reduce((n, l) => n + sizes[l], 0);
  const sparsity = given.reduce((n, l) => n + sizes[l] * ratios[l]!, 0) / total;
  const uniform = given.every((l) => Math.abs(ratios[l]! - sparsity) < 1e-9);
  return uniform ? { layer, sparsity } : { layer, sparsity, linears: ratios };
}

/**
 * OWL's statistic: on the dense model (each block fed the dense previous block's output), the share
 * of Wanda scores |W|·sqrt(‖X_j‖²) of all of a block's targeted linears that exceed M times their mean.
 */
async function outlierRatios(ctx: PruneContext, M: number, control: RunControl): Promise<number[]> {
  const { checkpoint, runner, ops, spec } = ctx;
  const cfg = checkpoint.config;
  const shapes = blockTensorShapes(cfg);
  const points: TapPoint[] = ['attn_in', 'o_in', 'mlp_in', 'down_in'];
  const tapRunner = await BlockRunner.create(cfg, ctx.runtime, points.map((point) => ({ point, reduce: 'sumsq' as const })));
  try {
    const activations = await CalibrationActivations.embed(runner, ctx.calibration!);
    const ratios: number[] = [];
    for (let layer = 0; layer < cfg.numLayers; layer++) {
      throwIfCancelled(control.signal);
      const weights = await checkpoint.readBlock(layer);
      const sums = new TapSums();
      await activations.forEach(tapRunner, layer, weights, control.signal, ([out, ...taps], offset) => {
        activations.hidden.set(out!, offset);
        taps.forEach((tap, i) => sums.add(points[i]!, tap));
      });
      const stats = sums.statistics('sumsq', ctx.calibration!.nsamples);
      const linears = blockLinears(cfg).filter((l) => isTargeted(spec, `${layerPrefix(cfg, layer)}${storedLinear(cfg, l)}.weight`));
      const args = (l: LinearName) => {
        const [rows, cols] = shapes.get(`${l}.weight`)!;
        return [weights.get(`${l}.weight`)!, rows!, cols!, stats.get(LINEAR_INPUT[l])!] as const;
      };
      let sum = 0;
      let count = 0;
      for (const l of linears) {
        sum += await scoreSum(ops, ...args(l));
        count += shapes.get(`${l}.weight`)!.reduce((a, b) => a * b, 1);
      }
      let outliers = 0;
      for (const l of linears) outliers += await scoresAbove(ops, ...args(l), (M * sum) / count);
      ratios.push(outliers / count);
      control.onProgress?.({ type: 'stage', stage: 'outliers', done: layer + 1, total: cfg.numLayers, detail: `block ${layer + 1}/${cfg.numLayers}` });
    }
    return ratios;
  } finally {
    await tapRunner.release();
  }
}
