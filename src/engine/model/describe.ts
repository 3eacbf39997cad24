import type { Checkpoint } from '../io/checkpoint';
import { blockTensorShapes, LINEARS, linearShapes, parameterCount, storedLinear, type LinearName, type ModelConfig } from './config';

/** What `prunelens info` prints and the model tree shows at its root. */
export interface ModelSummary {
  path: string;
  architecture: string;
  modelType: string;
  layers: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  hiddenSize: number;
  intermediateSize: number;
  vocabSize: number;
  tiedEmbeddings: boolean;
  parameters: number;
  dtype: string;
  bytesOnDisk: number;
  files: string[];
  /**
   * The block-relative tensor holding each linear's weight and the rows it takes there: itself, or a
   * part of a fused projection (Phi-3's `self_attn.qkv_proj`, `mlp.gate_up_proj`).
   */
  linearTensors: Record<LinearName, { tensor: string; rows: [from: number, to: number] }>;
  /** A block's norm weights (block-relative name and width): q/k norms and Gemma's post-norms included. */
  norms: { name: string; width: number }[];
  /** What the family's block does beyond Llama's, in words (rope scaling, windows, soft-capping, ...). */
  features: string[];
  /** The MLP's gate activation: SiLU (SwiGLU) or tanh-approximated GELU (GeGLU). */
  activation: 'silu' | 'gelu_tanh';
  /** Mixture-of-experts models: experts per sparse layer, how many each token uses, one expert's width, which layers are sparse. */
  experts?: { count: number; topK: number; renormalised: boolean; width: number; sparseLayers: number[]; sharedWidth?: number; module: string; names: { gate: string; up: string; down: string } };
}

export function describeModel(checkpoint: Checkpoint): ModelSummary {
  const cfg = checkpoint.config;
  const architectures = cfg.raw.architectures;
  return {
    path: checkpoint.dir,
    architecture: Array.isArray(architectures) && typeof architectures[0] === 'string' ? architectures[0] : cfg.modelType,
    modelType: cfg.modelType,
    layers: cfg.numLayers,
    heads: cfg.numHeads,
    kvHeads: cfg.numKvHeads,
    headDim: cfg.headDim,
    hiddenSize: cfg.hiddenSize,
    intermediateSize: cfg.intermediateSize,
    vocabSize: cfg.vocabSize,
    tiedEmbeddings: cfg.tieWordEmbeddings,
    parameters: parameterCount(cfg),
    dtype: checkpoint.dtype,
    bytesOnDisk: checkpoint.bytesOnDisk,
    files: checkpoint.files,
    linearTensors: linearTensors(cfg),
    norms: [...blockTensorShapes(cfg)].filter(([name]) => name.endsWith('norm.weight')).map(([name, shape]) => ({ name: name.slice(0, -'.weight'.length), width: shape[0]! })),
    features: familyFeatures(cfg),
    activation: cfg.arch.activation,
    ...(cfg.arch.moe
      ? {
          experts: {
            count: cfg.arch.moe.experts,
            topK: cfg.arch.moe.topK,
            renormalised: cfg.arch.moe.normTopK,
            width: cfg.arch.moe.expertWidth,
            sparseLayers: cfg.arch.moe.sparse.flatMap((sparse, l) => (sparse ? [l] : [])),
            module: cfg.arch.moe.module,
            names: cfg.arch.moe.names,
            ...(cfg.arch.moe.sharedWidth !== undefined ? { sharedWidth: cfg.arch.moe.sharedWidth } : {}),
          },
        }
      : {}),
  };
}

function linearTensors(cfg: ModelConfig): ModelSummary['linearTensors'] {
  const shapes = linearShapes(cfg);
  const next = new Map<string, number>();
  const out = {} as ModelSummary['linearTensors'];
  for (const linear of LINEARS) {
    const tensor = storedLinear(cfg, linear);
    const from = next.get(tensor) ?? 0;
    const to = from + shapes[linear][0];
    next.set(tensor, to);
    out[linear] = { tensor, rows: [from, to] };
  }
  return out;
}

function familyFeatures(cfg: ModelConfig): string[] {
  const { arch } = cfg;
  const features: string[] = [];
  const ropes = new Set(arch.layers.map((l) => l.rope.type));
  const scaled = [...ropes].filter((t) => t !== 'default');
  if (scaled.length > 0) features.push(`rope scaling: ${scaled.join(', ')}`);
  if (arch.rotaryDim !== cfg.headDim) features.push(`partial rotary: ${arch.rotaryDim} of ${cfg.headDim} dimensions`);
  const sliding = arch.layers.filter((l) => l.window !== undefined);
  if (sliding.length > 0) features.push(`sliding window ${sliding[0]!.window} on ${sliding.length} of ${cfg.numLayers} layers`);
  if (new Set(arch.layers.map((l) => JSON.stringify(l.rope))).size > 1) features.push('per-layer rotary bases (local and global layers)');
  if (arch.qkNorm) features.push('q/k norms');
  if (arch.sandwichNorms) features.push('post-attention and post-MLP norms');
  if (arch.norm === 'rms1p') features.push('RMSNorm × (1 + w)');
  if (arch.embedScale) features.push('embeddings × √hidden_size');
  if (arch.activation === 'gelu_tanh') features.push('GeGLU (gelu_pytorch_tanh)');
  if (arch.attnSoftcap !== undefined) features.push(`attention soft-capping ${arch.attnSoftcap}`);
  if (arch.finalSoftcap !== undefined) features.push(`final logit soft-capping ${arch.finalSoftcap}`);
  if (arch.fused) features.push('fused qkv_proj and gate_up_proj');
  if (arch.qkNormOver === 'projection') features.push('q/k norms over the whole projection');
  if (arch.moe) {
    const { experts, topK, normTopK, sparse, sharedWidth } = arch.moe;
    const sparseCount = sparse.filter(Boolean).length;
    features.push(`${experts} experts, top-${topK}${normTopK ? ' renormalised' : ''}${sparseCount < cfg.numLayers ? ` in ${sparseCount} of ${cfg.numLayers} layers` : ''}${sharedWidth !== undefined ? `, shared expert ${sharedWidth}` : ''}`);
  }
  return features;
}
