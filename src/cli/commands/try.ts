import { tryRun, TRY_TOKENS, type TryRunResult } from '../../engine/llamacpp/try-run';
import { defineCommand, print, singlePositional, table, withProgress } from '../command';

export const tryCommand = defineCommand({
  synopsis: ['RUN --prompt TEXT [--tokens 64] [--type f32|f16|bf16|q8_0] [--json]'],
  summary: 'Continue a prompt in llama.cpp with a pruned run and the dense model it came from, side by side.',
  details: `Both models run from GGUF files (exported into the cache, keyed by their weights' hash, when
not there yet) in llama.cpp through the optional node-llama-cpp package, greedily, so the two texts
differ only by what pruning did to the weights.`,
  options: {
    prompt: { type: 'string', arg: 'TEXT', default: 'Once upon a time', help: 'the text both models continue' },
    tokens: { type: 'string', arg: 'N', range: { integer: true, min: 1, max: 4096 }, default: TRY_TOKENS, help: 'new tokens to generate' },
    type: { type: 'string', arg: 'f32|f16|bf16|q8_0', default: 'f16', help: 'the GGUF type both models run at' },
  },
  async run({ values, positionals }, ctx) {
    const options = { model: singlePositional(positionals, 'RUN'), prompt: values.prompt, maxTokens: values.tokens, type: values.type };
    const result = await withProgress(ctx, (control) => tryRun({ ...options, ...control }));
    print(ctx, result, formatTry(result));
  },
});

function formatTry(r: TryRunResult): string {
  const line = (side: TryRunResult['dense']): string => `${r.prompt}${side.text}`.replace(/\n/g, ' ');
  const figures = (side: TryRunResult['dense']): string => `${side.tokens} tokens, ${side.tokensPerSecond.toFixed(0)} tokens/s`;
  return table([
    ['dense', line(r.dense)],
    ['', figures(r.dense)],
    ['pruned', line(r.pruned)],
    ['', figures(r.pruned)],
    ['ran in', `${r.runtime}, ${r.type}, greedy`],
  ]);
}
