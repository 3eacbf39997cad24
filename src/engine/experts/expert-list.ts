import { PruneLensError } from '../errors';
import { parameterCount, type ModelConfig } from '../model/config';
import type { MoeSpec } from '../model/families/moe';
import type { ExpertCost } from './expert-cost';
import { moeOf } from './expert-stats';

/** Source expert indices per sparse layer, ascending: a person's choice (`--remove "0.e3,1.e2"`, the heat map). */
export type ExpertLists = Map<number, number[]>;

/** Parses "0.e3,0.e5,1.e2" (expert 3 of layer 0...), the same family as the heads' "3.h2". */
export function parseExpertList(text: string): [layer: number, expert: number][] {
  const items = text.split(',').map((s) => s.trim()).filter(Boolean);
  if (items.length === 0) throw new PruneLensError('usage', '--remove names no expert; write them as "0.e3,0.e5,1.e2" (expert 3 of layer 0...)');
  return items.map((item) => {
    const match = /^(\d+)\.e(\d+)$/.exec(item);
    if (!match) throw new PruneLensError('usage', `"${item}" is not an expert; write experts as "0.e3" (expert 3 of layer 0)`);
    return [Number(match[1]), Number(match[2])];
  });
}

/**
 * The named experts per layer, refused before any work where a layer does not exist or has no
 * experts (a Qwen dense layer), an expert does not exist, one is named twice, or a layer would keep
 * fewer experts than each token is routed to (its router would have to pick a removed one).
 */
export function checkExpertList(cfg: ModelConfig, pairs: readonly [number, number][], where: string): ExpertLists {
  const moe = moeOf(cfg, where);
  const lists: ExpertLists = new Map();
  for (const [layer, expert] of pairs) {
    const name = `${layer}.e${expert}`;
    if (layer >= cfg.numLayers) throw new PruneLensError('usage', `${name}: layer ${layer} does not exist; the model has layers 0-${cfg.numLayers - 1}`, where);
    if (!moe.sparse[layer]) throw new PruneLensError('usage', `${name}: layer ${layer} has a dense MLP (no experts); the layers with experts are ${sparseLayers(moe.sparse)}`, where);
    if (expert >= moe.experts) throw new PruneLensError('usage', `${name}: expert ${expert} does not exist; layers have experts 0-${moe.experts - 1}`, where);
    const list = lists.get(layer) ?? [];
    if (list.includes(expert)) throw new PruneLensError('usage', `${name} is named twice`, where);
    lists.set(layer, [...list, expert]);
  }
  for (const [layer, list] of lists) {
    const kept = moe.experts - list.length;
    if (kept < moe.topK) throw new PruneLensError('usage', `layer ${layer} would keep ${kept} of ${moe.experts} experts, fewer than the ${moe.topK} each token is routed to; remove at most ${moe.experts - moe.topK} there`, where);
    list.sort((a, b) => a - b);
  }
  return new Map([...lists].sort((a, b) => a[0] - b[0]));
}

function sparseLayers(sparse: readonly boolean[]): string {
  return sparse.flatMap((s, l) => (s ? [l] : [])).join(', ');
}

/** What a list becomes: truly removed (renumbered away) and masked (kept in place, never routed to). */
export interface ExpertSplit {
  removed: ExpertLists;
  masked: ExpertLists;
  /** Experts each sparse layer keeps in the written config (masked ones included). */
  kept: number;
}

/** How many experts every sparse layer loses: the fewest any names (none where a sparse layer is not named). */
export function commonCount(moe: MoeSpec, lists: ExpertLists): number {
  return Math.min(...moe.sparse.flatMap((s, l) => (s ? [lists.get(l)?.length ?? 0] : [])));
}

/**
 * A standard config.json has one expert count, so only the count every sparse layer loses can be cut
 * out: each layer's lowest-scoring named experts (ties to the lower index); the rest it names are
 * masked. A sparse layer the list does not name loses none, so then every named expert is masked.
 * `scores` (per sparse layer, per expert) are needed only where counts differ.
 */
export function splitExpertList(cfg: ModelConfig, lists: ExpertLists, scores: ((layer: number) => number[]) | undefined): ExpertSplit {
  const moe = moeOf(cfg, 'config.json');
  const sparse = moe.sparse.flatMap((s, l) => (s ? [l] : []));
  const common = commonCount(moe, lists);
  const removed: ExpertLists = new Map();
  const masked: ExpertLists = new Map();
  for (const layer of sparse) {
    const list = lists.get(layer) ?? [];
    if (list.length === common) {
      removed.set(layer, list);
      continue;
    }
    if (!scores) throw new Error('unequal expert lists need scores to choose which experts are cut out');
    const score = scores(layer);
    const order = [...list].sort((a, b) => score[a]! - score[b]! || a - b);
    removed.set(layer, order.slice(0, common).sort((a, b) => a - b));
    masked.set(layer, order.slice(common).sort((a, b) => a - b));
  }
  return { removed, masked, kept: moe.experts - common };
}

/** The same lists written back as "0.e3,0.e5,1.e2". */
export function formatExpertList(lists: ExpertLists | Record<string, number[]>): string {
  const entries = lists instanceof Map ? [...lists] : Object.entries(lists).map(([l, e]) => [Number(l), e] as const);
  return entries.flatMap(([l, experts]) => experts.map((e) => `${l}.e${e}`)).join(',');
}

/**
 * The cost of removing `lists`: only the count every sparse layer loses is cut out (an expert's three
 * linears and its router row); masked experts keep their parameters. Bytes at the checkpoint's dtype.
 */
export function expertRemovalCost(cfg: ModelConfig, bytesPerParameter: number, lists: ExpertLists): ExpertCost {
  const moe = moeOf(cfg, 'config.json');
  const sparse = moe.sparse.flatMap((s, l) => (s ? [l] : []));
  const common = commonCount(moe, lists);
  const perExpert = 3 * moe.expertWidth * cfg.hiddenSize + cfg.hiddenSize;
  const parametersRemoved = common * perExpert * sparse.length;
  return {
    removedPerLayer: common,
    parametersRemoved,
    bytesRemoved: parametersRemoved * bytesPerParameter,
    fraction: parametersRemoved / parameterCount(cfg),
    left: Object.fromEntries(sparse.map((l) => [String(l), moe.experts - (lists.get(l)?.length ?? 0)])),
    masked: Object.fromEntries(sparse.flatMap((l) => ((lists.get(l)?.length ?? 0) > common ? [[String(l), lists.get(l)!.length - common]] : []))),
  };
}
