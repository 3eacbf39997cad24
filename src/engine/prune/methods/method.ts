import type { OpRegistry } from '../../graph/op-registry';
import type { Logger } from '../../progress';
import type { NM, PruneSettings } from '../spec';
import type { Method, Update } from './catalog';

/**
 * What a method reads about a linear's inputs X (its calibration activations, n windows), reduced
 * inside ORT by the block's taps: nothing; `norms`, each input column's (1/n) Σ ||X_j||²; or `gram`,
 * G = (2/n) Σ XᵀX [cols, cols], SparseGPT's Hessian. Ordered: a later one can stand in for an earlier.
 */
export const STATISTICS = ['none', 'norms', 'gram'] as const;
export type Statistic = (typeof STATISTICS)[number];

/** One linear to prune: its dense weights, the statistic the method asked for, and the target. */
export interface LinearTask {
  ops: OpRegistry;
  /** Dense weights [rows, cols], row-major: one row per output. Never modified. */
  weight: Float32Array;
  rows: number;
  cols: number;
  /** The method's statistic ([cols] for norms, [cols, cols] for gram); absent for `none`. */
  stat?: Float32Array;
  /** Fraction of the matrix to zero; with `nm`, n/m. */
  sparsity: number;
  nm?: NM;
  settings: PruneSettings;
  /** The tensor's name, for messages. */
  where: string;
  log?: Logger;
}

/**
 * The pruned weights and the layer loss they leave: with G, ½ tr(ΔW G ΔWᵀ), the squared change of the
 * layer's output per calibration window (what sparsegpt.py prints as `error`); with norms only, its
 * diagonal part Σ ΔW_ij² (1/n)||X_j||²; with no data, ||ΔW||².
 */
export interface Pruned {
  weight: Float32Array;
  loss: number;
}

/** A pruning method: one file each (./<name>.ts), listed in ./index.ts. */
export interface PruneMethod<M extends Method = Method> {
  name: M;
  statistic: Statistic;
  /** The wizard's quick-pick item: what the method needs and costs, and what it does. */
  description: string;
  detail: string;
  /** The settings of the spec it reads; the report lists them beside it. */
  settings: readonly (keyof PruneSettings)[];
  /** Whether a weight update (--update) may follow its mask; a method that fits its own weights refuses one. */
  acceptsUpdate: boolean;
  /** Refuses a spec it cannot run, before any work. */
  validate?(spec: { nm?: NM } & PruneSettings): void;
  prune(task: LinearTask): Promise<Pruned>;
}

/** A weight update: re-fits the kept weights of a mask any method chose (`pruned`'s zeros). */
export interface WeightUpdate<U extends Update = Update> {
  name: U;
  statistic: Statistic;
  /** What it does, for the CLI's help. */
  help: string;
  settings: readonly (keyof PruneSettings)[];
  update(task: LinearTask, pruned: Float32Array): Promise<Pruned>;
}
