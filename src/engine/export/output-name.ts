import { createHash } from 'node:crypto';
import * as path from 'node:path';
import type { NM } from '../prune/spec';
import type { StructuredTarget } from '../structured/select';
import type { ExplicitRemoval } from '../structured/structured-prune';

/*
 * Default output folder names, for the CLI and the extension alike: named for what was done, so that
 * two runs that prune differently never share a name. Settings that only change how well the same
 * thing is done (calibration text, seed, window counts) are in prunelens.json, not in the name; a
 * second run with other such settings finds the folder taken and must be told to replace it.
 */

/** What the guided flow asks for: a fraction of each matrix, or N of every M consecutive weights. */
export type PruneTarget = { kind: 'sparsity'; sparsity: number } | { kind: 'nm'; nm: NM };

/** Which linears were pruned, when not all of them (--include / --exclude globs). */
export interface Selection {
  include?: readonly string[];
  exclude?: readonly string[];
}

/** The model folder of a folder, a config.json, a safetensors file or a shard index. */
export function modelFolderOf(location: string): string {
  return path.resolve(location.endsWith('.json') || location.endsWith('.safetensors') ? path.dirname(location) : location);
}

/**
 * `stories260K-wanda-50`, `stories260K-sparsegpt-2of4`, `stories260K-wanda-owl-70`,
 * `stories260K-wanda-50-only-mlp-3f2a9c`. `allocation` is uniform, owl, besa, or `plan-<id>` for a
 * plan file (see planLabel).
 */
export function pruneOutputName(model: string, method: string, target: PruneTarget, allocation: string, selection: Selection = {}): string {
  const amount = target.kind === 'nm' ? `${target.nm.n}of${target.nm.m}` : `${Math.round(target.sparsity * 100)}`;
  return `${path.basename(modelFolderOf(model))}-${method}${allocation === 'uniform' ? '' : `-${allocation}`}-${amount}${selectionSuffix(selection)}`;
}

/** A plan file's part of a name: its ratios' fingerprint (Plan.blocksSha256's hash), so two different plans differ. */
export function planLabel(blocksFingerprint: string): string {
  return `plan-${blocksFingerprint.slice(0, 6)}`;
}

/**
 * `-only-mlp-3f2a9c`, `-except-layers.0-91bd04`: a readable hint of the globs (model.layers. and
 * wildcards dropped) and a hash of their exact text, since different globs can read alike.
 */
function selectionSuffix({ include = [], exclude = [] }: Selection): string {
  if (include.length === 0 && exclude.length === 0) return '';
  const hint = (globs: readonly string[]): string =>
    globs
      .map((g) => g.replace(/^model\.layers\./, '').replace(/\*+/g, '').replace(/[^A-Za-z0-9_]+/g, '.').replace(/^\.+|\.+$/g, ''))
      .filter(Boolean)
      .join('+');
  const parts = [include.length > 0 ? `only-${hint(include) || 'some'}` : '', exclude.length > 0 ? `except-${hint(exclude) || 'some'}` : ''].filter(Boolean);
  const hash = createHash('sha256').update(JSON.stringify([include, exclude])).digest('hex').slice(0, 6);
  return `-${parts.join('-').slice(0, 48)}-${hash}`;
}

/** `stories260K-heads-channels-20`: what structured pruning removed, and how much. */
export function structuredOutputName(model: string, target: Pick<StructuredTarget, 'heads' | 'channels' | 'layers' | 'ratio'>): string {
  const parts = [target.heads && 'heads', target.channels && 'channels', target.layers && 'layers'].filter(Boolean).join('-');
  return `${path.basename(modelFolderOf(model))}-${parts}-${Math.round(target.ratio * 100)}`;
}

/** `mixtral-experts-25`: a fraction of each layer's experts removed (the metric is recorded in prunelens.json). */
export function expertsOutputName(model: string, ratio: number): string {
  return `${path.basename(modelFolderOf(model))}-experts-${Math.round(ratio * 100)}`;
}

/** `mixtral-experts-removed-5-3f2a9c`: an explicit expert list (--remove "0.e3,..."), its count and a hash of the list. */
export function expertListOutputName(model: string, list: string): string {
  const count = list.split(',').filter(Boolean).length;
  return `${path.basename(modelFolderOf(model))}-experts-removed-${count}-${createHash('sha256').update(list).digest('hex').slice(0, 6)}`;
}

/** `stories260K-removed-3.h2`, `stories260K-removed-L4`: explicit removals, in parseRemoval's notation. */
export function removalOutputName(model: string, removal: ExplicitRemoval): string {
  const items = [...removal.heads.map(([l, h]) => `${l}.h${h}`), ...removal.layers.map((l) => `L${l}`)];
  return `${path.basename(modelFolderOf(model))}-removed-${items.join(',')}`;
}
