import { Checkpoint } from '../../engine/io/checkpoint';
import { describeModel, type ModelSummary } from '../../engine/model/describe';
import { defineCommand, print, singlePositional, table } from '../command';
import { bytes, count } from '../format';

export const info = defineCommand({
  synopsis: ['[MODEL] [--json]'],
  summary: 'Describe a checkpoint: architecture, shapes, parameters, dtype, size on disk.',
  details: 'Reads only config.json and the safetensors headers.',
  options: {},
  async run({ positionals }, ctx) {
    const checkpoint = await Checkpoint.open(singlePositional(positionals, 'MODEL'));
    try {
      const summary = describeModel(checkpoint);
      print(ctx, summary, formatInfo(summary));
    } finally {
      await checkpoint.close();
    }
  },
});

function formatInfo(s: ModelSummary): string {
  return table([
    ['model', s.path],
    ['architecture', `${s.architecture} (${s.modelType})`],
    ['layers', String(s.layers)],
    ['heads', `${s.heads} query, ${s.kvHeads} key/value (${s.heads / s.kvHeads} per group), head_dim ${s.headDim}`],
    ['hidden', String(s.hiddenSize)],
    ['mlp', s.experts ? `${s.experts.count} experts of ${s.experts.width}, top-${s.experts.topK}${s.experts.renormalised ? ' renormalised' : ''}${s.experts.sharedWidth !== undefined ? `, shared expert ${s.experts.sharedWidth}` : ''}${s.experts.sparseLayers.length < s.layers ? ` (layers ${s.experts.sparseLayers.join(', ')}; dense MLP ${s.intermediateSize} elsewhere)` : ''}` : String(s.intermediateSize)],
    ['vocabulary', `${s.vocabSize}${s.tiedEmbeddings ? ' (tied embeddings)' : ''}`],
    ['parameters', count(s.parameters)],
    ['dtype', s.dtype],
    ['on disk', `${bytes(s.bytesOnDisk)} in ${s.files.length} file(s)`],
  ]);
}
