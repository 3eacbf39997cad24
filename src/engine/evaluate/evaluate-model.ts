import { statSync } from 'node:fs';
import { peakRssMb } from '../memory';
import { evaluationWindowsAtMost } from '../memory-plan';
import { withModelSession } from '../model/model-session';
import type { RuntimeSettings } from '../graph/session';
import type { RunControl } from '../progress';
import { encodeText } from '../text/encode-text';
import { readTextFile } from '../text/text-file';
import { checkTokenIds } from '../model/config';
import { evaluatePerplexity, warnIfDegenerate, type PerplexityResult } from './perplexity';

export interface EvaluateModelOptions extends RunControl {
  model: string;
  textFile: string;
  seqlen: number;
  maxWindows?: number;
  runtime: RuntimeSettings;
}

export interface EvaluateModelResult extends PerplexityResult {
  model: string;
  textFile: string;
  tokenizer: string;
  provider: string;
  peakRssMb: number;
  /** What was predicted before the model was loaded (see memory-plan.ts). */
  predictedPeakMb: number;
  /** Token ids of the evaluated windows, aligned with tokenNll (each window's first token has no loss). */
  windowIds: Int32Array;
}

/** Perplexity of a checkpoint on a text file: the whole job behind `prunelens eval`. */
export async function evaluateModel(options: EvaluateModelOptions): Promise<EvaluateModelResult> {
  const textBytes = statSync(options.textFile, { throwIfNoEntry: false })?.size ?? 0;
  const memory = { job: () => ({ evalWindows: evaluationWindowsAtMost(textBytes, options.seqlen, options.maxWindows), evalSeqlen: options.seqlen }), onProgress: options.onProgress };
  return withModelSession(options.model, options.runtime, async ({ checkpoint, tokenizer, runner, memory: predicted }) => {
    const ids = await encodeText(tokenizer, await readTextFile(options.textFile), { ...options, source: options.textFile });
    checkTokenIds(ids, checkpoint.config, options.textFile);
    options.log?.info(`${options.textFile}: ${ids.length} tokens (${tokenizer.source})`);
    const result = await evaluatePerplexity(runner, checkpoint, ids, { ...options, source: options.textFile });
    warnIfDegenerate(result, checkpoint.config, 'the model', options);
    return {
      ...result,
      model: checkpoint.dir,
      textFile: options.textFile,
      tokenizer: tokenizer.source,
      provider: options.runtime.provider,
      peakRssMb: peakRssMb(),
      predictedPeakMb: predicted!.peakBytes / 2 ** 20,
      windowIds: ids.subarray(0, result.tokens),
    };
  }, memory);
}
