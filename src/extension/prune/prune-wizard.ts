import * as path from 'node:path';
import * as vscode from 'vscode';
import { allocationNeedsCalibration, type AllocationRequest } from '../../engine/allocate/allocation';
import { OWL_DEFAULTS } from '../../engine/allocate/owl';
import type { CalibrationRequest } from '../../engine/calibrate/calibration-data';
import { EMBEDDED_MODEL, SAMPLE_CALIBRATION_TEXT, SAMPLE_EVALUATION_TEXT } from '../../engine/embedded';
import type { EvaluationRequest } from '../../engine/prune/prune-model';
import { DEFAULT_METHOD, isMethod, needsCalibration } from '../../engine/prune/methods';
import { checkSparsity, DEFAULT_SETTINGS, DEFAULT_SPARSITY, parseNM, type Method, type PruneSpec } from '../../engine/prune/spec';
import { readConfig, settingPath, workspaceHome } from '../config';
import type { Services } from '../services';
import type { StructuredTarget } from '../../engine/structured/select';
import { BACK, inputStep, pickStep, runSteps, type Back, type Step, type StepFrame } from './multi-step';
import { checkOutput, methodItems, modelFolderOf, outputParent, parseSparsity, pruneOutputName, structuredOutputName, type OutputPlace, type PruneTarget } from './prune-options';

/** A structured prune (heads, channels or layers removed by score) from the guided flow. */
export interface StructuredRequest {
  model: string;
  target: StructuredTarget;
  calibration?: CalibrationRequest;
  evaluation: EvaluationRequest;
  out: string;
  overwrite: boolean;
}

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
    ...folders.map((f) => ({ label: path.basename(f), description: f === shown ? 'in the Model view' : vscode.workspace.asRelativePath(path.dirname(f)), detail: f, file: f })),
    embedded,
    { label: '$(folder-opened) Browse…', browse: true, alwaysShow: true },
  ];
  // The workspace's own checkpoint first: that is what a person with a model open means.
  const choice = await pickStep({ title, canGoBack: false }, { placeholder: 'Model (a folder with config.json and safetensors)', items, active: items[0] });
  if (choice === BACK || !choice?.browse) return choice === BACK ? undefined : choice?.file;
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
async function pickText(frame: StepFrame, purpose: 'Calibration' | 'Evaluation', configured: string, bundled: string, previous?: string): Promise<string | Back | undefined> {
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
  const active = items.find((i) => previous !== undefined && i.file === previous) ?? first;
  const choice = await pickStep(frame, { placeholder: `${purpose} text (.txt is one document; .jsonl has one "text" per line)`, items, active });
  if (choice === BACK || !choice?.browse) return choice === BACK ? BACK : choice?.file;
  const home = workspaceHome();
  const picked = await vscode.window.showOpenDialog({
    title: `${frame.title}: ${purpose.toLowerCase()} text`,
    canSelectMany: false,
    filters: { Text: ['txt', 'jsonl'] },
    ...(home ? { defaultUri: vscode.Uri.file(home) } : {}),
  });
  return picked?.[0]?.fsPath;
}

/** Which units structured pruning removes, as the CLI's `--structured` takes them. */
type Units = Pick<StructuredTarget, 'heads' | 'channels' | 'layers'>;

/** The answers of the guided flow so far. */
interface Answers {
  method?: Method | 'structured';
  target?: PruneTarget;
  units?: Units;
  /** Structured: the fraction of all parameters to remove. */
  ratio?: number;
  allocation: AllocationRequest;
  calibration?: string;
  evaluation?: string;
  out?: string;
  overwrite: boolean;
}

/** What the guided flow ends with: an unstructured prune, or a structured one that makes the model smaller. */
export type PruneJobRequest = { kind: 'unstructured'; request: PruneRequest } | { kind: 'structured'; request: StructuredRequest };

/** `answer` records a step's choice (when there was one) and tells runSteps how the step ended. */
function answer<T>(result: T | Back | undefined, record: (value: T) => void): boolean | Back {
  if (result === BACK) return BACK;
  if (result === undefined) return false;
  record(result);
  return true;
}

const pct = (v: number): string => `${+(100 * v).toFixed(1)}%`;

/** "50%", "0.5" or "2:4" typed into the target step, as a choice; undefined when it is none of them. */
function typedTarget(text: string): Choice<PruneTarget> | undefined {
  const sparsity = parseSparsity(text);
  if (sparsity !== undefined) return { label: text, description: `unstructured, ${pct(sparsity)} of each matrix`, alwaysShow: true, value: { kind: 'sparsity', sparsity } };
  const nm = /^(\d+):(\d+)$/.exec(text);
  if (!nm) return undefined;
  try {
    const parsed = parseNM(text);
    return { label: text, description: `N:M, ${parsed.n} of every ${parsed.m} consecutive weights`, alwaysShow: true, value: { kind: 'nm', nm: parsed } };
  } catch {
    return undefined;
  }
}

function typedRatio(text: string): Choice<number> | undefined {
  const ratio = parseSparsity(text);
  return ratio !== undefined && ratio > 0 ? { label: text, description: `${pct(ratio)} of all parameters`, alwaysShow: true, value: ratio } : undefined;
}

function needsCalibrationText(a: Answers): boolean {
  if (a.method === 'structured') return true;
  return a.method !== undefined && (needsCalibration({ method: a.method }) || allocationNeedsCalibration(a.allocation));
}

/**
 * The guided prune flow, with a step counter and Back: method (or structured), target, allocation
 * (unstructured sparsity only), calibration text (when the method, allocation or structured scores
 * need data), evaluation text, output folder. Undefined when the user stops.
 */
export async function askPrune(services: Services, model: string): Promise<PruneJobRequest | undefined> {
  const config = readConfig();
  const name = path.basename(modelFolderOf(model));
  const structured = (a: Answers): boolean => a.method === 'structured';

  const methods: Choice<Method | 'structured'>[] = [
    ...methodItems(),
    { label: 'structured', description: 'calibration, smaller model', detail: 'Remove whole attention heads, MLP channels or layers: a smaller, faster model', value: 'structured' },
  ];
  const targets: Choice<PruneTarget>[] = [
    ...[0.5, 0.6, 0.7].map((s): Choice<PruneTarget> => ({ label: pct(s), description: 'unstructured', detail: `${pct(s)} of the weights of every targeted matrix`, value: { kind: 'sparsity', sparsity: s } })),
    { label: '2:4', description: 'N:M', detail: '2 of every 4 consecutive weights of each row', value: { kind: 'nm', nm: { n: 2, m: 4 } } },
    { label: '4:8', description: 'N:M', detail: '4 of every 8 consecutive weights of each row', value: { kind: 'nm', nm: { n: 4, m: 8 } } },
  ];
  const unitChoices: Choice<Units>[] = [
    { label: 'heads and channels', detail: 'Key/value head groups and MLP channels, the same number in every layer', value: { heads: true, channels: true, layers: false } },
    { label: 'heads', detail: 'Key/value head groups (each with the query heads that read it)', value: { heads: true, channels: false, layers: false } },
    { label: 'channels', detail: "MLP channels (gate/up rows and down_proj columns)", value: { heads: false, channels: true, layers: false } },
    { label: 'layers', detail: 'Whole decoder blocks, the fewest that reach the ratio', value: { heads: false, channels: false, layers: true } },
  ];
  const ratios: Choice<number>[] = [0.1, 0.2, 0.3].map((r) => ({ label: pct(r), description: 'of all parameters', value: r }));
  const allocations: Choice<AllocationRequest>[] = [
    { label: 'uniform', detail: 'Every targeted matrix at the same sparsity', value: { kind: 'uniform' } },
    { label: 'OWL', description: 'calibration', detail: `Blocks with more outliers are pruned less, within ±${OWL_DEFAULTS.lambda}`, value: { kind: 'owl', ...OWL_DEFAULTS } },
    { label: 'BESA-style search', description: 'calibration, slower', detail: 'Per-linear ratios across all blocks with the least block output error, the model-wide total unchanged', value: { kind: 'besa' } },
  ];
  const outputName = (a: Answers): string =>
    a.method === 'structured' ? structuredOutputName(model, { ...a.units!, ratio: a.ratio! }) : pruneOutputName(model, a.method!, a.target!, a.allocation.kind);
  const sameLabel = <T>(items: Choice<T>[], value: T | undefined): Choice<T> | undefined =>
    items.find((i) => JSON.stringify(i.value) === JSON.stringify(value));

  const steps: Step<Answers>[] = [
    {
      run: async (a, frame) =>
        answer(await pickStep(frame, { placeholder: 'Pruning method', items: methods, active: methods.find((m) => m.value === a.method) }), (c) => (a.method = c.value)),
    },
    {
      applies: (a) => !structured(a),
      run: async (a, frame) =>
        answer(
          await pickStep(frame, {
            placeholder: 'Target: pick one, or type a sparsity (0.55, 55%) or N:M (2:4)',
            items: targets,
            active: sameLabel(targets, a.target) ?? targets[0],
            custom: typedTarget,
          }),
          (c) => (a.target = c.value),
        ),
    },
    {
      applies: structured,
      run: async (a, frame) =>
        answer(await pickStep(frame, { placeholder: 'What to remove', items: unitChoices, active: sameLabel(unitChoices, a.units) ?? unitChoices[0] }), (c) => (a.units = c.value)),
    },
    {
      applies: structured,
      run: async (a, frame) =>
        answer(
          await pickStep(frame, { placeholder: 'Fraction of all parameters to remove: pick one, or type one (0.25, 25%)', items: ratios, active: sameLabel(ratios, a.ratio) ?? ratios[1], custom: typedRatio }),
          (c) => (a.ratio = c.value),
        ),
    },
    {
      // N:M is the same everywhere, and structured removal has its own rule, so only an unstructured sparsity is shared out.
      applies: (a) => !structured(a) && a.target?.kind !== 'nm',
      run: async (a, frame) =>
        answer(
          await pickStep(frame, { placeholder: 'How the sparsity is shared out over blocks and linears', items: allocations, active: sameLabel(allocations, a.allocation) ?? allocations[0] }),
          (c) => (a.allocation = c.value),
        ),
    },
    {
      applies: needsCalibrationText,
      run: async (a, frame) =>
        answer(await pickText(frame, 'Calibration', settingPath(config.calibrationText, SAMPLE_CALIBRATION_TEXT), SAMPLE_CALIBRATION_TEXT, a.calibration), (f) => (a.calibration = f)),
    },
    {
      run: async (a, frame) =>
        answer(await pickText(frame, 'Evaluation', settingPath(config.evaluationText, SAMPLE_EVALUATION_TEXT), SAMPLE_EVALUATION_TEXT, a.evaluation), (f) => (a.evaluation = f)),
    },
    {
      run: async (a, frame) => {
        const parent = outputParent(outputPlace(services, model));
        const suggested = path.join(parent, outputName(a));
        const typed = await inputStep(frame, {
          prompt: 'Output folder: a new model folder (the source is never modified)',
          value: suggested,
          valueSelection: [parent.length + 1, suggested.length],
          validate: (t) => {
            const check = checkOutput(t.trim(), model);
            if (!check.ok) return check.problem;
            return check.replaces ? { message: 'An earlier PruneLens output is there; you will be asked before it is replaced', severity: vscode.InputBoxValidationSeverity.Warning } : undefined;
          },
        });
        if (typed === BACK || typed === undefined) return typed === BACK ? BACK : false;
        const out = typed.trim();
        const check = checkOutput(out, model);
        if (!check.ok || (check.replaces && !(await confirmReplace(out)))) return false;
        a.out = out;
        a.overwrite = check.replaces;
        return true;
      },
    },
  ];

  // Start from the preselected answers, so the first step's counter already counts the steps they lead to.
  const defaults: Answers = { method: DEFAULT_METHOD, target: { kind: 'sparsity', sparsity: DEFAULT_SPARSITY }, allocation: { kind: 'uniform' }, overwrite: false };
  const a = await runSteps(`PruneLens: Prune ${name}`, steps, defaults);
  if (!a?.method || !a.evaluation || !a.out) return undefined;
  if (a.evaluation === a.calibration) services.output.warn(`${a.evaluation} is both the calibration and the evaluation text; the perplexity will flatter the pruned model`);
  const calibration = a.calibration && needsCalibrationText(a) ? { file: a.calibration, nsamples: config.nsamples, seqlen: config.seqlen, seed: 0 } : undefined;
  const evaluation = { file: a.evaluation, seqlen: config.seqlen };
  if (a.method === 'structured') {
    // The CLI's default metrics: output for heads, FLAP for channels, Block Influence for layers.
    const target: StructuredTarget = { ...a.units!, ratio: a.ratio!, metrics: { heads: 'output', channels: 'flap', layers: 'bi' }, seed: 0 };
    return { kind: 'structured', request: { model, target, calibration, evaluation, out: a.out, overwrite: a.overwrite } };
  }
  const target = a.target!;
  return {
    kind: 'unstructured',
    request: {
      model,
      // Include/exclude and the methods' settings keep the CLI's defaults: all linears, the engine's DEFAULT_SETTINGS.
      spec: { method: a.method, sparsity: target.kind === 'nm' ? target.nm.n / target.nm.m : target.sparsity, nm: target.kind === 'nm' ? target.nm : undefined, include: [], exclude: [], ...DEFAULT_SETTINGS },
      allocation: target.kind === 'nm' ? { kind: 'uniform' } : a.allocation,
      calibration: needsCalibration({ method: a.method }) || allocationNeedsCalibration(a.allocation) ? calibration : undefined,
      evaluation,
      out: a.out,
      overwrite: a.overwrite,
    },
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

/** A settings object from code, told apart from what VS Code passes (Uris, their arrays, tree nodes) by its shape. */
export function isPruneArguments(value: unknown): value is PruneArguments {
  if (typeof value !== 'object' || value === null || Array.isArray(value) || value instanceof vscode.Uri) return false;
  const method = (value as { method?: unknown }).method;
  return isMethod(method);
}

export function pruneRequestFrom(services: Services, model: string, args: PruneArguments): PruneRequest {
  const config = readConfig();
  const nm = args.nm === undefined ? undefined : parseNM(args.nm);
  const sparsity = nm ? nm.n / nm.m : checkSparsity(args.sparsity ?? DEFAULT_SPARSITY);
  const target: PruneTarget = nm ? { kind: 'nm', nm } : { kind: 'sparsity', sparsity };
  const allocation: AllocationRequest = args.allocation === 'owl' ? { kind: 'owl', ...OWL_DEFAULTS } : { kind: args.allocation ?? 'uniform' } as AllocationRequest;
  const calibrated = needsCalibration({ method: args.method }) || allocationNeedsCalibration(allocation);
  const out = args.out ?? path.join(outputParent(outputPlace(services, model)), pruneOutputName(model, args.method, target, allocation.kind));
  return {
    model,
    spec: { method: args.method, sparsity, nm, include: [], exclude: [], ...DEFAULT_SETTINGS },
    allocation,
    calibration: calibrated
      ? { file: settingPath(config.calibrationText, SAMPLE_CALIBRATION_TEXT), nsamples: config.nsamples, seqlen: config.seqlen, seed: 0, ...args.calibration }
      : undefined,
    evaluation: { file: settingPath(config.evaluationText, SAMPLE_EVALUATION_TEXT), seqlen: config.seqlen, ...args.evaluation },
    out,
    overwrite: args.overwrite ?? false,
  };
}
