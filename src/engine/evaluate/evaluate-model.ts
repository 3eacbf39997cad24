import { Checkpoint } from '../io/checkpoint';
import { peakRssMb } from '../memory';
import { DecoderRunner } from '../model/decoder-runner';
import type { RuntimeSettings } from '../graph/session';
import type { RunControl } from '../progress';
import { readTextFile } from '../text/text-file';
import { TextTokenizer } from '../text/tokenizer';
import { evaluatePerplexity, type PerplexityResult } from './perplexity';

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
  /** Token ids of the evaluated windows, aligned with tokenNll (each window's first token has no loss). */
  windowIds: Int32Array;
}

/** Perplexity of a checkpoint on a text file: the whole job behind `prunelens eval`. */
export async function evaluateModel(options: EvaluateModelOptions): Promise<EvaluateModelResult> {
  const checkpoint = await Checkpoint.open(options.model);
  try {
    const tokenizer = await TextTokenizer.load(checkpoint.dir);
    const ids = tokenizer.encode(await readTextFile(options.textFile));
    options.log?.info(`${options.textFile}: ${ids.length} tokens (${tokenizer.source})`);
    const runner = await DecoderRunner.create(checkpoint, options.runtime);
    try {
      const result = await evaluatePerplexity(runner, checkpoint, ids, { ...options, source: options.textFile });
      return {
        ...result,
        model: checkpoint.dir,
        textFile: options.textFile,
        tokenizer: tokenizer.source,
        provider: options.runtime.provider,
        peakRssMb: peakRssMb(),
        windowIds: ids.subarray(0, result.tokens),
      };
    } finally {
      await runner.release();
    }
  } finally {
    await checkpoint.close();
  }
}
