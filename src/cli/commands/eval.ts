import { evaluateModel, type EvaluateModelResult } from '../../engine/evaluate/evaluate-model';
import type { RunControl } from '../../engine/progress';
import type { RuntimeSettings } from '../../engine/graph/session';
import { count } from '../format';

export interface EvalArgs {
  model: string;
  textFile: string;
  seqlen: number;
  maxWindows?: number;
  runtime: RuntimeSettings;
}

export function evaluate(args: EvalArgs, control: RunControl): Promise<EvaluateModelResult> {
  return evaluateModel({ ...args, ...control });
}

/** The `--json` object: the figures, not the per-token arrays. */
export function evalJson(r: EvaluateModelResult): Record<string, unknown> {
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

export function formatEval(r: EvaluateModelResult): string {
  return [
    ['model', r.model],
    ['text', `${r.textFile}: ${count(r.textTokens)} tokens`],
    ['windows', `${r.windows} x ${r.seqlen} tokens (${count(r.textTokens - r.tokens)} tail tokens not scored)`],
    ['perplexity', `${r.ppl.toFixed(4)}  (mean NLL ${r.nll.toFixed(4)} nats over ${count(r.targets)} targets)`],
    ['speed', `${count(Math.round(r.tokens / r.seconds))} tokens/s on ${r.provider}, ${r.seconds.toFixed(2)} s`],
    ['peak memory', `${r.peakRssMb.toFixed(0)} MiB resident`],
  ]
    .map(([k, v]) => `${k!.padEnd(13)}${v}`)
    .join('\n');
}
