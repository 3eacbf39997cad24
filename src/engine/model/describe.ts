import type { Checkpoint } from '../io/checkpoint';
import { parameterCount } from './config';

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
  };
}
