import type { StructuredScores } from '../../engine/structured/scores';
import { scoreModel } from '../../engine/structured/structured-prune';
import { calibrationRequest, runtime } from '../args';
import { parse, print, RUNTIME_OPTIONS, singlePositional, withProgress, type Command } from '../command';

export const scores: Command = {
  usage: 'prunelens scores [MODEL] [--calib FILE] [--nsamples 128] [--seqlen 256] [--seed 0] [--provider cpu] [--threads N] [--json]',
  async run(args, ctx) {
    const { values, positionals } = parse(args, { ...RUNTIME_OPTIONS, calib: { type: 'string' }, nsamples: { type: 'string' }, seqlen: { type: 'string' }, seed: { type: 'string' } });
    const options = { model: singlePositional(positionals, 'MODEL'), calibration: calibrationRequest(values), runtime: runtime(values) };
    const result = await withProgress(ctx, (control) => scoreModel({ ...options, ...control }));
    print(ctx, result, formatScores(result));
  },
};

function formatScores(s: StructuredScores): string {
  const f = (v: number) => v.toExponential(2);
  const lines = [`dense perplexity ${s.densePpl.toFixed(3)} on ${s.pplWindows} calibration windows`, '', 'layer  BI      attn BI  mlp BI   ppl without  head output change (per head)'];
  for (const l of s.layers) {
    lines.push(
      `${String(l.layer).padEnd(7)}${l.block.influence.toFixed(4).padEnd(8)}${l.block.attentionInfluence.toFixed(4).padEnd(9)}${l.block.mlpInfluence.toFixed(4).padEnd(9)}${l.block.pplWithout.toFixed(2).padEnd(13)}${l.heads.output.map(f).join(' ')}`,
    );
  }
  return lines.join('\n');
}
