import type { ErrorTable } from '../allocate/plan';
import { CalibrationActivations, TapSums } from '../calibrate/activations';
import type { CalibrationSet } from '../calibrate/calibration-data';
import { LINEAR_INPUT, type TapPoint, type TapReduce } from '../graph/decoder-block';
import type { OpRegistry } from '../graph/op-registry';
import { squaredDistance } from '../graph/reductions';
import type { RuntimeSettings } from '../graph/session';
import type { Checkpoint } from '../io/checkpoint';
import type { OutputFolder } from '../export/output-folder';
import { BlockRunner } from '../model/block-runner';
import { blockLinears, blockTensorShapes, layerPrefix, storedLinear, type LinearName } from '../model/config';
import { toStoredBlock } from '../model/families/fused';
import { EXPERT_TAP_POINTS, expertLinearTasks, expertSlice, tooFewTokens } from '../experts/expert-linears';
import type { DecoderRunner } from '../model/decoder-runner';
import { throwIfCancelled, type RunControl } from '../progress';
import { methodOf, statisticOf, updateOf } from './methods';
import type { LinearTask, Pruned, Statistic } from './methods/method';
import { isTargeted, type PruneSpec } from './spec';

/** How the block's taps reduce a linear's inputs to each statistic, inside ORT. */
const TAP_REDUCE: Record<Statistic, TapReduce | undefined> = { none: undefined, norms: 'sumsq', gram: 'gram' };

const TAP_POINTS: TapPoint[] = ['attn_in', 'o_in', 'mlp_in', 'down_in'];

/**
 * Block errors for the ladder are measured on the first windows only: a ladder costs one block run
 * per linear and ratio, and 32 windows rank the candidates as all 128 do at a quarter of the time.
 */
export const ERROR_WINDOWS = 32;

export type LinearRatios = Partial<Record<LinearName, number>>;

/** What pruning one linear cost and left, as llm-compressor's compression logger records it. */
export interface LinearRecord {
  /** The method's (or update's) layer loss: see Pruned in methods/method.ts. */
  loss: number;
  /** Milliseconds the method (and update) took on this linear. */
  ms: number;
  /** Resident memory when the linear was done, in MiB. */
  rssMb: number;
}

export interface LayerRecord {
  layer: number;
  seconds: number;
  /** Resident memory when the block was done, in MiB. */
  rssMb: number;
  ratios: LinearRatios;
  /** Each pruned linear's loss, time and memory (absent in records made before they were kept). */
  linears?: Partial<Record<LinearName, LinearRecord>>;
}

/** An open model with what to prune and the calibration windows: what allocation and the loop both read. */
export interface PruneContext {
  checkpoint: Checkpoint;
  runner: DecoderRunner;
  ops: OpRegistry;
  runtime: RuntimeSettings;
  spec: PruneSpec;
  calibration?: CalibrationSet;
}

export interface SequentialOptions extends PruneContext {
  /** Where pruned blocks go; a plan-only pass writes nothing. */
  output?: OutputFolder;
  /** Ratios at which to measure each linear's block error (BESA's search, a plan's estimate table). */
  ladder?: number[];
  /** The ratio of each targeted linear of a block. */
  ratios(layer: number, linears: LinearName[]): LinearRatios;
  /** Where an interrupted run got to: the blocks it finished, and the hidden states entering the next. */
  resume?: BlockProgress;
  /** Called after each block is written, with what a resumed run needs; the loop waits for it. */
  onBlockDone?(progress: BlockProgress): Promise<void>;
}

/** The loop's state between blocks: everything a resumed run needs to continue bit for bit. */
export interface BlockProgress {
  layers: LayerRecord[];
  errors?: ErrorTable;
  /** The calibration hidden states entering block `layers.length` (absent without calibration or after the last block). */
  hidden?: Float32Array;
}

export interface SequentialResult {
  layers: LayerRecord[];
  errors?: ErrorTable;
}

/**
 * The sequential layer loop of the references (SparseGPT's llama.py, Wanda's prune_wanda): the
 * calibration windows are embedded once, then for each decoder block in turn the block runs on them
 * with taps to collect its linears' input statistics, its targeted linears are pruned, the block is
 * written out, and the *pruned* block runs again to give the next block its inputs. Memory is one
 * block's weights plus the calibration hidden states and statistics (and, when errors are measured,
 * the dense block output).
 */
export async function pruneSequentially(options: SequentialOptions, control: RunControl): Promise<SequentialResult> {
  const { checkpoint, runner, spec, calibration, output, ladder } = options;
  const cfg = checkpoint.config;
  const reduce = TAP_REDUCE[statisticOf(spec)];
  const moe = cfg.arch.moe;
  // MoE models also tap each expert's inputs over its routed tokens, and the routing counts.
  const points = moe ? [...TAP_POINTS, ...EXPERT_TAP_POINTS] : TAP_POINTS;
  const statsRunner = calibration && reduce ? await BlockRunner.create(cfg, options.runtime, points.map((point) => ({ point, reduce: point === 'expert_stats' ? 'sum' : reduce }))) : undefined;
  try {
    const activations = calibration ? await CalibrationActivations.embed(runner, calibration) : undefined;
    const { resume } = options;
    if (activations && resume?.hidden) activations.hidden.set(resume.hidden);
    const errors: ErrorTable | undefined = ladder && activations ? { ratios: ladder, errors: [...(resume?.errors?.errors ?? [])], outputNorms: [...(resume?.errors?.outputNorms ?? [])], windows: 0 } : undefined;
    const errorWindows = Math.min(ERROR_WINDOWS, calibration?.nsamples ?? 0);
    if (errors) errors.windows = errorWindows;
    const layers: LayerRecord[] = [...(resume?.layers ?? [])];
    for (let layer = layers.length; layer < cfg.numLayers; layer++) {
      throwIfCancelled(control.signal);
      const start = performance.now();
      const prefix = layerPrefix(cfg, layer);
      const weights = await checkpoint.readBlock(layer);
      const shapes = blockTensorShapes(cfg, layer);
      const linears = blockLinears(cfg).filter((l) => shapes.has(`${l}.weight`) && isTargeted(spec, `${prefix}${storedLinear(cfg, l)}.weight`));
      const experts = moe?.sparse[layer] ? expertLinearTasks(moe, cfg.hiddenSize).filter((e) => isTargeted(spec, `${prefix}${e.name}`)) : [];
      let stats: Map<TapPoint, Float32Array> | undefined;
      /** Tokens routed to each expert of this layer over the calibration windows. */
      let routed: Float64Array | undefined;
      const prune = (linear: LinearName, ratio: number): Promise<Pruned> => {
        const [rows, cols] = shapes.get(`${linear}.weight`)!;
        return pruneLinear(options, weights.get(`${linear}.weight`)!, rows!, cols!, ratio, stats?.get(LINEAR_INPUT[linear]), `${prefix}${linear}.weight`, control);
      };

      // One pass of the dense block gives the statistics and, when errors are measured, the reference output.
      let dense: Float32Array | undefined;
      if (activations && (statsRunner || errors)) {
        const sums = new TapSums();
        if (errors) dense = new Float32Array(activations.hidden.length);
        if (statsRunner && moe?.sparse[layer]) routed = new Float64Array(moe.experts);
        await activations.forEach(statsRunner ?? runner.block, layer, weights, control.signal, ([out, ...taps], offset) => {
          dense?.set(out!, offset);
          taps.forEach((tap, i) => {
            if (points[i] !== 'expert_stats') sums.add(points[i]!, tap);
            else if (routed) for (let j = 0; j < routed.length; j++) routed[j]! += tap[j]!;
          });
        });
        if (statsRunner) stats = sums.statistics(reduce!, calibration!.nsamples);
      }

      if (errors && dense && activations) {
        const measured: Partial<Record<LinearName, number[]>> = {};
        for (const linear of linears) {
          const row: number[] = [];
          for (const ratio of errors.ratios) {
            const trial = new Map(weights).set(`${linear}.weight`, (await prune(linear, ratio)).weight);
            let sum = 0;
            await activations.forEach(runner.block, layer, trial, control.signal, async ([out], offset, length) => {
              sum += await squaredDistance(options.ops, out!, dense!.subarray(offset, offset + length));
            }, errorWindows);
            row.push(sum);
          }
          measured[linear] = row;
        }
        errors.errors.push(measured as Record<LinearName, number[]>);
        const measuredLength = errorWindows * calibration!.seqlen * cfg.hiddenSize;
        errors.outputNorms.push(await squaredDistance(options.ops, dense.subarray(0, measuredLength), new Float32Array(measuredLength)));
      }

      const ratios = options.ratios(layer, experts.length > 0 ? [...new Set([...linears, ...experts.map((e) => e.ratioOf)])] : linears);
      const linearRecords: Partial<Record<LinearName, LinearRecord>> = {};
      for (const linear of linears) {
        throwIfCancelled(control.signal);
        const ratio = ratios[linear] ?? 0;
        if (ratio > 0 || spec.nm) {
          const linearStart = performance.now();
          const { weight, loss } = await prune(linear, ratio);
          weights.set(`${linear}.weight`, weight);
          linearRecords[linear] = { loss, ms: performance.now() - linearStart, rssMb: process.memoryUsage().rss / 2 ** 20 };
        }
      }
      for (const task of experts) {
        throwIfCancelled(control.signal);
        const ratio = ratios[task.ratioOf] ?? 0;
        if (ratio === 0 && !spec.nm) continue;
        const linearStart = performance.now();
        const stat = stats?.get(task.point);
        const starved = routed !== undefined && tooFewTokens(routed[task.expert]!, task);
        if (starved) control.log?.warn(`${prefix}${task.name}: expert ${task.expert} was routed ${routed![task.expert]} calibration tokens, fewer than the linear's ${task.cols} inputs; pruned by magnitude`);
        const expertStat = stat && !starved ? expertSlice(stat, moe!.experts, task.expert) : undefined;
        const { weight, loss } = await pruneLinear(starved ? { ...options, spec: { ...spec, method: 'magnitude', update: undefined } } : options, weights.get(task.name)!, task.rows, task.cols, ratio, expertStat, `${prefix}${task.name}`, control);
        weights.set(task.name, weight);
        (linearRecords as Record<string, LinearRecord>)[task.name.slice(0, -'.weight'.length)] = { loss, ms: performance.now() - linearStart, rssMb: process.memoryUsage().rss / 2 ** 20 };
      }
      if (output) for (const [name, values] of toStoredBlock(cfg, weights, shapes)) await output.write(prefix + name, values);
      if (activations && layer < cfg.numLayers - 1) await activations.advance(runner.block, layer, weights, control.signal);
      layers.push({ layer, seconds: (performance.now() - start) / 1000, rssMb: process.memoryUsage().rss / 2 ** 20, ratios, linears: linearRecords });
      // Written and run: the block's arrays (dense and pruned) are read into again for the next block.
      checkpoint.recycle(weights.values());
      await options.onBlockDone?.({ layers, errors, hidden: activations && layer < cfg.numLayers - 1 ? activations.hidden : undefined });
      control.onProgress?.({ type: 'stage', stage: 'prune', done: layer + 1, total: cfg.numLayers, detail: `block ${layer + 1}/${cfg.numLayers}` });
    }
    return { layers, errors };
  } finally {
    await statsRunner?.release();
  }
}

/** The method's mask and weights for one linear, then the spec's update if it has one. */
async function pruneLinear(
  options: SequentialOptions,
  weight: Float32Array,
  rows: number,
  cols: number,
  sparsity: number,
  stat: Float32Array | undefined,
  where: string,
  control: RunControl,
): Promise<Pruned> {
  const { ops, spec } = options;
  const collected = statisticOf(spec);
  const task = (statistic: Statistic): LinearTask => ({
    ops,
    weight,
    rows,
    cols,
    stat: statistic === 'none' ? undefined : statistic === collected ? stat : halfDiagonal(stat!, cols),
    sparsity,
    nm: spec.nm,
    settings: { blocksize: spec.blocksize, percdamp: spec.percdamp },
    where,
    log: control.log,
  });
  const method = methodOf(spec.method);
  const pruned = await method.prune(task(method.statistic));
  if (!spec.update) return pruned;
  const update = updateOf(spec.update);
  return update.update(task(update.statistic), pruned.weight);
}

/** The input norms (1/n) Σ ||X_j||² from G = (2/n) Σ XᵀX: half its diagonal, so one Gram tap serves both. */
function halfDiagonal(gram: Float32Array, cols: number): Float32Array {
  return Float32Array.from({ length: cols }, (_, j) => gram[j * cols + j]! / 2);
}
