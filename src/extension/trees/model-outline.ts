import { formatLoss, formatMs, formatPercent, formatPerplexity } from '../../engine/display';
import { LINEARS, linearShapes, type LinearName } from '../../engine/model/config';
import type { ExpertStats } from '../../engine/experts/expert-stats';
import type { ModelSummary } from '../../engine/model/describe';
import type { LayerScores, StructuredScores } from '../../engine/structured/scores';
import { isStructuredRecord, runLabel, runPerplexity, type OutputRecord } from '../runs/output-record';

/**
 * The Model view's tree as plain data: what each node says and which menus it gets. No `vscode`
 * import, so it is tested under plain Node; the view only adds icons and commands.
 */
export type OutlineKind = 'model' | 'layer' | 'attention' | 'heads' | 'kvGroup' | 'head' | 'mlp' | 'linear' | 'expert';

export interface OutlineNode {
  /** Stable across rebuilds of the same model, so the view keeps expansion and can reveal. */
  id: string;
  kind: OutlineKind;
  label: string;
  description: string;
  tooltip: string;
  contextValue: OutlineKind;
  /** Layer and query head in this model's numbering, for the actions on a layer or a head. */
  layer?: number;
  head?: number;
  /**
   * 1..HEAT_LEVELS: where the node's score ranks among its siblings (1 lowest, the first to prune),
   * for the view's colour scale; absent without scores.
   */
  heat?: number;
  parent?: OutlineNode;
  children: OutlineNode[];
}

export interface ModelScores {
  values: StructuredScores;
  /** A structured output's prunelens-scores.json was measured on its source, before anything was removed. */
  measuredOn: 'this model' | 'source';
}

export interface ModelOutlineInput {
  summary: ModelSummary;
  /** prunelens.json, when the model is a PruneLens output. */
  record?: OutputRecord;
  scores?: ModelScores;
  /** Routing statistics of this model's experts (computed from calibration text; a MoE model only). */
  experts?: ExpertStats;
}

/** Scores in this model's numbering of layers, query heads and key/value groups. */
export interface AlignedScores {
  values: StructuredScores;
  /** Per layer of this model. */
  layers: LayerScores[];
  /** The layer of the measured model each layer of this one came from. */
  sourceLayers: number[];
  /** Channel scores cover the source's channels: the record keeps how many were cut, not which. */
  channelsFromSource: boolean;
  measuredOn: ModelScores['measuredOn'];
}

const LINEAR_LABEL: Record<LinearName, string> = {
  'self_attn.q_proj': 'q_proj',
  'self_attn.k_proj': 'k_proj',
  'self_attn.v_proj': 'v_proj',
  'self_attn.o_proj': 'o_proj',
  'mlp.gate_proj': 'gate_proj',
  'mlp.up_proj': 'up_proj',
  'mlp.down_proj': 'down_proj',
};
const ACTIVATION_LABEL: Record<ModelSummary['activation'], string> = { silu: 'SiLU', gelu_tanh: 'tanh GELU', gelu: 'GELU', relu: 'ReLU' };
const ATTENTION = LINEARS.filter((l) => l.startsWith('self_attn.'));
const MLP = LINEARS.filter((l) => l.startsWith('mlp.'));

export const HEAT_LEVELS = 5;

export interface OutlineOptions {
  /** Layers, key/value groups and heads in order of their score, lowest (the first to prune) first. */
  sortByScore?: boolean;
}

/** Each value's level 1..HEAT_LEVELS by its rank among `values` (ties share the lower rank). */
export function heatLevels(values: readonly number[]): number[] {
  const sorted = [...values].sort((a, b) => a - b);
  return values.map((v) => 1 + Math.min(HEAT_LEVELS - 1, Math.floor((HEAT_LEVELS * sorted.indexOf(v)) / values.length)));
}

/** Nodes with their heat, sorted by it (stable) when asked. */
function ordered(nodes: OutlineNode[], scores: number[] | undefined, options: OutlineOptions): OutlineNode[] {
  if (!scores) return nodes;
  const heat = heatLevels(scores);
  nodes.forEach((n, i) => (n.heat = heat[i]));
  if (!options.sortByScore) return nodes;
  return nodes.map((n, i) => ({ n, v: scores[i]! })).sort((a, b) => a.v - b.v).map(({ n }) => n);
}

const count = (n: number): string => n.toLocaleString('en-US');
const score = (v: number): string => v.toExponential(2);
const influence = (v: number): string => v.toFixed(4);
const zeroShare = (v: number): string => `${formatPercent(v)} zero`;
const range = (n: number): number[] => Array.from({ length: n }, (_, i) => i);
const join = (parts: (string | false | undefined)[]): string => parts.filter(Boolean).join(' · ');

function linearShape(summary: ModelSummary, linear: LinearName): [rows: number, columns: number] {
  const { hiddenSize, intermediateSize, heads: numHeads, kvHeads: numKvHeads, headDim } = summary;
  return linearShapes({ hiddenSize, intermediateSize, numHeads, numKvHeads, headDim })[linear];
}

/**
 * Maps scores onto this model. Scores measured on this model map as they are; a structured output's
 * scores were measured on its source, so its kept layers and key/value groups (each with its query
 * heads) are looked up in the record. Scores that fit neither are not shown rather than shown wrong.
 */
export function alignScores(input: ModelOutlineInput): AlignedScores | undefined {
  const { summary, scores } = input;
  if (!scores) return undefined;
  const source = scores.values.layers;
  const structured = input.record && isStructuredRecord(input.record) && scores.measuredOn === 'source' ? input.record : undefined;
  const removedLayers = structured?.removed.layers ?? [];
  const sourceLayers = range(source.length).filter((l) => !removedLayers.includes(l));
  if (sourceLayers.length !== summary.layers) return undefined;
  const layers: LayerScores[] = [];
  for (const [layer, s] of sourceLayers.entries()) {
    const measured = source[s]!;
    const groups = measured.groups.output.length;
    const perGroup = measured.heads.output.length / groups;
    const removedGroups = structured?.removed.kvHeads[String(s)] ?? [];
    const keptGroups = range(groups).filter((g) => !removedGroups.includes(g));
    if (keptGroups.length !== summary.kvHeads || keptGroups.length * perGroup !== summary.heads) return undefined;
    if (!structured && measured.channels.flap.length !== summary.intermediateSize) return undefined;
    const heads = keptGroups.flatMap((g) => range(perGroup).map((r) => g * perGroup + r));
    layers.push({
      layer,
      heads: { output: heads.map((h) => measured.heads.output[h]!), similarity: heads.map((h) => measured.heads.similarity[h]!) },
      groups: { output: keptGroups.map((g) => measured.groups.output[g]!), similarity: keptGroups.map((g) => measured.groups.similarity[g]!) },
      channels: measured.channels,
      block: measured.block,
    });
  }
  return {
    values: scores.values,
    layers,
    sourceLayers,
    channelsFromSource: (structured?.removed.channelsPerLayer ?? 0) > 0,
    measuredOn: structured ? 'source' : 'this model',
  };
}

/** Median, and the extremes, of a layer's channel scores: 172 numbers do not fit a tree row. */
function summarize(values: number[]): { min: number; median: number; max: number } {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  const median = sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
  return { min: sorted[0]!, median, max: sorted[sorted.length - 1]! };
}

export function buildModelOutline(input: ModelOutlineInput, options: OutlineOptions = {}): OutlineNode {
  const { summary, record } = input;
  const pruned = record && !isStructuredRecord(record) ? record : undefined;
  const structured = record && isStructuredRecord(record) ? record : undefined;
  const scores = alignScores(input);
  const perGroup = summary.heads / summary.kvHeads;
  const id = (suffix: string): string => `${summary.path}#${suffix}`;
  const nonBlock = summary.vocabSize * summary.hiddenSize * (summary.tiedEmbeddings ? 1 : 2) + summary.hiddenSize;
  const blockParameters = (summary.parameters - nonBlock) / summary.layers;

  // Explicitly named heads are zeroed in place; the record numbers their layers as the source did.
  const keptSource = structured ? range(summary.layers + structured.removed.layers.length).filter((l) => !structured.removed.layers.includes(l)) : [];
  const zeroedHeads = new Set(structured?.removed.maskedHeads.map(([l, h]) => `${keptSource.indexOf(l)}.${h}`) ?? []);

  // A fused projection (Phi-3, GPT-2, GPT-NeoX) is one stored tensor holding several linears; the record measures stored tensors.
  const tensorName = (layer: number, linear: LinearName): string => `${summary.layerPrefix.slice(0, -2)}${layer}.${summary.linearTensors[linear]!.tensor}.weight`;
  // GPT-2, OPT and GPT-NeoX have no gate.
  const attentionLinears = ATTENTION.filter((l) => summary.linearTensors[l]);
  const mlpLinears = MLP.filter((l) => summary.linearTensors[l]);
  const sparsityOf = (layer: number, linears: readonly LinearName[]): number | undefined => {
    if (!pruned) return undefined;
    let zeros = 0;
    let numel = 0;
    for (const name of new Set(linears.map((l) => tensorName(layer, l)))) {
      const t = pruned.tensors[name];
      if (!t) return undefined;
      zeros += t.zeros;
      numel += t.shape.reduce((a, b) => a * b, 1);
    }
    return zeros / numel;
  };
  const weightsOf = (linears: readonly LinearName[]): number => linears.reduce((n, l) => n + linearShape(summary, l)[0] * linearShape(summary, l)[1], 0);

  const node = (fields: Omit<OutlineNode, 'children' | 'contextValue'>, children: OutlineNode[] = []): OutlineNode => {
    const n: OutlineNode = { ...fields, contextValue: fields.kind, children };
    for (const child of children) child.parent = n;
    return n;
  };

  const linearNode = (layer: number, linear: LinearName, suffix: string): OutlineNode => {
    const [rows, columns] = linearShape(summary, linear);
    const t = pruned?.tensors[tensorName(layer, linear)];
    const { tensor, rows: [from, to], perHead, transposed } = summary.linearTensors[linear]!;
    const shared = Object.values(summary.linearTensors).filter((t) => t?.tensor === tensor).length > 1;
    const fused = shared ? tensor.slice(tensor.indexOf('.') + 1) : undefined;
    // Loss, time and memory of this linear's pruning, where the record kept them.
    const cost = pruned?.layers.find((l) => l.layer === layer)?.linears?.[linear];
    return node({
      id: id(`L${layer}/${suffix}/${LINEAR_LABEL[linear]}`),
      kind: 'linear',
      // A renamed linear shows the family's own name (fc1, c_proj, dense_h_to_4h); a part of a fused one, the part's.
      label: fused ? LINEAR_LABEL[linear] : tensor.slice(tensor.lastIndexOf('.') + 1),
      description: join([`${rows} × ${columns}`, fused && `in ${fused}`, `${count(rows * columns)} weights`, t && zeroShare(t.sparsity), cost && `loss ${formatLoss(cost.loss)}`]),
      tooltip: [
        tensorName(layer, linear),
        fused && perHead && `${to - from} rows of the fused ${fused}, head by head ([q, k, v] of each head in turn); pruned as a matrix of its own`,
        fused && !perHead && `${transposed ? 'columns' : 'rows'} ${from}–${to - 1} of the fused ${fused}, stored as one tensor; pruned as a matrix of its own`,
        transposed && 'stored transposed, [in, out] (Conv1D)',
        `shape [${rows}, ${columns}], ${count(rows * columns)} weights`,
        t && `${count(t.zeros)} zeros (${formatPercent(t.sparsity)}${fused ? ` of ${fused}` : ''})${t.targeted ? '' : ', not targeted by the run'}`,
        cost && `layer loss ${formatLoss(cost.loss)}, pruned in ${formatMs(cost.ms)}, resident memory then ${cost.rssMb.toFixed(0)} MiB`,
      ].filter(Boolean).join('\n'),
      layer,
    });
  };

  const headNode = (layer: number, head: number, s: LayerScores | undefined): OutlineNode => {
    const zeroed = zeroedHeads.has(`${layer}.${head}`);
    return node({
      id: id(`L${layer}/h${head}`),
      kind: 'head',
      label: `Head ${layer}.${head}`,
      description: join([zeroed && 'zeroed', s && `output Δ ${score(s.heads.output[head]!)}`, s && `similarity ${influence(s.heads.similarity[head]!)}`]),
      tooltip: [
        `Query head ${head} of layer ${layer}, reading key/value head ${Math.floor(head / perGroup)}; head_dim ${summary.headDim}`,
        zeroed && 'Zeroed by an explicit removal (its q_proj rows and o_proj columns)',
        s && `Output change when removed: ${score(s.heads.output[head]!)} (squared change of the block output; higher matters more)`,
        s && `Similarity: ${influence(s.heads.similarity[head]!)} (1 - highest mean cosine with another head's contribution; low is redundant)`,
      ].filter(Boolean).join('\n'),
      layer,
      head,
    });
  };

  const groupNode = (layer: number, group: number, s: LayerScores | undefined): OutlineNode => {
    const first = group * perGroup;
    const heads = ordered(
      range(perGroup).map((r) => headNode(layer, first + r, s)),
      s && range(perGroup).map((r) => s.heads.output[first + r]!),
      options,
    );
    return node(
      {
        id: id(`L${layer}/g${group}`),
        kind: 'kvGroup',
        label: `KV group ${group}`,
        description: join([perGroup > 1 ? `heads ${first}–${first + perGroup - 1}` : `head ${first}`, s && `output Δ ${score(s.groups.output[group]!)}`]),
        tooltip: [
          `Key/value head ${group} of layer ${layer} and the ${perGroup} query head(s) that read it: what structured pruning removes together`,
          s && `Output change when removed: ${score(s.groups.output[group]!)}; mean similarity ${influence(s.groups.similarity[group]!)}`,
        ].filter(Boolean).join('\n'),
        layer,
      },
      heads,
    );
  };

  // Norms are never pruned; the tooltips name them so a family's extra ones (Gemma's post-norms, q/k norms) show.
  const normsLine = (attention: boolean): string | undefined => {
    const norms = summary.norms.filter((n) => n.name.startsWith('self_attn.') === attention);
    return norms.length > 0 ? `Norms: ${norms.map((n) => `${n.name.slice(n.name.lastIndexOf('.') + 1)} [${n.width}]`).join(', ')}${attention ? ' (per head, shared by every head)' : ''}` : undefined;
  };

  // A sparse layer's MLP: its experts (each a SwiGLU MLP of three stored tensors) and the router that picks top-k of them.
  const expertsNode = (layer: number, moe: NonNullable<typeof summary.experts>): OutlineNode => {
    const tensors = (j: number) => (['gate', 'up', 'down'] as const).map((l) => `model.layers.${layer}.${moe.module}.experts.${j}.${moe.names[l]}.weight`);
    const zerosOf = (names: string[]): number | undefined => {
      const found = names.map((n) => pruned?.tensors[n]);
      if (!found.every((t) => t)) return undefined;
      return found.reduce((z, t) => z + t!.zeros, 0) / found.reduce((n, t) => n + t!.shape.reduce((a, b) => a * b, 1), 0);
    };
    const perExpert = 3 * moe.width * summary.hiddenSize;
    const stats = input.experts?.layers.find((l) => l.layer === layer)?.experts;
    const experts = range(moe.count).map((j) => {
      const sparsity = zerosOf(tensors(j));
      const e = stats?.[j];
      return node({
        id: id(`L${layer}/experts/${j}`),
        kind: 'expert',
        label: `Expert ${j}`,
        description: join([e ? `REAP ${e.reap.toFixed(3)}, share ${formatPercent(e.frequency)}, weight ${e.meanWeight.toFixed(3)}` : `${count(perExpert)} weights`, sparsity !== undefined && zeroShare(sparsity)]),
        tooltip: [
          ...tensors(j),
          `SwiGLU MLP of width ${moe.width}: gate and up [${moe.width}, ${summary.hiddenSize}], down [${summary.hiddenSize}, ${moe.width}]`,
          sparsity !== undefined && `${formatPercent(sparsity)} of its weights are zero`,
          e && `Routed for ${formatPercent(e.frequency)} of the ${count(input.experts!.tokens)} calibration tokens (a layer's shares sum to top-${moe.topK}), mean routing weight ${e.meanWeight.toFixed(4)} when routed, REAP ${e.reap.toFixed(4)} (mean routing weight x output norm over its tokens; the lowest is the first to remove)`,
        ].filter(Boolean).join('\n'),
        layer,
      });
    });
    const sparsity = zerosOf(range(moe.count).flatMap(tensors));
    return node(
      {
        id: id(`L${layer}/mlp`),
        kind: 'mlp',
        label: 'Experts',
        description: join([`${moe.count} of width ${moe.width}, top-${moe.topK}`, `${count(moe.count * perExpert)} weights`, sparsity !== undefined && zeroShare(sparsity)]),
        tooltip: [
          `Mixture of experts of layer ${layer}: the router (${moe.module}.gate, [${moe.count}, ${summary.hiddenSize}]) sends each token to ${moe.topK} of ${moe.count} experts, weighted by their softmax probabilities${moe.renormalised ? ' renormalised over the chosen ones' : ''}`,
          moe.sharedWidth !== undefined && `plus a shared expert of width ${moe.sharedWidth} that every token passes through, scaled by sigmoid(shared_expert_gate)`,
          'prunelens experts MODEL reports how often each expert is routed to and its REAP score; prune --structured experts removes the lowest',
        ].filter(Boolean).join('\n'),
        layer,
      },
      ordered(experts, stats?.map((e) => e.reap), options),
    );
  };

  const layerNode = (layer: number): OutlineNode => {
    const s = scores?.layers[layer];
    const attentionSparsity = sparsityOf(layer, attentionLinears);
    const mlpSparsity = sparsityOf(layer, mlpLinears);
    const layerSparsity = sparsityOf(layer, [...attentionLinears, ...mlpLinears]);
    const flap = s && summarize(s.channels.flap);
    const wandaSp = s && summarize(s.channels.wandaSp);
    const measured = scores && (scores.measuredOn === 'source' ? `measured on the source's layer ${scores.sourceLayers[layer]} before removal` : undefined);
    const attention = node(
      {
        id: id(`L${layer}/attention`),
        kind: 'attention',
        label: 'Attention',
        description: join([`${summary.heads} heads`, `${summary.kvHeads} KV`, `${count(weightsOf(attentionLinears))} weights`, attentionSparsity !== undefined && zeroShare(attentionSparsity), s && `BI ${influence(s.block.attentionInfluence)}`]),
        tooltip: [
          `Self-attention of layer ${layer}: ${summary.heads} query heads, ${summary.kvHeads} key/value heads, head_dim ${summary.headDim}`,
          normsLine(true),
          s && `Influence of the attention half: ${influence(s.block.attentionInfluence)} (1 - cos of the residual stream before and after it)`,
          measured,
        ].filter(Boolean).join('\n'),
        layer,
      },
      [
        ...attentionLinears.map((l) => linearNode(layer, l, 'attention')),
        node(
          {
            id: id(`L${layer}/heads`),
            kind: 'heads',
            label: 'Heads',
            description: `${summary.heads} in ${summary.kvHeads} KV groups of ${perGroup}`,
            tooltip: 'Query heads grouped by the key/value head they read (grouped-query attention)',
            layer,
          },
          ordered(
            range(summary.kvHeads).map((g) => groupNode(layer, g, s)),
            s && range(summary.kvHeads).map((g) => s.groups.output[g]!),
            options,
          ),
        ),
      ],
    );
    const moe = summary.experts?.sparseLayers.includes(layer) ? summary.experts : undefined;
    const mlp = moe ? expertsNode(layer, moe) : node(
      {
        id: id(`L${layer}/mlp`),
        kind: 'mlp',
        label: 'MLP',
        description: join([`${summary.intermediateSize} channels`, `${count(weightsOf(mlpLinears))} weights`, mlpSparsity !== undefined && zeroShare(mlpSparsity), s && `BI ${influence(s.block.mlpInfluence)}`, flap && `FLAP median ${score(flap.median)}`]),
        tooltip: [
          `${summary.gated ? `${summary.activation === 'gelu_tanh' ? 'GELU' : 'SiLU'}-gated MLP` : `MLP (${ACTIVATION_LABEL[summary.activation]}, no gate)`} of layer ${layer}: ${summary.intermediateSize} channels`,
          s && `Influence of the MLP half: ${influence(s.block.mlpInfluence)}`,
          flap && `FLAP fluctuation per channel: min ${score(flap.min)}, median ${score(flap.median)}, max ${score(flap.max)}`,
          wandaSp && `Structured Wanda per channel: min ${score(wandaSp.min)}, median ${score(wandaSp.median)}, max ${score(wandaSp.max)}`,
          s && scores.channelsFromSource && `Channel scores cover all ${s.channels.flap.length} channels of the source, before channels were cut`,
          measured,
        ].filter(Boolean).join('\n'),
        layer,
      },
      mlpLinears.map((l) => linearNode(layer, l, 'mlp')),
    );
    return node(
      {
        id: id(`L${layer}`),
        kind: 'layer',
        label: `Layer ${layer}`,
        description: join([`${count(blockParameters)} params`, layerSparsity !== undefined && zeroShare(layerSparsity), s && `BI ${influence(s.block.influence)}`, s && `ppl without ${formatPerplexity(s.block.pplWithout)}`]),
        tooltip: [
          `Decoder block ${layer}: ${count(blockParameters)} parameters`,
          normsLine(false),
          layerSparsity !== undefined && `${formatPercent(layerSparsity)} of its linear weights are zero`,
          s && `Block influence: ${influence(s.block.influence)} (ShortGPT: 1 - mean cos(block input, block output); low is redundant)`,
          s && `Perplexity without this block: ${formatPerplexity(s.block.pplWithout)} (dense ${formatPerplexity(scores.values.densePpl)} on ${scores.values.pplWindows} calibration windows)`,
          measured,
        ].filter(Boolean).join('\n'),
        layer,
      },
      [attention, mlp],
    );
  };

  const recordLine =
    pruned
      ? `${runLabel(pruned)}: ${formatPercent(pruned.measured.sparsity)} of the pruned linears zero, ${runPerplexity(pruned)}`
      : structured && `${runLabel(structured)}: ${formatPercent(structured.parameters.removedFraction)} of the parameters removed, ${runPerplexity(structured)}`;
  const calibration = scores?.values.calibration;
  return node(
    {
      id: id('model'),
      kind: 'model',
      label: summary.path.split(/[\\/]/).filter(Boolean).pop() ?? summary.path,
      description: join([
        summary.architecture,
        `${count(summary.parameters)} params`,
        summary.dtype,
        pruned && `${formatPercent(pruned.measured.sparsity)} sparse`,
        structured && `${formatPercent(structured.parameters.removedFraction)} removed`,
      ]),
      tooltip: [
        summary.path,
        `${summary.architecture} (${summary.modelType}): ${summary.layers} layers, ${summary.heads} heads (${summary.kvHeads} key/value), hidden ${summary.hiddenSize}, MLP ${summary.intermediateSize}, vocabulary ${summary.vocabSize}${summary.tiedEmbeddings ? ', tied embeddings' : ''}`,
        `${count(summary.parameters)} parameters, ${summary.dtype}, ${count(summary.bytesOnDisk)} bytes on disk`,
        summary.features.length > 0 && `Beyond Llama's block: ${summary.features.join('; ')}`,
        recordLine,
        calibration &&
          `Scores from ${calibration.nsamples} windows of ${calibration.seqlen} tokens of ${calibration.file} (seed ${calibration.seed})${scores.measuredOn === 'source' ? ', measured on the source model' : ''}`,
      ].filter(Boolean).join('\n'),
    },
    ordered(range(summary.layers).map(layerNode), scores?.layers.map((l) => l.block.influence), options),
  );
}
