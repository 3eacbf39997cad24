import { OpRegistry } from '../graph/op-registry';
import type { RuntimeSettings } from '../graph/session';
import { Checkpoint } from '../io/checkpoint';
import { DTYPE_BYTES } from '../io/dtype';
import { DecoderRunner } from './decoder-runner';
import { TextTokenizer } from '../text/tokenizer';
import { freemem } from 'node:os';
import { checkMemoryFits, describePrediction, formatBytes, predictPeakMemory, type MemoryJob, type MemoryPrediction } from '../memory-plan';
import type { RunControl } from '../progress';
import type { ModelConfig } from './config';

/** What a job (evaluation, generation, pruning, planning) holds open for its whole run. */
export interface ModelSession {
  checkpoint: Checkpoint;
  tokenizer: TextTokenizer;
  runner: DecoderRunner;
  ops: OpRegistry;
  runtime: RuntimeSettings;
  /** The peak memory predicted before anything was loaded, when the job described itself. */
  memory?: MemoryPrediction;
}

/** A job's description of what it will run, from the config alone, so its peak memory is known before any weight is read. */
export interface MemoryRequest {
  job(cfg: ModelConfig): MemoryJob;
  onProgress?: RunControl['onProgress'];
}

/**
 * Opens a checkpoint with its tokenizer, runner and op registry for `job`, and closes them all after,
 * whatever happens. With `memory`, the run's peak is predicted from the config, shown, and a run that
 * cannot fit in the memory available is refused before the embeddings are read.
 */
export async function withModelSession<T>(model: string, runtime: RuntimeSettings, job: (session: ModelSession) => Promise<T>, memory?: MemoryRequest): Promise<T> {
  const checkpoint = await Checkpoint.open(model);
  try {
    const prediction = memory && predictPeakMemory(checkpoint.config, DTYPE_BYTES[checkpoint.dtype], memory.job(checkpoint.config));
    if (prediction) {
      const available = freemem();
      memory!.onProgress?.({ type: 'memory', message: `${describePrediction(prediction)} of ${formatBytes(available)} available`, predictedBytes: prediction.peakBytes, availableBytes: available });
      checkMemoryFits(prediction, available);
    }
    const tokenizer = await TextTokenizer.load(checkpoint.dir);
    const runner = await DecoderRunner.create(checkpoint, runtime);
    const ops = new OpRegistry(runtime);
    try {
      return await job({ checkpoint, tokenizer, runner, ops, runtime, memory: prediction });
    } finally {
      await Promise.all([ops.release(), runner.release()]);
    }
  } finally {
    await checkpoint.close();
  }
}
