import * as path from 'node:path';
import * as vscode from 'vscode';
import { allocationNeedsCalibration, type AllocationRequest } from '../../engine/allocate/allocation';
import { OWL_DEFAULTS } from '../../engine/allocate/owl';
import type { CalibrationRequest } from '../../engine/calibrate/calibration-data';
import { EMBEDDED_MODEL, SAMPLE_CALIBRATION_TEXT, SAMPLE_EVALUATION_TEXT } from '../../engine/embedded';
import type { EvaluationRequest } from '../../engine/prune/prune-model';
import { needsCalibration } from '../../engine/prune/sequential';
import { checkSparsity, parseNM, type Method, type PruneSpec } from '../../engine/prune/spec';
import { readConfig, settingPath, workspaceHome } from '../config';
import type { Services } from '../services';
import { checkOutput, modelFolderOf, outputParent, parseSparsity, pruneOutputName, type OutputPlace, type PruneTarget } from './prune-options';

/** Everything pruneModel needs but the runtime and the run control. */
export interface PruneRequest {
  model: string;
  spec: PruneSpec;
  allocation: AllocationRequest;
  calibration?: CalibrationRequest;
  evaluation: EvaluationRequest;
  out: string;
  overwrite: boolean;
}

interface Choice<T> extends vscode.QuickPickItem {
  value: T;
}

type PathChoice = vscode.QuickPickItem & { file?: string; browse?: true };

/** One quick pick with a preselected item; undefined when dismissed. */
async function pick<T extends vscode.QuickPickItem>(title: string, placeholder: string, items: T[], active?: T): Promise<T | undefined> {
  const quickPick = vscode.window.createQuickPick<T>();
  quickPick.title = title;
  quickPick.placeholder = placeholder;
  quickPick.items = items;
  quickPick.ignoreFocusOut = true;
  if (active) quickPick.activeItems = [active];
  try {
    return await new Promise<T | undefined>((resolve) => {
      quickPick.onDidAccept(() => resolve(quickPick.selectedItems[0] ?? quickPick.activeItems[0]));
      quickPick.onDidHide(() => resolve(undefined));
      quickPick.show();
    });
  } finally {
    quickPick.dispose();
  }
}

export function outputPlace(services: Services, model: string): OutputPlace {
  return { model, outputLocation: readConfig().outputLocation, embeddedModel: EMBEDDED_MODEL, home: workspaceHome() ?? services.storage.fsPath };
}

/** Asks before replacing an earlier PruneLens output; anything else at the path is refused earlier. */
export async function confirmReplace(out: string): Promise<boolean> {
  const choice = await vscode.window.showWarningMessage(
    `Replace the earlier PruneLens output ${path.basename(out)}?`,
    { modal: true, detail: `${out}\n\nIt is replaced only once the new model is complete.` },
    'Replace',
  );
  return choice === 'Replace';
}

/** A model for a command run from the palette: the embedded one, a workspace checkpoint, or any folder. */
export async function askModel(services: Services, title: string): Promise<string | undefined> {
  const shown = services.models.current?.summary.path;
  const folders = [...new Set([...(shown && shown !== EMBEDDED_MODEL ? [shown] : []), ...services.checkpoints.list])];
  const embedded: PathChoice = { label: path.basename(EMBEDDED_MODEL), description: 'embedded model', detail: EMBEDDED_MODEL, file: EMBEDDED_MODEL };
  const items: PathChoice[] = [
    embedded,
    ...folders.map((f) => ({ label: path.basename(f), description: f === shown ? 'in the Model view' : vscode.workspace.asRelativePath(path.dirname(f)), detail: f, file: f })),
    { label: '$(folder-opened) Browse…', browse: true, alwaysShow: true },
  ];
  const choice = await pick(title, 'Model (a folder with config.json and safetensors)', items, embedded);
  if (!choice?.browse) return choice?.file;
  const home = workspaceHome();
  const picked = await vscode.window.showOpenDialog({
    title,
    canSelectFolders: true,
    canSelectFiles: false,
    openLabel: 'Select Model Folder',
    defaultUri: vscode.Uri.file(home ?? path.dirname(EMBEDDED_MODEL)),
  });
  return picked?.[0]?.fsPath;
}

/** A calibration or evaluation text: the configured file, the bundled sample, a workspace file, or any file. */
async function pickText(title: string, purpose: 'Calibration' | 'Evaluation', configured: string, bundled: string): Promise<string | undefined> {
  const first: PathChoice = configured !== bundled
    ? { label: path.basename(configured), description: 'from settings', detail: configured, file: configured }
    : { label: 'Bundled TinyStories sample', description: path.basename(bundled), detail: bundled, file: bundled };
  const items: PathChoice[] = [first];
  if (configured !== bundled) items.push({ label: 'Bundled TinyStories sample', description: path.basename(bundled), detail: bundled, file: bundled });
  const found = (await vscode.workspace.findFiles('**/*.{txt,jsonl}', '**/node_modules/**', 500)).filter((u) => u.scheme === 'file' && u.fsPath !== configured && u.fsPath !== bundled);
  if (found.length > 0) {
    items.push({ label: 'Workspace', kind: vscode.QuickPickItemKind.Separator });
    const relative = found.map((u) => ({ label: vscode.workspace.asRelativePath(u), file: u.fsPath }));
    items.push(...relative.sort((a, b) => a.label.localeCompare(b.label)));
  }
  items.push({ label: '$(folder-opened) Browse…', browse: true, alwaysShow: true });
  const choice = await pick(title, `${purpose} text (.txt is one document; .jsonl has one "text" per line)`, items, first);
  if (!choice?.browse) return choice?.file;
  const home = workspaceHome();
  const picked = await vscode.window.showOpenDialog({
    title: `${title}: ${purpose.toLowerCase()} text`,
    canSelectMany: false,
    filters: { Text: ['txt', 'jsonl'] },
    ...(home ? { defaultUri: vscode.Uri.file(home) } : {}),
  });
  return picked?.[0]?.fsPath;
}

/**
 * The guided prune flow: method, target, allocation (unstructured only), calibration text (when the
 * method or allocation needs data), evaluation text, output folder. Undefined when the user stops.
 */
export async function askPrune(services: Services, model: string): Promise<PruneRequest | undefined> {
  const config = readConfig();
  const name = path.basename(modelFolderOf(model));
  const title = `PruneLens: Prune ${name}`;

  const methods: Choice<Method>[] = [
    { label: 'magnitude', description: 'no data', detail: 'Zero the smallest |W| of each matrix', value: 'magnitude' },
    { label: 'wanda', description: 'calibration', detail: 'Score |W| × input norm and zero the lowest of every row', value: 'wanda' },
    { label: 'sparsegpt', description: 'calibration, slower', detail: "Zero by the inputs' Hessian and update the remaining weights to compensate", value: 'sparsegpt' },
    { label: 'alps', description: 'calibration, slowest, best', detail: 'Choose the mask and the weights together by ADMM on each layer\'s output, then solve on the mask', value: 'alps' },
  ];
  const method = (await pick(title, 'Pruning method', methods, methods[1]))?.value;
  if (!method) return undefined;

  const targets: Choice<string>[] = [
    { label: 'Unstructured sparsity…', detail: 'A fraction of the weights of every targeted matrix', value: 'sparsity' },
    { label: '2:4', detail: 'N:M: 2 of every 4 consecutive weights of each row', value: '2:4' },
    { label: '4:8', detail: 'N:M: 4 of every 8 consecutive weights of each row', value: '4:8' },
  ];
  const targetKind = (await pick(title, 'Target', targets, targets[0]))?.value;
  if (!targetKind) return undefined;
  let target: PruneTarget;
  if (targetKind === 'sparsity') {
    const text = await vscode.window.showInputBox({
      title,
      prompt: "Fraction of each targeted matrix's weights to zero",
      value: '0.5',
      ignoreFocusOut: true,
      validateInput: (t) => (parseSparsity(t) === undefined ? 'A number from 0 to 0.99 (0.5), or a percentage (50%)' : undefined),
    });
    if (text === undefined) return undefined;
    target = { kind: 'sparsity', sparsity: parseSparsity(text)! };
  } else {
    target = { kind: 'nm', nm: parseNM(targetKind) };
  }

  let allocation: AllocationRequest = { kind: 'uniform' };
  if (target.kind === 'sparsity') {
    const allocations: Choice<AllocationRequest>[] = [
      { label: 'uniform', detail: 'Every targeted matrix at the same sparsity', value: { kind: 'uniform' } },
      { label: 'OWL', description: 'calibration', detail: `Blocks with more outliers are pruned less, within ±${OWL_DEFAULTS.lambda}`, value: { kind: 'owl', ...OWL_DEFAULTS } },
      { label: 'BESA-style search', description: 'calibration, slower', detail: "Per-linear ratios with the least block output error, each block's total unchanged", value: { kind: 'besa' } },
    ];
    const chosen = await pick(title, 'How the sparsity is shared out over blocks and linears', allocations, allocations[0]);
    if (!chosen) return undefined;
    allocation = chosen.value;
  }

  let calibration: CalibrationRequest | undefined;
  if (needsCalibration(method) || allocationNeedsCalibration(allocation)) {
    const file = await pickText(title, 'Calibration', settingPath(config.calibrationText, SAMPLE_CALIBRATION_TEXT), SAMPLE_CALIBRATION_TEXT);
    if (!file) return undefined;
    calibration = { file, nsamples: config.nsamples, seqlen: config.seqlen, seed: 0 };
  }
  const evaluationFile = await pickText(title, 'Evaluation', settingPath(config.evaluationText, SAMPLE_EVALUATION_TEXT), SAMPLE_EVALUATION_TEXT);
  if (!evaluationFile) return undefined;
  if (evaluationFile === calibration?.file) services.output.warn(`${evaluationFile} is both the calibration and the evaluation text; the perplexity will flatter the pruned model`);

  const parent = outputParent(outputPlace(services, model));
  const suggested = path.join(parent, pruneOutputName(model, method, target, allocation.kind));
  const typed = await vscode.window.showInputBox({
    title,
    prompt: 'Output folder: a new model folder (the source is never modified)',
    value: suggested,
    valueSelection: [parent.length + 1, suggested.length],
    ignoreFocusOut: true,
    validateInput: (t) => {
      const check = checkOutput(t.trim(), model);
      if (!check.ok) return check.problem;
      return check.replaces ? { message: 'An earlier PruneLens output is there; you will be asked before it is replaced', severity: vscode.InputBoxValidationSeverity.Warning } : undefined;
    },
  });
  if (typed === undefined) return undefined;
  const out = typed.trim();
  const check = checkOutput(out, model);
  if (!check.ok || (check.replaces && !(await confirmReplace(out)))) return undefined;

  return {
    model,
    // Include/exclude and the SparseGPT settings keep the CLI's defaults: all linears, 128 columns, 1% dampening.
    spec: { method, sparsity: target.kind === 'nm' ? target.nm.n / target.nm.m : target.sparsity, nm: target.kind === 'nm' ? target.nm : undefined, include: [], exclude: [], blocksize: 128, percdamp: 0.01 },
    allocation,
    calibration,
    evaluation: { file: evaluationFile, seqlen: config.seqlen },
    out,
    overwrite: check.replaces,
  };
}

/**
 * The Prune command's settings when it is called with arguments (by the end-to-end tests, a task or
 * another extension) instead of through the guided flow; what is left out takes the flow's defaults.
 */
export interface PruneArguments {
  method: Method;
  sparsity?: number;
  nm?: string;
  allocation?: 'uniform' | 'owl' | 'besa';
  calibration?: Partial<CalibrationRequest>;
  evaluation?: Partial<EvaluationRequest>;
  out?: string;
  overwrite?: boolean;
}

export function pruneRequestFrom(services: Services, model: string, args: PruneArguments): PruneRequest {
  const config = readConfig();
  const nm = args.nm === undefined ? undefined : parseNM(args.nm);
  const sparsity = nm ? nm.n / nm.m : checkSparsity(args.sparsity ?? 0.5);
  const target: PruneTarget = nm ? { kind: 'nm', nm } : { kind: 'sparsity', sparsity };
  const allocation: AllocationRequest = args.allocation === 'owl' ? { kind: 'owl', ...OWL_DEFAULTS } : { kind: args.allocation ?? 'uniform' } as AllocationRequest;
  const calibrated = needsCalibration(args.method) || allocationNeedsCalibration(allocation);
  const out = args.out ?? path.join(outputParent(outputPlace(services, model)), pruneOutputName(model, args.method, target, allocation.kind));
  return {
    model,
    spec: { method: args.method, sparsity, nm, include: [], exclude: [], blocksize: 128, percdamp: 0.01 },
    allocation,
    calibration: calibrated
      ? { file: settingPath(config.calibrationText, SAMPLE_CALIBRATION_TEXT), nsamples: config.nsamples, seqlen: config.seqlen, seed: 0, ...args.calibration }
      : undefined,
    evaluation: { file: settingPath(config.evaluationText, SAMPLE_EVALUATION_TEXT), seqlen: config.seqlen, ...args.evaluation },
    out,
    overwrite: args.overwrite ?? false,
  };
}
