import { PruneLensError } from '../../errors';

/**
 * Mixture-of-experts MLPs (Mixtral, Qwen2-MoE, Qwen3-MoE, OLMoE), read once from config.json. A
 * router (a bias-free linear, hidden -> experts) scores every expert; softmax over all experts, the
 * top-k kept, renormalised to sum 1 only where the family says so; each kept expert is a SwiGLU MLP
 * whose output is weighted by its routing weight. Qwen2-MoE adds a shared expert that every token
 * goes through, scaled by sigmoid(shared_expert_gate(x)).
 */
export interface MoeSpec {
  /** Module that holds router and experts: `block_sparse_moe` (Mixtral) or `mlp`. */
  module: string;
  experts: number;
  topK: number;
  /** Renormalise the k kept softmax weights to sum 1 (Mixtral always; the others by norm_topk_prob). */
  normTopK: boolean;
  /** One expert's intermediate width. */
  expertWidth: number;
  /** The three linears inside each expert, as the checkpoint names them. */
  names: { gate: string; up: string; down: string };
  /** Qwen2-MoE's shared expert width (shared_expert + shared_expert_gate), absent elsewhere. */
  sharedWidth?: number;
  /** Per layer: a sparse MoE MLP (true) or a dense MLP of intermediate_size (Qwen's mlp_only_layers, decoder_sparse_step). */
  sparse: boolean[];
}

export const MOE_FAMILIES = ['mixtral', 'qwen2_moe', 'qwen3_moe', 'olmoe'] as const;
export type MoeFamily = (typeof MOE_FAMILIES)[number];

interface Inputs {
  raw: Record<string, unknown>;
  where: string;
  numLayers: number;
}

function own(raw: Record<string, unknown>, key: string): unknown {
  return Object.hasOwn(raw, key) ? raw[key] : undefined;
}

function int(raw: Record<string, unknown>, key: string, where: string, fallback?: number): number {
  const v = own(raw, key) ?? fallback;
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v <= 0) throw new PruneLensError('config', `"${key}" must be a positive integer, got ${JSON.stringify(v ?? null)}`, where);
  return v;
}

function bool(raw: Record<string, unknown>, key: string, where: string, fallback: boolean): boolean {
  const v = own(raw, key) ?? fallback;
  if (typeof v !== 'boolean') throw new PruneLensError('config', `"${key}" must be true or false, got ${JSON.stringify(v)}`, where);
  return v;
}

/** Expert counts beyond any released model (DeepSeek-V3 and Qwen3 have 256 and 128): a damaged config. */
const MAX_EXPERTS = 4096;

/** The MoE part of a family's spec; defaults are the config classes' own. */
export function moeSpec(inputs: Inputs, family: MoeFamily): MoeSpec {
  const { raw, where, numLayers } = inputs;
  const mixtral = family === 'mixtral';
  const qwen = family === 'qwen2_moe' || family === 'qwen3_moe';
  const defaults = { mixtral: [8, 2], qwen2_moe: [60, 4], qwen3_moe: [128, 8], olmoe: [64, 8] }[family];
  const experts = int(raw, mixtral ? 'num_local_experts' : 'num_experts', where, defaults[0]);
  if (experts > MAX_EXPERTS) throw new PruneLensError('config', `"${mixtral ? 'num_local_experts' : 'num_experts'}" is ${experts}, beyond any real model (at most ${MAX_EXPERTS}); the config is damaged`, where);
  const topK = int(raw, 'num_experts_per_tok', where, defaults[1]);
  if (topK > experts) throw new PruneLensError('config', `"num_experts_per_tok" (${topK}) exceeds the number of experts (${experts})`, where);
  if (family === 'olmoe' && own(raw, 'clip_qkv') !== undefined && own(raw, 'clip_qkv') !== null) {
    throw new PruneLensError('config', `"clip_qkv" ${JSON.stringify(own(raw, 'clip_qkv'))} is not supported; only null (every released OLMoE)`, where);
  }
  let sparse = Array.from({ length: numLayers }, () => true);
  if (qwen) {
    // Qwen2MoeDecoderLayer: sparse unless listed in mlp_only_layers, and only every decoder_sparse_step-th layer.
    const step = int(raw, 'decoder_sparse_step', where, 1);
    const only = own(raw, 'mlp_only_layers') ?? [];
    if (!Array.isArray(only) || !only.every((l) => Number.isSafeInteger(l) && l >= 0 && l < numLayers)) {
      throw new PruneLensError('config', `"mlp_only_layers" must list layer indices below ${numLayers}, got ${JSON.stringify(only)}`, where);
    }
    sparse = sparse.map((_, l) => !only.includes(l) && (l + 1) % step === 0);
  }
  return {
    module: mixtral ? 'block_sparse_moe' : 'mlp',
    experts,
    topK,
    normTopK: mixtral || bool(raw, 'norm_topk_prob', where, false),
    expertWidth: qwen ? int(raw, 'moe_intermediate_size', where) : int(raw, 'intermediate_size', where),
    names: mixtral ? { gate: 'w1', up: 'w3', down: 'w2' } : { gate: 'gate_proj', up: 'up_proj', down: 'down_proj' },
    sharedWidth: family === 'qwen2_moe' ? int(raw, 'shared_expert_intermediate_size', where) : undefined,
    sparse,
  };
}

export type ExpertLinear = 'gate' | 'up' | 'down';
export const EXPERT_LINEARS: readonly ExpertLinear[] = ['gate', 'up', 'down'];

export function routerName(moe: MoeSpec): string {
  return `${moe.module}.gate.weight`;
}

/** Block-relative name of expert j's linear weight (`block_sparse_moe.experts.3.w1.weight`). */
export function expertWeightName(moe: MoeSpec, expert: number, linear: ExpertLinear): string {
  return `${moe.module}.experts.${expert}.${moe.names[linear]}.weight`;
}

/** [out, in] of one expert linear. */
export function expertShape(moe: MoeSpec, hidden: number, linear: ExpertLinear): [number, number] {
  return linear === 'down' ? [hidden, moe.expertWidth] : [moe.expertWidth, hidden];
}

/** The tensors of a sparse layer's MLP, block-relative, in the order the graph declares them. */
export function moeTensorShapes(moe: MoeSpec, hidden: number): Map<string, number[]> {
  const shapes = new Map<string, number[]>([[routerName(moe), [moe.experts, hidden]]]);
  for (let j = 0; j < moe.experts; j++) for (const l of EXPERT_LINEARS) shapes.set(expertWeightName(moe, j, l), expertShape(moe, hidden, l));
  if (moe.sharedWidth !== undefined) {
    shapes.set('mlp.shared_expert.gate_proj.weight', [moe.sharedWidth, hidden]);
    shapes.set('mlp.shared_expert.up_proj.weight', [moe.sharedWidth, hidden]);
    shapes.set('mlp.shared_expert.down_proj.weight', [hidden, moe.sharedWidth]);
    shapes.set('mlp.shared_expert_gate.weight', [1, hidden]);
  }
  return shapes;
}

/** The config.json field that holds the expert count. */
export function expertCountKey(modelType: string): string {
  return modelType === 'mixtral' ? 'num_local_experts' : 'num_experts';
}
