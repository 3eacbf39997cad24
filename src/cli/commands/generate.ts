import { generateFromModel, type GenerateModelResult } from '../../engine/evaluate/generate-model';
import { runtime } from '../args';
import { defineCommand, print, RUNTIME_OPTIONS, singlePositional, table, timed, withProgress } from '../command';

export const generate = defineCommand({
  synopsis: ['[MODEL] [--prompt TEXT] [--tokens 32] [--provider cpu|webgpu|cuda] [--threads N] [--json]'],
  summary: 'Continue a prompt greedily, to see what a (pruned) model still says.',
  details: `Greedy decoding that recomputes the whole sequence for every new token (no key/value cache): a
quick look at a model, not a serving speed. The time reported covers the whole run, loading and
tokenizing included; tokens/s counts the decoding only.`,
  options: {
    prompt: { type: 'string', arg: 'TEXT', default: 'Once upon a time', help: 'the text to continue' },
    tokens: { type: 'string', arg: 'N', range: { integer: true, min: 1, max: 4096 }, default: 32, help: 'new tokens to generate' },
    ...RUNTIME_OPTIONS,
  },
  async run({ values, positionals }, ctx) {
    const options = { model: singlePositional(positionals, 'MODEL'), prompt: values.prompt, newTokens: values.tokens, runtime: runtime(values) };
    const { result, seconds } = await timed(() => withProgress(ctx, (control) => generateFromModel({ ...options, ...control })));
    print(ctx, generateJson(result, seconds), formatGenerate(result, seconds));
  },
});

function generateJson(r: GenerateModelResult, seconds: number): Record<string, unknown> {
  return {
    model: r.model,
    text: r.text,
    prompt_tokens: r.promptTokens,
    new_tokens: r.newTokens,
    seconds,
    generate_seconds: r.seconds,
    tokens_per_second: r.tokensPerSecond,
    peak_rss_mb: r.peakRssMb,
  };
}

function formatGenerate(r: GenerateModelResult, seconds: number): string {
  return table([
    ['model', r.model],
    ['text', r.text],
    ['tokens', `${r.promptTokens} of prompt, ${r.newTokens} generated greedily`],
    ['speed', `${r.tokensPerSecond.toFixed(1)} tokens/s on ${r.provider} (full recompute per token, ${r.seconds.toFixed(2)} s)`],
    ['time', `${seconds.toFixed(2)} s in all, loading and tokenizing included`],
    ['peak memory', `${r.peakRssMb.toFixed(0)} MiB resident`],
  ]);
}
