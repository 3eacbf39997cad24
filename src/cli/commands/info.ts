import { Checkpoint } from '../../engine/io/checkpoint';
import { describeModel, type ModelSummary } from '../../engine/model/describe';
import { bytes, count } from '../format';

export async function info(model: string): Promise<ModelSummary> {
  const checkpoint = await Checkpoint.open(model);
  try {
    return describeModel(checkpoint);
  } finally {
    await checkpoint.close();
  }
}

export function formatInfo(s: ModelSummary): string {
  return [
    ['model', s.path],
    ['architecture', `${s.architecture} (${s.modelType})`],
    ['layers', String(s.layers)],
    ['heads', `${s.heads} query, ${s.kvHeads} key/value (${s.heads / s.kvHeads} per group), head_dim ${s.headDim}`],
    ['hidden', String(s.hiddenSize)],
    ['mlp', String(s.intermediateSize)],
    ['vocabulary', `${s.vocabSize}${s.tiedEmbeddings ? ' (tied embeddings)' : ''}`],
    ['parameters', count(s.parameters)],
    ['dtype', s.dtype],
    ['on disk', `${bytes(s.bytesOnDisk)} in ${s.files.length} file(s)`],
  ]
    .map(([k, v]) => `${k!.padEnd(13)}${v}`)
    .join('\n');
}
