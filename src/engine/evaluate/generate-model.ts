import type { RuntimeSettings } from '../graph/session';
import { peakRssMb } from '../memory';
import { withModelSession } from '../model/model-session';
import type { RunControl } from '../progress';
import { generate } from './generate';

export interface GenerateModelOptions extends RunControl {
  model: string;
  prompt: string;
  newTokens: number;
  runtime: RuntimeSettings;
}

export interface GenerateModelResult {
  model: string;
  provider: string;
  /** The prompt and its continuation, decoded together so the tokenizer joins them as it would any text. */
  text: string;
  /** The prompt's ids (BOS included) followed by the generated ones. */
  ids: Int32Array;
  promptTokens: number;
  newTokens: number;
  seconds: number;
  tokensPerSecond: number;
  peakRssMb: number;
}

/** Greedy continuation of a prompt by a checkpoint: the whole job behind `prunelens generate`. */
export async function generateFromModel(options: GenerateModelOptions): Promise<GenerateModelResult> {
  return withModelSession(options.model, options.runtime, async ({ checkpoint, tokenizer, runner }) => {
    const prompt = tokenizer.encode(options.prompt);
    const result = await generate(runner, checkpoint, prompt, options.newTokens, options);
    return {
      model: checkpoint.dir,
      provider: options.runtime.provider,
      text: tokenizer.decode(result.ids),
      ids: result.ids,
      promptTokens: prompt.length,
      newTokens: options.newTokens,
      seconds: result.seconds,
      tokensPerSecond: result.tokensPerSecond,
      peakRssMb: peakRssMb(),
    };
  });
}
