import * as path from 'node:path';
import * as vscode from 'vscode';
import type { Provider, RuntimeSettings } from '../engine/graph/session';
import { CALIBRATION_DEFAULTS } from '../engine/calibrate/calibration-data';

/** Mirrors the `prunelens.*` settings declared in package.json. */
export interface PruneLensConfig {
  provider: Provider;
  threads: number;
  seqlen: number;
  evaluationText: string;
  calibrationText: string;
  nsamples: number;
  /** "besideModel", or a folder (relative paths are taken from the first workspace folder). */
  outputLocation: string;
}

export function readConfig(): PruneLensConfig {
  const c = vscode.workspace.getConfiguration('prunelens');
  return {
    provider: c.get<Provider>('provider', 'cpu'),
    threads: c.get<number>('threads', 0),
    seqlen: c.get<number>('seqlen', CALIBRATION_DEFAULTS.seqlen),
    evaluationText: c.get<string>('evaluationText', ''),
    calibrationText: c.get<string>('calibrationText', ''),
    nsamples: c.get<number>('nsamples', CALIBRATION_DEFAULTS.nsamples),
    outputLocation: c.get<string>('outputLocation', 'besideModel'),
  };
}

/** 0 threads means "let ONNX Runtime use every core", which the engine expresses as no setting. */
export function runtimeOf(config: PruneLensConfig): RuntimeSettings {
  return { provider: config.provider, threads: config.threads || undefined };
}

/** The first workspace folder, where relative paths in settings start. */
export function workspaceHome(): string | undefined {
  return vscode.workspace.workspaceFolders?.[0]?.uri.fsPath;
}

/** A file setting as an absolute path, or `fallback` when the setting is empty. */
export function settingPath(value: string, fallback: string): string {
  if (value === '') return fallback;
  return path.resolve(workspaceHome() ?? '', value);
}
