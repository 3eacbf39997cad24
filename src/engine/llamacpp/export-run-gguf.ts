/**
 * A run exported to GGUF and, when asked, measured against its dense model in llama.cpp: the dense
 * model (named by the run's prunelens.json) is exported at the same type into the GGUF cache, both are
 * measured, and the savings go into the run's prunelens.json (`gguf`) and its report. Everything that
 * could refuse the job is checked before the first byte is written.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { PruneLensError } from '../errors';
import { GGUF_ARCHITECTURES, GGUF_MODEL_TYPES } from '../export/gguf/architectures';
import { exportGguf, type ExportGgufOptions, type ExportGgufResult } from '../export/gguf/export-gguf';
import { isGgufType, GGUF_TYPES, type GgufType } from '../export/gguf/ggml-types';
import { MANIFEST_FILE, type Manifest } from '../export/output-paths';
import { RECORD_FILE } from '../export/output-folder';
import { REPORT_FILE } from '../export/report';
import { writeDurably } from '../export/resume-journal';
import { SAMPLE_EVALUATION_TEXT } from '../embedded';
import { cachedGguf } from './gguf-cache';
import { loadLlama } from './llama-client';
import { measureSavings, SAVINGS_HEADING, savingsSection, type GgufSavings } from './gguf-savings';

/** What prunelens.json keeps of a measured GGUF export. */
export interface GgufExportNote {
  file: string;
  type: GgufType;
  bytes: number;
  savings: GgufSavings;
}

export interface ExportRunGgufOptions extends ExportGgufOptions {
  /** Measure the exported file against the dense model in llama.cpp and record the savings in the run. */
  measure?: boolean;
  /** Text whose tokens make the timed prompt (default: the bundled evaluation text). */
  textFile?: string;
}

export interface ExportRunGgufResult {
  export: ExportGgufResult;
  savings?: GgufSavings;
}

export async function exportRunGguf(options: ExportRunGgufOptions): Promise<ExportRunGgufResult> {
  if (!options.measure) return { export: await exportGguf(options) };
  if (!isGgufType(options.type)) throw new PruneLensError('usage', `--type must be one of ${GGUF_TYPES.join(', ')}; got "${options.type}"`);
  const dense = await denseModelOf(options.model);
  const textFile = options.textFile ?? SAMPLE_EVALUATION_TEXT;
  const text = await fs.readFile(textFile, 'utf8').catch((err: Error) => {
    throw new PruneLensError('text', `cannot read the text: ${err.message}`, textFile);
  });
  const control = { signal: options.signal, onProgress: options.onProgress, log: options.log };
  // llama.cpp first: when it cannot start, nothing is exported for nothing.
  const llama = await loadLlama();
  try {
    const result = await exportGguf(options);
    const denseGguf = await cachedGguf(dense, result.type, control);
    const savings = await measureSavings(llama, { dense: denseGguf.file, pruned: result.out }, result.type, text, control);
    await recordSavings(options.model, { file: result.out, type: result.type, bytes: result.bytes, savings });
    return { export: result, savings };
  } finally {
    await llama.dispose();
  }
}

/** An architecture llama.cpp has no GGUF mapping for, refused before anything is asked or written (exportGguf checks again). */
export async function refuseUnsupportedArchitecture(model: string): Promise<void> {
  const file = path.join(model, 'config.json');
  const text = await fs.readFile(file, 'utf8').catch((err: Error) => {
    throw new PruneLensError('config', `cannot read: ${err.message}`, file);
  });
  let type: string;
  try {
    type = String((JSON.parse(text) as { model_type?: unknown }).model_type);
  } catch (err) {
    throw new PruneLensError('config', `invalid JSON: ${(err as Error).message}`, file);
  }
  if (!GGUF_ARCHITECTURES[type]) throw new PruneLensError('architecture', `model_type "${type}" cannot be exported to GGUF yet; supported: ${GGUF_MODEL_TYPES.join(', ')}`, file);
}

/** The dense model a run was pruned from, as its prunelens.json names it; refused when there is none to compare with. */
export async function denseModelOf(run: string): Promise<string> {
  const file = path.join(run, RECORD_FILE);
  const text = await fs.readFile(file, 'utf8').catch(() => undefined);
  if (text === undefined) throw new PruneLensError('usage', `not a PruneLens run (no ${RECORD_FILE}), so there is no dense model to compare with`, run);
  const source = (JSON.parse(text) as { source?: { path?: unknown } }).source?.path;
  if (typeof source !== 'string') throw new PruneLensError('checkpoint', 'names no source model (source.path)', file);
  if (!(await fs.stat(path.join(source, 'config.json')).then(() => true, () => false))) {
    throw new PruneLensError('checkpoint', `the dense model this run was pruned from is gone (${source})`, file);
  }
  return source;
}

/**
 * Writes the savings into the run's prunelens.json and report (a later export replaces the section),
 * then the manifest's sizes for both, so the folder still reads as an output PruneLens wrote.
 */
async function recordSavings(run: string, note: GgufExportNote): Promise<void> {
  const recordFile = path.join(run, RECORD_FILE);
  const record = JSON.parse(await fs.readFile(recordFile, 'utf8')) as Record<string, unknown>;
  await writeDurably(recordFile, `${JSON.stringify({ ...record, gguf: note }, null, 2)}\n`);
  const reportFile = path.join(run, REPORT_FILE);
  const report = await fs.readFile(reportFile, 'utf8').catch(() => undefined);
  if (report !== undefined) {
    const start = report.indexOf(`\n${SAVINGS_HEADING}\n`);
    const next = start < 0 ? -1 : report.indexOf('\n## ', start + 1);
    const kept = start < 0 ? report.trimEnd() : `${report.slice(0, start)}${next < 0 ? '' : report.slice(next)}`.trimEnd();
    await writeDurably(reportFile, `${kept}\n\n${savingsSection(note.savings, note.file).join('\n')}`);
  }
  await updateManifest(run, [RECORD_FILE, REPORT_FILE]);
}

async function updateManifest(run: string, names: readonly string[]): Promise<void> {
  const file = path.join(run, MANIFEST_FILE);
  const text = await fs.readFile(file, 'utf8').catch(() => undefined);
  if (text === undefined) return;
  const manifest = JSON.parse(text) as Manifest;
  for (const name of names) {
    const stat = await fs.stat(path.join(run, name)).catch(() => undefined);
    if (stat && Object.hasOwn(manifest.files, name)) manifest.files[name] = stat.size;
  }
  // The manifest lists itself; its size is known once its text is, which depends on the size's digits.
  let out = '';
  for (let size = 0; ; size = Buffer.byteLength(out)) {
    manifest.files[MANIFEST_FILE] = size;
    out = `${JSON.stringify(manifest, null, 2)}\n`;
    if (Buffer.byteLength(out) === size) break;
  }
  await writeDurably(file, out);
}
