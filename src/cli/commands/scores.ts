import type { StructuredScores } from '../../engine/structured/scores';
import { scoreModel } from '../../engine/structured/structured-prune';
import { CALIBRATION_OPTIONS, calibrationRequest, runtime } from '../args';
import { defineCommand, print, RUNTIME_OPTIONS, singlePositional, timed, withProgress } from '../command';

export const scores = defineCommand({
  synopsis: ['[MODEL] [--calib FILE] [--nsamples 128] [--seqlen 256] [--seed 0] [--provider cpu] [--threads N] [--json]'],
  summary: 'Importance scores of every layer and head on calibration text, for structured pruning.',
  details: `BI (block influence: 1 - cosine between a block's input and output) for each block and its attention
and MLP halves, perplexity on the calibration windows without each block, and each head's output
change when it is removed.`,
  options: { ...CALIBRATION_OPTIONS, ...RUNTIME_OPTIONS },
  async run({ values, positionals }, ctx) {
    const options = { model: singlePositional(positionals, 'MODEL'), calibration: calibrationRequest(values), runtime: runtime(values) };
    const { result, seconds } = await timed(() => withProgress(ctx, (control) => scoreModel({ ...options, ...control })));
    print(ctx, { ...result, seconds }, formatScores(result, seconds));
  },
});

function formatScores(s: StructuredScores, seconds: number): string {
  const f = (v: number) => v.toExponential(2);
  const lines = [`dense perplexity ${s.densePpl.toFixed(3)} on ${s.pplWindows} calibration windows`, '', 'layer  BI      attn BI  mlp BI   ppl without  head output change (per head)'];
  for (const l of s.layers) {
    lines.push(
      `${String(l.layer).padEnd(7)}${l.block.influence.toFixed(4).padEnd(8)}${l.block.attentionInfluence.toFixed(4).padEnd(9)}${l.block.mlpInfluence.toFixed(4).padEnd(9)}${l.block.pplWithout.toFixed(2).padEnd(13)}${l.heads.output.map(f).join(' ')}`,
    );
  }
  lines.push('', `time ${seconds.toFixed(1)} s in all, loading and tokenizing included`);
  return lines.join('\n');
}
