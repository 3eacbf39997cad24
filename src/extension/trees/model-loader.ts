import * as path from 'node:path';
import { readOptionalJson } from '../read-json';
import { PruneLensError } from '../../engine/errors';
import { Checkpoint } from '../../engine/io/checkpoint';
import { describeModel } from '../../engine/model/describe';
import type { StructuredScores } from '../../engine/structured/scores';
import { SCORES_FILE } from '../../engine/structured/structured-prune';
import { isStructuredRecord, readOutputRecord } from '../runs/output-record';
import type { ModelOutlineInput } from './model-outline';

/**
 * What the Model view shows of a checkpoint: its summary (config.json and the safetensors headers
 * only, no weights) and, for a PruneLens output, its record and saved scores.
 */
export async function loadModel(location: string): Promise<ModelOutlineInput> {
  const checkpoint = await Checkpoint.open(location);
  let summary;
  try {
    summary = describeModel(checkpoint);
  } finally {
    await checkpoint.close();
  }
  const record = await readOutputRecord(summary.path);
  const scores = await readScores(path.join(summary.path, SCORES_FILE));
  return {
    summary,
    record,
    // structuredPrune scores the source, then writes those scores beside the smaller model.
    scores: scores && { values: scores, measuredOn: record && isStructuredRecord(record) ? 'source' : 'this model' },
  };
}

async function readScores(file: string): Promise<StructuredScores | undefined> {
  const raw = await readOptionalJson(file);
  if (raw === undefined) return undefined;
  const scores = raw as Partial<StructuredScores> | null;
  if (!Array.isArray(scores?.layers) || typeof scores.densePpl !== 'number' || typeof scores.calibration !== 'object') {
    throw new PruneLensError('output', 'not PruneLens scores (layers, densePpl, calibration)', file);
  }
  return raw as StructuredScores;
}
