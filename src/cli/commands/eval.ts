import { SAMPLE_EVALUATION_TEXT } from '../../engine/embedded';
import { evaluateModel, type EvaluateModelResult } from '../../engine/evaluate/evaluate-model';
import { positiveInt, runtime } from '../args';
import { parse, print, RUNTIME_OPTIONS, singlePositional, table, withProgress, type Command } from '../command';
import { count } from '../format';

export const evaluate: Command = {
  usage: 'prunelens eval [MODEL] [--text FILE] [--seqlen 256] [--max-windows K] [--provider cpu|webgpu|cuda] [--threads N] [--json]',
  async run(args, ctx) {
    const { values, positionals } = parse(args, { ...RUNTIME_OPTIONS, text: { type: 'string' }, seqlen: { type: 'string' }, 'max-windows': { type: 'string' } });
    const options = {
      model: singlePositional(positionals, 'MODEL'),
      textFile: values.text ?? SAMPLE_EVALUATION_TEXT,
      seqlen: positiveInt(values.seqlen, '--seqlen') ?? 256,
      maxWindows: positiveInt(values['max-windows'], '--max-windows'),
      runtime: runtime(values),
    };
    const result = await withProgress(ctx, (control) => evaluateModel({ ...options, ...control }));
    print(ctx, evalJson(result), formatEval(result));
  },
};

/** The `--json` object: the figures, not the per-token arrays. */
function evalJson(r: EvaluateModelResult): Record<string, unknown> {
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
    seconds: r.seconds,
    tokens_per_second: r.tokens / r.seconds,
    peak_rss_mb: r.peakRssMb,
  };
}

function formatEval(r: EvaluateModelResult): string {
  return table([
    ['model', r.model],
    ['text', `${r.textFile}: ${count(r.textTokens)} tokens`],
    ['windows', `${r.windows} x ${r.seqlen} tokens (${count(r.textTokens - r.tokens)} tokens of the text not scored)`],
    ['perplexity', `${r.ppl.toFixed(4)}  (mean NLL ${r.nll.toFixed(4)} nats over ${count(r.targets)} targets)`],
    ['speed', `${count(Math.round(r.tokens / r.seconds))} tokens/s on ${r.provider}, ${r.seconds.toFixed(2)} s`],
    ['peak memory', `${r.peakRssMb.toFixed(0)} MiB resident`],
  ]);
}
