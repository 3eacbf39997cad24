import { SAMPLE_EVALUATION_TEXT } from '../../engine/embedded';
import { evaluateModel, type EvaluateModelResult } from '../../engine/evaluate/evaluate-model';
import { MAX_WINDOWS_OPTION, runtime, SEQLEN_OPTION } from '../args';
import { defineCommand, print, RUNTIME_OPTIONS, singlePositional, table, timed, withProgress } from '../command';
import { count } from '../format';

export const evaluate = defineCommand({
  synopsis: ['[MODEL] [--text FILE] [--seqlen 256] [--max-windows K] [--provider cpu|webgpu|cuda] [--threads N] [--json]'],
  summary: 'Perplexity of a checkpoint on a text (WikiText protocol).',
  details: `The text is tokenized once and cut into non-overlapping windows of --seqlen tokens (the tail is
dropped); each window predicts its seqlen - 1 shifted targets. The time reported covers the whole
run, loading and tokenizing included; tokens/s counts the forward passes only.`,
  options: {
    text: { type: 'string', arg: 'FILE', defaultText: 'the bundled TinyStories evaluation text', help: 'text to evaluate on' },
    ...SEQLEN_OPTION,
    ...MAX_WINDOWS_OPTION,
    ...RUNTIME_OPTIONS,
  },
  async run({ values, positionals }, ctx) {
    const options = {
      model: singlePositional(positionals, 'MODEL'),
      textFile: values.text ?? SAMPLE_EVALUATION_TEXT,
      seqlen: values.seqlen,
      maxWindows: values['max-windows'],
      runtime: runtime(values),
    };
    const { result, seconds } = await timed(() => withProgress(ctx, (control) => evaluateModel({ ...options, ...control })));
    print(ctx, evalJson(result, seconds), formatEval(result, seconds));
  },
});

/** The `--json` object: the figures, not the per-token arrays. */
function evalJson(r: EvaluateModelResult, seconds: number): Record<string, unknown> {
  return {
    model: r.model,
    text: r.textFile,
    tokenizer: r.tokenizer,
    provider: r.provider,
    ppl: r.ppl,
    nll: r.nll,
    tokens: r.tokens,
    targets: r.targets,
    text_tokens: r.textTokens,
    windows: r.windows,
    seqlen: r.seqlen,
    seconds,
    eval_seconds: r.seconds,
    tokens_per_second: r.tokens / r.seconds,
    peak_rss_mb: r.peakRssMb,
    predicted_peak_mb: r.predictedPeakMb,
  };
}

function formatEval(r: EvaluateModelResult, seconds: number): string {
  return table([
    ['model', r.model],
    ['text', `${r.textFile}: ${count(r.textTokens)} tokens`],
    ['windows', `${r.windows} x ${r.seqlen} tokens (${count(r.textTokens - r.tokens)} tokens of the text not scored)`],
    ['perplexity', `${r.ppl.toFixed(4)}  (mean NLL ${r.nll.toFixed(4)} nats over ${count(r.targets)} targets)`],
    ['speed', `${count(Math.round(r.tokens / r.seconds))} tokens/s on ${r.provider} (forward passes, ${r.seconds.toFixed(2)} s)`],
    ['time', `${seconds.toFixed(2)} s in all, loading and tokenizing included`],
    ['peak memory', `${r.peakRssMb.toFixed(0)} MiB resident, ${r.predictedPeakMb.toFixed(0)} MiB predicted`],
  ]);
}
