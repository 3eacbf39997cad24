import { OpRegistry } from '../graph/op-registry';
import type { RuntimeSettings } from '../graph/session';
import { Checkpoint } from '../io/checkpoint';
import { DecoderRunner } from './decoder-runner';
import { TextTokenizer } from '../text/tokenizer';

/** What a job (evaluation, generation, pruning, planning) holds open for its whole run. */
export interface ModelSession {
  checkpoint: Checkpoint;
  tokenizer: TextTokenizer;
  runner: DecoderRunner;
  ops: OpRegistry;
  runtime: RuntimeSettings;
}

/** Opens a checkpoint with its tokenizer, runner and op registry for `job`, and closes them all after, whatever happens. */
export async function withModelSession<T>(model: string, runtime: RuntimeSettings, job: (session: ModelSession) => Promise<T>): Promise<T> {
  const checkpoint = await Checkpoint.open(model);
  try {
    const tokenizer = await TextTokenizer.load(checkpoint.dir);
    const runner = await DecoderRunner.create(checkpoint, runtime);
    const ops = new OpRegistry(runtime);
    try {
      return await job({ checkpoint, tokenizer, runner, ops, runtime });
    } finally {
      await Promise.all([ops.release(), runner.release()]);
    }
  } finally {
    await checkpoint.close();
  }
}
