import { PruneLensError } from '../errors';
import { PythonRandom } from '../calibrate/python-random';
import { parameterCount, type ModelConfig } from '../model/config';
import type { StructuredScores } from './scores';
import type { BlockKeep } from './shrink';

export const HEAD_METRICS = ['output', 'similarity', 'random'] as const;
export const CHANNEL_METRICS = ['flap', 'wanda-sp', 'random'] as const;
export const LAYER_METRICS = ['bi', 'ppl', 'random'] as const;

export interface StructuredTarget {
  heads: boolean;
  channels: boolean;
  layers: boolean;
  /** Fraction of all parameters (embeddings included) to remove. */
  ratio: number;
  metrics: { heads: (typeof HEAD_METRICS)[number]; channels: (typeof CHANNEL_METRICS)[number]; layers: (typeof LAYER_METRICS)[number] };
  /** Seeds the random metric. */
  seed: number;
}

/** What removal keeps of the model. */
export interface Selection {
  /** Source layers kept, in order; they are renumbered 0.. in the output. */
  layers: number[];
  /** Per kept source layer. */
  keep: Map<number, BlockKeep>;
  kvHeads: number;
  channels: number;
}

/** Parameters a key/value group (with its query heads) and an MLP channel hold in one block. */
export function unitSizes(cfg: ModelConfig): { group: number; channel: number; block: number } {
  const { hiddenSize: d, headDim: hd } = cfg;
  const queries = cfg.numHeads / cfg.numKvHeads;
  const bias = (name: string) => (cfg.biasedLinears.has(name as never) ? 1 : 0);
  const group = queries * hd * (d + bias('self_attn.q_proj')) + hd * (2 * d + bias('self_attn.k_proj') + bias('self_attn.v_proj')) + queries * hd * d;
  const channel = (cfg.arch.gated ? 3 * d + bias('mlp.gate_proj') : 2 * d) + bias('mlp.up_proj');
  const block = parameterCount({ ...cfg, numLayers: 1 }) - parameterCount({ ...cfg, numLayers: 0 });
  return { group, channel, block };
}

/**
 * Chooses what to remove for a parameter ratio, the same amount in every layer so the exported
 * config.json stays a standard one: whole blocks (the fewest that reach the ratio), or per layer the
 * same number of key/value groups (each with its query heads) and of MLP channels, lowest-scoring
 * first. With both heads and channels, heads take the share of the ratio closest to their share of
 * the block, and channels make up the rest exactly.
 */
export function selectRemoval(cfg: ModelConfig, scores: StructuredScores | undefined, target: StructuredTarget): Selection {
  const { group, channel, block } = unitSizes(cfg);
  const remove = target.ratio * parameterCount(cfg);
  const L = cfg.numLayers;
  const all = (n: number) => Array.from({ length: n }, (_, i) => i);
  const random = new PythonRandom(target.seed);
  const randomScores = (n: number) => all(n).map(() => random.randint(0, 2 ** 31));
  const need = (what: string): StructuredScores => {
    if (!scores) throw new PruneLensError('usage', `the ${what} metric needs calibration scores`);
    return scores;
  };
  if (target.layers) {
    const count = Math.min(L - 1, Math.ceil(remove / block - 1e-9));
    const score = target.metrics.layers === 'random' ? randomScores(L) : need(target.metrics.layers).layers.map((l) => (target.metrics.layers === 'bi' ? l.block.influence : l.block.pplWithout));
    const removed = new Set(lowest(score, count));
    const layers = all(L).filter((l) => !removed.has(l));
    return { layers, keep: new Map(layers.map((l) => [l, { kvHeads: all(cfg.numKvHeads), channels: all(cfg.intermediateSize) }])), kvHeads: cfg.numKvHeads, channels: cfg.intermediateSize };
  }
  const perLayer = remove / L;
  let groups = 0;
  let channels = 0;
  if (target.heads && target.channels) {
    groups = Math.min(cfg.numKvHeads - 1, Math.round((cfg.numKvHeads * perLayer) / block));
    channels = Math.round((perLayer - groups * group) / channel);
  } else if (target.heads) {
    groups = Math.round(perLayer / group);
  } else if (target.channels) {
    channels = Math.round(perLayer / channel);
  }
  groups = Math.max(0, Math.min(cfg.numKvHeads - 1, groups));
  channels = Math.max(0, Math.min(cfg.intermediateSize - 1, channels));
  const keep = new Map<number, BlockKeep>();
  for (let l = 0; l < L; l++) {
    const headScore =
      target.metrics.heads === 'random' ? randomScores(cfg.numKvHeads) : need(target.metrics.heads).layers[l]!.groups[target.metrics.heads === 'output' ? 'output' : 'similarity'];
    const channelScore =
      target.metrics.channels === 'random' ? randomScores(cfg.intermediateSize) : need(target.metrics.channels).layers[l]!.channels[target.metrics.channels === 'flap' ? 'flap' : 'wandaSp'];
    const droppedHeads = new Set(groups > 0 ? lowest(headScore, groups) : []);
    const droppedChannels = new Set(channels > 0 ? lowest(channelScore, channels) : []);
    keep.set(l, {
      kvHeads: all(cfg.numKvHeads).filter((k) => !droppedHeads.has(k)),
      channels: all(cfg.intermediateSize).filter((c) => !droppedChannels.has(c)),
    });
  }
  return { layers: all(L), keep, kvHeads: cfg.numKvHeads - groups, channels: cfg.intermediateSize - channels };
}

/** Indices of the `count` lowest values (ties: lower index first). */
function lowest(values: number[], count: number): number[] {
  return values
    .map((v, i) => [v, i] as const)
    .sort((a, b) => a[0] - b[0] || a[1] - b[1])
    .slice(0, count)
    .map(([, i]) => i);
}
