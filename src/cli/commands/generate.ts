import { generateFromModel, type GenerateModelResult } from '../../engine/evaluate/generate-model';
import { positiveInt, runtime } from '../args';
import { parse, print, RUNTIME_OPTIONS, singlePositional, table, withProgress, type Command } from '../command';

export const generate: Command = {
  usage: 'prunelens generate [MODEL] [--prompt TEXT] [--tokens 32] [--provider cpu|webgpu|cuda] [--threads N] [--json]',
  async run(args, ctx) {
    const { values, positionals } = parse(args, { ...RUNTIME_OPTIONS, prompt: { type: 'string' }, tokens: { type: 'string' } });
    const options = {
      model: singlePositional(positionals, 'MODEL'),
      prompt: values.prompt ?? 'Once upon a time',
      newTokens: positiveInt(values.tokens, '--tokens') ?? 32,
      runtime: runtime(values),
    };
    const result = await withProgress(ctx, (control) => generateFromModel({ ...options, ...control }));
    print(ctx, generateJson(result), formatGenerate(result));
  },
};

function generateJson(r: GenerateModelResult): Record<string, unknown> {
  return {
    text: r.text,
    prompt_tokens: r.promptTokens,
    new_tokens: r.newTokens,
    seconds: r.seconds,
    tokens_per_second: r.tokensPerSecond,
    peak_rss_mb: r.peakRssMb,
  };
}

function formatGenerate(r: GenerateModelResult): string {
  return table([
    ['model', r.model],
    ['text', r.text],
    ['tokens', `${r.promptTokens} of prompt, ${r.newTokens} generated greedily`],
    ['speed', `${r.tokensPerSecond.toFixed(1)} tokens/s on ${r.provider} (full recompute per token), ${r.seconds.toFixed(2)} s`],
    ['peak memory', `${r.peakRssMb.toFixed(0)} MiB resident`],
  ]);
}
