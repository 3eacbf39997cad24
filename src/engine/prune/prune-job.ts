import { totalmem } from 'node:os';
import type { CalibrationRequest } from '../calibrate/calibration-data';
import { PruneLensError } from '../errors';
import { evaluateStage, warnIfDegenerate, type PerplexityResult } from '../evaluate/perplexity';
import { RECORD_FILE, type OutputFolder } from '../export/output-folder';
import type { TokenLossPair } from '../export/report';
import { writeRunTokenLosses } from '../export/token-losses';
import type { Checkpoint } from '../io/checkpoint';
import { WRITABLE_DTYPES } from '../io/dtype';
import { blockTensorNames, type ModelConfig } from '../model/config';
import { DecoderRunner } from '../model/decoder-runner';
import type { ModelSession } from '../model/model-session';
import { throwIfCancelled, type RunControl } from '../progress';

/*
 * The frame every prune job shares, unstructured (prune-model.ts) and structured
 * (structured-prune.ts): the checks made before any work, the dense evaluation, and the end, where
 * the written model is read back and evaluated, prunelens.json, the report and the per-token losses
 * are written, and the output is committed. Each job supplies only what it prunes and records.
 */

export interface EvaluationRequest {
  file: string;
  seqlen: number;
  maxWindows?: number;
}

/** An evaluation text as a job holds it: the request, the text and its token ids. */
export interface EvaluationText {
  request: EvaluationRequest;
  text: string;
  ids: Int32Array;
}

/** Pruned blocks are written in the source's dtype; refuse, before any work, one that cannot be written. */
export function checkWritable(checkpoint: Checkpoint): void {
  for (const name of blockTensorNames(checkpoint.config)) {
    const { dtype } = checkpoint.entry(name);
    if (!WRITABLE_DTYPES.includes(dtype)) {
      throw new PruneLensError(
        'checkpoint',
        `tensor "${name}" is ${dtype}; pruning computes in float32 and writes ${WRITABLE_DTYPES.join(', ')} only, so a ${dtype} checkpoint would silently lose precision. Convert it to F32 first`,
        checkpoint.files.find((f) => checkpoint.tensorsIn(f).some((e) => e.name === name)),
      );
    }
  }
}

/** The calibration hidden states (nsamples x seqlen x hidden floats) must fit in memory: an absurd request is a usage error. Returns their bytes. */
export function checkCalibrationMemory(request: CalibrationRequest, cfg: ModelConfig): number {
  const bytes = request.nsamples * request.seqlen * cfg.hiddenSize * 4;
  if (bytes > totalmem() / 2) {
    throw new PruneLensError(
      'usage',
      `--nsamples ${request.nsamples} x --seqlen ${request.seqlen} needs ${(bytes / 2 ** 30).toFixed(1)} GiB of calibration hidden states (hidden size ${cfg.hiddenSize}), more than half of this machine's ${(totalmem() / 2 ** 30).toFixed(1)} GiB; use fewer samples or a shorter seqlen`,
    );
  }
  return bytes;
}

/**
 * The source model's perplexity on the evaluation text, with a warning when it is no better than
 * guessing. An evaluation the caller made earlier (the extension keeps one per model, text and
 * seqlen) is used instead of evaluating again, if it is one of this text at this seqlen.
 */
export async function evaluateDense(session: ModelSession, evaluation: EvaluationText, control: RunControl, earlier?: PerplexityResult): Promise<PerplexityResult> {
  const dense = earlier ? checkedDense(earlier, evaluation) : await evaluateStage('evaluate dense', session.runner, session.checkpoint, evaluation.ids, evaluation.request, control);
  warnIfDegenerate(dense, session.checkpoint.config, 'the dense model', control);
  return dense;
}

/** A dense evaluation made earlier, if it is one of this text at this seqlen (the windows it would cut). */
function checkedDense(dense: PerplexityResult, { ids, request }: EvaluationText): PerplexityResult {
  const windows = Math.min(Math.floor(ids.length / request.seqlen), request.maxWindows ?? Infinity);
  if (dense.seqlen !== request.seqlen || dense.textTokens !== ids.length || dense.windows !== windows || dense.tokenNll.length !== windows * (request.seqlen - 1)) {
    throw new PruneLensError(
      'usage',
      `the given dense evaluation (${dense.windows} windows of ${dense.seqlen}, ${dense.textTokens} text tokens) is not one of this text (${windows} windows of ${request.seqlen}, ${ids.length} tokens)`,
      request.file,
    );
  }
  return dense;
}

export interface JobEnd<R> {
  output: OutputFolder;
  session: ModelSession;
  evaluation?: EvaluationText;
  dense?: PerplexityResult;
  /** The written model's tensors have other shapes than the source's (structured), so it needs its own runner. */
  reshaped?: boolean;
  /** The record, from the weights as written and the pruned evaluation. */
  record(written: Checkpoint, pruned: PerplexityResult | undefined): R | Promise<R>;
  /** The report's files for the record (the per-token losses when both models were evaluated). */
  report(record: R, losses: TokenLossPair | undefined): [name: string, content: string][];
}

/**
 * The end of every prune job, once the blocks are written: the weights are finished and opened
 * again, the written model is evaluated, and the record, the report and the per-token losses go
 * into the partial folder before it is committed. A cancel is honoured up to the commit.
 */
export async function finishJob<R>(end: JobEnd<R>, control: RunControl): Promise<R> {
  const { output, session, evaluation, dense } = end;
  await output.finishWeights();
  const written = await output.openWritten();
  try {
    const pruned = evaluation ? await evaluateWritten(written, end, evaluation, control) : undefined;
    if (pruned) warnIfDegenerate(pruned, written.config, 'the pruned model', control);
    const record = await end.record(written, pruned);
    await output.writeFile(RECORD_FILE, `${JSON.stringify(record, null, 2)}\n`);
    for (const [name, content] of end.report(record, dense && pruned ? { dense: dense.tokenNll, pruned: pruned.tokenNll } : undefined)) {
      await output.writeFile(name, content);
    }
    if (evaluation && dense && pruned) {
      const { file, seqlen } = evaluation.request;
      await writeRunTokenLosses(output.partial, { tokenizer: session.tokenizer, text: evaluation.text, file, ids: evaluation.ids, seqlen }, dense, pruned, control);
    }
    await written.close();
    // The last moment a cancel is honoured; once the commit starts it completes.
    throwIfCancelled(control.signal);
    await output.commit();
    return record;
  } finally {
    await written.close();
  }
}

async function evaluateWritten<R>(written: Checkpoint, end: JobEnd<R>, evaluation: EvaluationText, control: RunControl): Promise<PerplexityResult> {
  const runner = end.reshaped ? await DecoderRunner.create(written, end.session.runtime) : end.session.runner;
  try {
    return await evaluateStage('evaluate pruned', runner, written, evaluation.ids, evaluation.request, control);
  } finally {
    if (runner !== end.session.runner) await runner.release();
  }
}
