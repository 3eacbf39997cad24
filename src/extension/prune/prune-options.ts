import * as fs from 'node:fs';
import * as path from 'node:path';
import { RECORD_FILE } from '../../engine/export/output-folder';
import { modelFolderOf } from '../../engine/export/output-name';
import { methods, type Method } from '../../engine/prune/methods';

/** The guided flow's quick-pick items for the methods, from the registry, in its order. */
export function methodItems(): { label: string; description: string; detail: string; value: Method }[] {
  return methods().map((m) => ({ label: m.name, description: m.description, detail: m.detail, value: m.name }));
}

/** "0.5" or "50%"; undefined when the text is neither or lies outside [0, 0.99]. */
export function parseSparsity(text: string): number | undefined {
  const match = /^\s*(\d+(?:\.\d*)?|\.\d+)\s*(%?)\s*$/.exec(text);
  if (!match) return undefined;
  const value = Number(match[1]) / (match[2] ? 100 : 1);
  return value >= 0 && value <= 0.99 ? value : undefined;
}

// Naming is the engine's policy, shared with the CLI.
export { modelFolderOf, pruneOutputName, removalOutputName, structuredOutputName, type PruneTarget } from '../../engine/export/output-name';

export interface OutputPlace {
  model: string;
  /** The `prunelens.outputLocation` setting. */
  outputLocation: string;
  embeddedModel: string;
  /** The first workspace folder, or the extension's storage when none is open. */
  home: string;
}

/** Where outputs go: beside the model, or in the configured folder (relative to `home`). */
export function outputParent(place: OutputPlace): string {
  if (place.outputLocation !== '' && place.outputLocation !== 'besideModel') return path.resolve(place.home, place.outputLocation);
  // The embedded model lives inside the extension's installation, which an update replaces and may be read-only.
  const model = modelFolderOf(place.model);
  return model === path.resolve(place.embeddedModel) ? place.home : path.dirname(model);
}

export type OutputCheck = { ok: true; replaces: boolean } | { ok: false; problem: string };

/** Whether `out` can take a new output: free, or an earlier PruneLens output that the user may replace. */
export function checkOutput(out: string, model: string): OutputCheck {
  if (!path.isAbsolute(out)) return { ok: false, problem: 'Give an absolute folder path' };
  const relative = path.relative(modelFolderOf(model), out);
  if (relative === '' || (!relative.startsWith('..') && !path.isAbsolute(relative))) {
    return { ok: false, problem: 'The output must not be the model folder or inside it: the source is never modified' };
  }
  const stat = fs.statSync(out, { throwIfNoEntry: false });
  if (!stat) return { ok: true, replaces: false };
  if (stat.isDirectory() && fs.existsSync(path.join(out, RECORD_FILE))) return { ok: true, replaces: true };
  return { ok: false, problem: `${out} exists and is not a PruneLens output; choose another folder` };
}

/** Folders an output passes through while being written (`<out>.partial-<pid>`) or replaced (`<out>.previous-<pid>`). */
export function isWorkingFolder(folder: string): boolean {
  return /\.(partial|previous)-\d+$/.test(folder);
}
