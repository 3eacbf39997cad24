import { expertStatsOf, type ExpertStats } from '../../engine/experts/expert-stats';
import { CALIBRATION_OPTIONS, calibrationRequest, runtime } from '../args';
import { defineCommand, print, RUNTIME_OPTIONS, singlePositional, timed, withProgress } from '../command';

export const experts = defineCommand({
  synopsis: ['[MODEL] [--calib FILE] [--nsamples 128] [--seqlen 256] [--seed 0] [--provider cpu] [--threads N] [--json]'],
  summary: 'Routing statistics of every expert of a mixture-of-experts model on calibration text.',
  details: `Per layer and expert, over the calibration tokens: how often it is routed to (share of tokens),
its mean routing weight when routed, and its REAP score (mean over its routed tokens of routing
weight x the L2 norm of its output), which prune --structured experts removes the lowest of.`,
  options: { ...CALIBRATION_OPTIONS, ...RUNTIME_OPTIONS },
  async run({ values, positionals }, ctx) {
    const options = { model: singlePositional(positionals, 'MODEL'), calibration: calibrationRequest(values), runtime: runtime(values) };
    const { result, seconds } = await timed(() => withProgress(ctx, (control) => expertStatsOf({ ...options, ...control })));
    const { peakRssMb, predictedPeakMb, ...stats } = result;
    print(ctx, { ...stats, seconds, peak_rss_mb: peakRssMb, predicted_peak_mb: predictedPeakMb }, formatExperts(result, seconds));
  },
});

function formatExperts(s: ExpertStats & { peakRssMb: number; predictedPeakMb: number }, seconds: number): string {
  const lines = [`${s.experts} experts, top-${s.topK}, ${s.tokens} calibration tokens (${s.calibration.nsamples} x ${s.calibration.seqlen} from ${s.calibration.file})`];
  for (const l of s.layers) {
    lines.push('', `layer ${l.layer}`, 'expert  routed   mean weight  REAP');
    l.experts.forEach((e, j) => lines.push(`${String(j).padEnd(8)}${`${(100 * e.frequency).toFixed(1)}%`.padEnd(9)}${e.meanWeight.toFixed(4).padEnd(13)}${e.reap.toFixed(4)}`));
  }
  lines.push('', `time ${seconds.toFixed(1)} s in all, loading and tokenizing included; peak memory ${s.peakRssMb.toFixed(0)} MiB (${s.predictedPeakMb.toFixed(0)} MiB predicted)`);
  return lines.join('\n');
}
