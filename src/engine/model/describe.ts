import type { Checkpoint } from '../io/checkpoint';
import { blockLinears, blockTensorShapes, layerPrefix, linearShapes, parameterCount, storedLinear, type LinearName, type ModelConfig } from './config';
import type { Activation } from './families/architecture';

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
  /** Stored name prefix of layer 0's tensors (`model.layers.0.`, `h.0.`); the index is the only part that changes. */
  layerPrefix: string;
  /**
   * The block-relative tensor holding each linear the block has (GPT-2, OPT, GPT-NeoX have no gate)
   * and the rows it takes there: itself, or a part of a fused projection (Phi-3's `self_attn.qkv_proj`,
   * GPT-2's `attn.c_attn`). `perHead`: the parts alternate head by head (GPT-NeoX's `query_key_value`),
   * so `rows` counts the part's rows, not a contiguous range. `transposed`: stored [in, out] (GPT-2's Conv1D).
   */
  linearTensors: Partial<Record<LinearName, { tensor: string; rows: [from: number, to: number]; perHead?: boolean; transposed?: boolean }>>;
  /** A block's norm weights (block-relative name and width): q/k norms and Gemma's post-norms included. */
  norms: { name: string; width: number }[];
  /** What the family's block does beyond Llama's, in words (rope scaling, windows, soft-capping, ...). */
  features: string[];
  /** The MLP's activation: on the gate (SwiGLU, GeGLU) when `gated`, else on fc1's output. */
  activation: Activation;
  gated: boolean;
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
    layerPrefix: layerPrefix(cfg, 0),
    linearTensors: linearTensors(cfg),
    norms: [...blockTensorShapes(cfg)].filter(([name]) => name.endsWith('norm.weight')).map(([name, shape]) => {
      const module = name.slice(0, -'.weight'.length);
      return { name: cfg.arch.names.renames[module] ?? module, width: shape[0]! };
    }),
    features: familyFeatures(cfg),
    activation: cfg.arch.activation,
    gated: cfg.arch.gated,
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
  const out: ModelSummary['linearTensors'] = {};
  const { names } = cfg.arch;
  for (const linear of blockLinears(cfg)) {
    const tensor = storedLinear(cfg, linear);
    const from = next.get(tensor) ?? 0;
    const to = from + shapes[linear][0];
    next.set(tensor, to);
    const perHead = names.fused.some((f) => f.perHead && f.stored === tensor);
    out[linear] = { tensor, rows: [from, to], ...(perHead ? { perHead } : {}), ...(names.transposed ? { transposed: true } : {}) };
  }
  return out;
}

function familyFeatures(cfg: ModelConfig): string[] {
  const { arch } = cfg;
  const features: string[] = [];
  const ropes = new Set(arch.layers.map((l) => l.rope.type));
  const scaled = [...ropes].filter((t) => t !== 'default');
  if (scaled.length > 0) features.push(`rope scaling: ${scaled.join(', ')}`);
  if (arch.rotaryDim > 0 && arch.rotaryDim !== cfg.headDim) features.push(`partial rotary: ${arch.rotaryDim} of ${cfg.headDim} dimensions`);
  const sliding = arch.layers.filter((l) => l.window !== undefined);
  if (sliding.length > 0) features.push(`sliding window ${sliding[0]!.window} on ${sliding.length} of ${cfg.numLayers} layers`);
  if (new Set(arch.layers.map((l) => JSON.stringify(l.rope))).size > 1) features.push('per-layer rotary bases (local and global layers)');
  if (arch.qkNorm) features.push('q/k norms');
  if (arch.sandwichNorms) features.push('post-attention and post-MLP norms');
  if (arch.norm === 'rms1p') features.push('RMSNorm × (1 + w)');
  if (arch.norm === 'layer') features.push('LayerNorm with bias');
  if (arch.positionOffset !== undefined) features.push(`learned positions${arch.positionOffset ? ` (offset ${arch.positionOffset})` : ''}`);
  if (arch.residual === 'parallel') features.push('parallel residual (attention and MLP read the same input)');
  if (arch.residual === 'post') features.push('post-norm residual (do_layer_norm_before false)');
  if (!arch.finalNorm) features.push('no final norm');
  if (arch.projection !== undefined) features.push(`project_in/out ${arch.projection} ↔ ${cfg.hiddenSize}`);
  if (!arch.gated) features.push(`ungated MLP (${ACTIVATION_WORDS[arch.activation]})`);
  if (arch.names.transposed) features.push('Conv1D weights stored [in, out]');
  if (arch.embedScale) features.push('embeddings × √hidden_size');
  if (arch.gated && arch.activation === 'gelu_tanh') features.push('GeGLU (gelu_pytorch_tanh)');
  if (arch.attnSoftcap !== undefined) features.push(`attention soft-capping ${arch.attnSoftcap}`);
  if (arch.finalSoftcap !== undefined) features.push(`final logit soft-capping ${arch.finalSoftcap}`);
  if (arch.fused) features.push(`fused ${arch.names.fused.map((f) => `${f.stored.slice(f.stored.lastIndexOf('.') + 1)}${f.perHead ? ' (per head)' : ''}`).join(' and ')}`);
  if (arch.qkNormOver === 'projection') features.push('q/k norms over the whole projection');
  if (arch.moe) {
    const { experts, topK, normTopK, sparse, sharedWidth } = arch.moe;
    const sparseCount = sparse.filter(Boolean).length;
    features.push(`${experts} experts, top-${topK}${normTopK ? ' renormalised' : ''}${sparseCount < cfg.numLayers ? ` in ${sparseCount} of ${cfg.numLayers} layers` : ''}${sharedWidth !== undefined ? `, shared expert ${sharedWidth}` : ''}`);
  }
  return features;
}

const ACTIVATION_WORDS: Record<Activation, string> = { silu: 'SiLU', gelu_tanh: 'tanh GELU', gelu: 'exact GELU', relu: 'ReLU' };
