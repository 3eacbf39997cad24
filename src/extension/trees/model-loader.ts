import { promises as fs } from 'node:fs';
import * as path from 'node:path';
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
  const text = await fs.readFile(file, 'utf8').catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return undefined;
    throw new PruneLensError('output', `cannot read: ${err.message}`, file);
  });
  if (text === undefined) return undefined;
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new PruneLensError('output', `invalid JSON: ${(err as Error).message}`, file);
  }
  const scores = raw as Partial<StructuredScores> | null;
  if (!Array.isArray(scores?.layers) || typeof scores.densePpl !== 'number' || typeof scores.calibration !== 'object') {
    throw new PruneLensError('output', 'not PruneLens scores (layers, densePpl, calibration)', file);
  }
  return raw as StructuredScores;
}
