import { randomUUID } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as vscode from 'vscode';
import type { AllocationRequest } from '../../engine/allocate/allocation';
import { estimatePlan } from '../../engine/allocate/estimate';
import { OWL_DEFAULTS } from '../../engine/allocate/owl';
import { planSparsity, type Allocation, type Plan } from '../../engine/allocate/plan';
import { formatPercent, formatPerplexity } from '../../engine/display';
import { EMBEDDED_MODEL, SAMPLE_CALIBRATION_TEXT, SAMPLE_EVALUATION_TEXT } from '../../engine/embedded';
import { isCancelled, PruneLensError } from '../../engine/errors';
import type { PerplexityResult } from '../../engine/evaluate/perplexity';
import { RECORD_FILE } from '../../engine/export/output-folder';
import type { PruneRecord } from '../../engine/export/record';
import { Checkpoint } from '../../engine/io/checkpoint';
import type { ModelConfig } from '../../engine/model/config';
import { describeModel } from '../../engine/model/describe';
import { DEFAULT_METHOD } from '../../engine/prune/methods/catalog';
import { DEFAULT_SETTINGS, DEFAULT_SPARSITY, type Method } from '../../engine/prune/spec';
import type { RunControl } from '../../engine/progress';
import {
  ALLOCATION_KINDS,
  ALLOCATION_LABELS,
  assertNever,
  isFromWebview,
  METHOD_LABELS,
  restorableState,
  type Edit,
  type FromWebview,
  type Job,
  type JobResult,
  type ModelInfo,
  type PanelState,
  type PlanSummary,
  type PlanWindows,
  type ToWebview,
} from '../../shared/protocol';
import { readConfig, runtimeOf, settingPath, workspaceHome } from '../config';
import { openReport } from '../decorations/open-report';
import { reportErrors, requireTrust } from '../errors';
import type { FileHashes } from '../file-hashes';
import { checkOutput, outputParent, pruneOutputName } from '../prune/prune-options';
import { confirmReplace } from '../prune/prune-wizard';
import { withEngineProgress } from '../progress';
import { readOutputRecord } from '../runs/output-record';
import type { StageWeight } from '../stage-progress';
import { DenseCache } from './dense-cache';
import { applyPlan, evaluateDense, makePlans } from './panel-jobs';
import { editPlan, linearInfo, planSummary, samePlan } from './plan-edits';
import { PlanCache, type PlanRequest, type PlanSet } from './plan-cache';
import { singlePanel } from './single-panel';
import { webviewHtml } from './webview-html';

export const ALLOCATION_PANEL = 'prunelens.allocationPanel';

const TITLE = 'PruneLens: Sparsity Allocation';
const DEFAULTS: Pick<PanelState, 'method' | 'target'> = { method: DEFAULT_METHOD, target: DEFAULT_SPARSITY };
/** Calibration windows of the quick plans: enough for a first look in seconds, and to time the full set. */
const QUICK_WINDOWS = 8;

export interface AllocationPanelRegistration {
  disposables: vscode.Disposable[];
  /** The command handler: a model folder (or its config.json / safetensors file), else the embedded model. */
  openAllocationPanel(model?: vscode.Uri | string): Promise<void>;
  /** Each time Apply or Export has written a pruned model (`record.output` is its folder). */
  onDidPrune: vscode.Event<PruneRecord>;
  /** Every valid message the page sent, for callers (the end-to-end tests) that follow the panel. */
  onDidReceiveMessage: vscode.Event<FromWebview>;
  /** Handles a message as if the page had sent it: how automation presses the panel's buttons. */
  deliver(message: FromWebview): void;
}

interface Dependencies {
  extensionUri: vscode.Uri;
  output: vscode.LogOutputChannel;
  cache: PlanCache;
  dense: DenseCache;
  /** Where outputs of the embedded model go when no workspace folder is open. */
  storage: string;
  pruned(record: PruneRecord): void;
  received(message: FromWebview): void;
}

/** One panel at a time; it is restored after a reload from the state its webview saved. */
export function registerAllocationPanel(context: vscode.ExtensionContext, output: vscode.LogOutputChannel, hashes: FileHashes): AllocationPanelRegistration {
  const pruned = new vscode.EventEmitter<PruneRecord>();
  const received = new vscode.EventEmitter<FromWebview>();
  const deps: Dependencies = {
    extensionUri: context.extensionUri,
    output,
    cache: new PlanCache(vscode.Uri.joinPath(context.globalStorageUri, 'plans').fsPath),
    dense: new DenseCache(vscode.Uri.joinPath(context.globalStorageUri, 'dense').fsPath, hashes),
    storage: context.globalStorageUri.fsPath,
    pruned: (record) => pruned.fire(record),
    received: (message) => received.fire(message),
  };
  const panels = singlePanel<PanelRequest, AllocationPanel>({
    viewType: ALLOCATION_PANEL,
    title: TITLE,
    extensionUri: deps.extensionUri,
    // A page that never got its model has nothing to restore.
    restore: restorableState,
    create: (panel, request, restored) => new AllocationPanel(panel, deps, request, restored),
  });
  return {
    disposables: [pruned, received, ...panels.disposables],
    async openAllocationPanel(model) {
      requireTrust();
      await panels.open({ ...DEFAULTS, model: (typeof model === 'string' ? model : model?.fsPath) ?? EMBEDDED_MODEL });
    },
    onDidPrune: pruned.event,
    onDidReceiveMessage: received.event,
    deliver(message) {
      const current = panels.current();
      if (!current) throw new Error('the allocation panel is not open');
      current.receive(message);
    },
  };
}

type PanelRequest = Pick<PanelState, 'model' | 'method' | 'target'>;

/** The model the panel plans for, as read once when it is opened. */
interface LoadedModel {
  model: string;
  dir: string;
  files: string[];
  /** Every file a dense evaluation reads: config, weights, tokenizer. */
  inputs: string[];
  cfg: ModelConfig;
  info: ModelInfo;
}

interface RunningJob {
  kind: Job;
  abort: AbortController;
  /** Re-posted when a reloaded page says ready, so its progress line comes back at once. */
  last?: ToWebview;
}

class AllocationPanel {
  private readonly disposables: vscode.Disposable[] = [];
  private ready = false;
  /** Outcomes posted while the page was gone; init, plans and progress are re-sent from state instead. */
  private pending: ToWebview[] = [];
  /**
   * The last job's result, posted again to every page that says ready while no job runs: a page torn
   * down as the result arrived (a finished Apply opens its loss diff in front of the panel) took the
   * message and lost it, and its saved state still shows the result before.
   */
  private lastDone?: ToWebview;
  private loaded?: LoadedModel;
  /** The settings the page shows; the plans below match them once computed. */
  private request: PanelRequest;
  private plans?: { request: PlanRequest; set: PlanSet; windows: PlanWindows };
  private job?: RunningJob;
  /** The last model Apply wrote, and by which plan: an Export of the same plan copies it. */
  private applied?: { plan: Plan; method: Method; calibration: PlanRequest['calibration']; output: string };
  private disposed = false;

  constructor(
    private readonly panel: vscode.WebviewPanel,
    private readonly deps: Dependencies,
    request: PanelRequest,
    restored: boolean,
  ) {
    this.request = request;
    panel.webview.html = webviewHtml(panel.webview, deps.extensionUri, TITLE);
    this.disposables.push(
      panel.onDidDispose(() => this.dispose()),
      panel.webview.onDidReceiveMessage((raw: unknown) => this.receive(raw)),
      // Without retainContextWhenHidden the page is destroyed when hidden; posts wait for its next `ready`.
      panel.onDidChangeViewState(() => {
        if (!panel.visible) this.ready = false;
      }),
    );
    // A panel VS Code restores after a reload must not take the front from whatever tab the person has
    // moved to while the extension was starting.
    void this.open(request, !restored);
  }

  /** Shows `request.model`: its full plans if cached, else quick plans (a few windows) and the full set's expected time. */
  async open(request: PanelRequest, reveal = true): Promise<void> {
    if (reveal) this.panel.reveal();
    if (this.job) {
      void vscode.window.showWarningMessage(`PruneLens: the allocation panel is busy (${this.job.kind}); cancel it or wait before opening another model.`);
      return;
    }
    if (this.loaded?.model === request.model && this.plans) return;
    this.request = request;
    const loaded = await this.reported(async () => {
      // A panel restored after a reload lands here without a command, so trust is checked here too.
      requireTrust();
      return loadModel(request.model);
    });
    if (!loaded) return;
    this.loaded = loaded;
    this.plans = undefined;
    this.panel.title = `${TITLE} (${this.loaded.info.name})`;
    this.postInit();
    const full = await this.reported(() => this.cachedPlans(request.method, request.target, false));
    if (!full) await this.reported(() => this.computePlans(request.method, request.target, true));
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.job?.abort.abort();
    this.panel.dispose();
    for (const d of this.disposables) d.dispose();
  }

  private post(message: ToWebview): void {
    if (this.disposed) return;
    const outcome = message.type === 'done' || message.type === 'cancelled' || message.type === 'error';
    if (this.ready && this.panel.visible) {
      // A finished Apply opens its loss diff in front of the panel; a post racing that (sent before the
      // view-state event says the page is gone) is not delivered, so an outcome waits for the next `ready`.
      void this.panel.webview.postMessage(message).then((delivered) => {
        if (!delivered && outcome) this.pending.push(message);
      });
    } else if (outcome) {
      this.pending.push(message);
    }
  }

  private postInit(): void {
    const config = readConfig();
    this.post({
      type: 'init',
      model: this.loaded!.info,
      method: this.request.method,
      target: this.request.target,
      calibration: path.basename(settingPath(config.calibrationText, SAMPLE_CALIBRATION_TEXT)),
      evaluation: path.basename(settingPath(config.evaluationText, SAMPLE_EVALUATION_TEXT)),
      linears: linearInfo(this.loaded!.cfg),
    });
  }

  private postPlans(): void {
    const { request, set, windows } = this.plans!;
    const plans = Object.fromEntries(ALLOCATION_KINDS.map((kind) => [kind, planSummary(set[kind], estimatePlan(set[kind]))])) as Record<Allocation, PlanSummary>;
    this.post({ type: 'plans', method: request.method, target: request.target, calibration: windows, plans });
  }

  receive(raw: unknown): void {
    if (!isFromWebview(raw)) {
      this.deps.output.warn(`allocation panel: ignored a malformed message ${JSON.stringify(raw)?.slice(0, 200)}`);
      return;
    }
    const message: FromWebview = raw;
    this.deps.received(message);
    switch (message.type) {
      case 'ready':
        return this.onReady();
      case 'computePlans':
        return void this.reported(() => this.computePlans(message.method, message.target, message.quick));
      case 'requestEstimate':
        return this.estimate(message.requestId, message);
      case 'apply':
        return void this.reported(() => this.applyEdit(message));
      case 'export':
        return void this.reported(() => this.exportEdit(message));
      case 'cancel':
        return this.job?.abort.abort();
      case 'openReport':
        // The page names the output it last showed (it outlives this host object across reloads); only a PruneLens output is opened.
        return void this.reported(async () => {
          if (!(await readOutputRecord(message.output))) throw new PruneLensError('output', 'not a PruneLens output', message.output);
          await openReport(message.output);
        });
      default:
        return assertNever(message);
    }
  }

  private onReady(): void {
    this.ready = true;
    if (this.loaded) this.postInit();
    if (this.plans) this.postPlans();
    if (this.job?.last) this.post(this.job.last);
    const pending = this.pending;
    this.pending = [];
    for (const message of pending) this.post(message);
    if (!this.job && this.lastDone && !pending.includes(this.lastDone)) this.post(this.lastDone);
  }

  private planRequest(method: Method, target: number, quick: boolean): PlanRequest {
    const config = readConfig();
    const nsamples = quick ? Math.min(QUICK_WINDOWS, config.nsamples) : config.nsamples;
    return { method, target, calibration: { file: settingPath(config.calibrationText, SAMPLE_CALIBRATION_TEXT), nsamples, seqlen: config.seqlen, seed: 0 } };
  }

  private windowsOf(request: PlanRequest, seconds: number): PlanWindows {
    const full = readConfig().nsamples;
    const windows = request.calibration.nsamples;
    const quick = windows < full;
    // Calibration and the sequential loop grow with the windows; BESA's error measurement stops at 32 of them, so this errs high.
    return { windows, quick, seconds, fullWindows: full, fullSeconds: quick ? (seconds * full) / windows : null };
  }

  /** The cached plans for this request, shown; false when there are none. */
  private async cachedPlans(method: Method, target: number, quick: boolean): Promise<boolean> {
    const model = this.loaded;
    if (!model) return false;
    const request = this.planRequest(method, target, quick);
    const cached = await this.deps.cache.read(await this.deps.cache.key(model, request), model.cfg);
    if (!cached) return false;
    this.deps.output.info(`allocation plans for ${model.info.name} (${method}, ${target}, ${request.calibration.nsamples} windows) read from the cache`);
    this.setPlans(model, request, cached.plans, this.windowsOf(request, cached.seconds));
    return true;
  }

  private async computePlans(method: Method, target: number, quick: boolean): Promise<void> {
    const model = this.loaded;
    if (!model) return;
    if (this.job) return this.post({ type: 'error', message: `busy: ${this.job.kind} is still running` });
    if (await this.cachedPlans(method, target, quick)) return;
    const request = this.planRequest(method, target, quick);
    const { calibration } = request;
    const key = await this.deps.cache.key(model, request);
    const config = readConfig();
    // Each allocation runs the whole sequential loop; its stages are named for it so the bar advances across all three.
    const stageOf = (kind: Allocation, stage: string): string => `${ALLOCATION_LABELS[kind]}: ${stage}`;
    // OWL first counts outliers; the BESA-style plan is chosen from one measuring pass (its 'search').
    const stages = ALLOCATION_KINDS.flatMap((kind) => [...(kind === 'owl' ? [{ stage: stageOf(kind, 'outliers'), weight: 0.5 }] : []), { stage: stageOf(kind, kind === 'besa' ? 'search' : 'prune'), weight: 1 }]);
    const what = quick ? `quick plans (${calibration.nsamples} windows)` : 'plans';
    await this.runJob('plans', `PruneLens: ${what} for ${model.info.name} at ${formatPercent(target)}`, stages, async (control) => {
      requireTrust();
      this.deps.output.info(`plan ${model.model}: ${method} at ${target}, calibration ${calibration.nsamples} windows of ${calibration.seqlen} from ${calibration.file}`);
      const start = performance.now();
      const set: Partial<PlanSet> = {};
      for (const kind of ALLOCATION_KINDS) {
        const allocation: Exclude<AllocationRequest, { kind: 'plan' }> = kind === 'owl' ? { kind, ...OWL_DEFAULTS } : { kind };
        set[kind] = await makePlans({
          model: model.model,
          spec: { method, sparsity: target, include: [], exclude: [], ...DEFAULT_SETTINGS },
          allocation,
          calibration,
          runtime: runtimeOf(config),
          ...control,
          onProgress: (e) => control.onProgress?.(e.type === 'stage' ? { ...e, stage: stageOf(kind, e.stage) } : e),
        });
      }
      const seconds = (performance.now() - start) / 1000;
      this.setPlans(model, request, set as PlanSet, this.windowsOf(request, seconds));
      await this.deps.cache.write(key, set as PlanSet, seconds).catch((err: Error) => this.deps.output.warn(`cannot cache the plans: ${err.message}`));
    });
  }

  private setPlans(model: LoadedModel, request: PlanRequest, set: PlanSet, windows: PlanWindows): void {
    this.request = { model: model.model, method: request.method, target: request.target };
    this.plans = { request, set, windows };
    this.postPlans();
  }

  private estimate(requestId: number, edit: Edit): void {
    if (!this.plans || !this.loaded) return;
    try {
      const plan = editPlan(this.plans.set[edit.allocation], edit, this.loaded.cfg);
      const { score, perBlock } = estimatePlan(plan);
      this.post({ type: 'estimate', requestId, score, perBlock, target: planSparsity(plan, this.loaded.cfg) });
    } catch (err) {
      this.post({ type: 'error', message: errorMessage(err) });
    }
  }

  /** The edited plan, or undefined after telling the page why there is none. */
  private editedPlan(edit: Edit): Plan | undefined {
    if (!this.loaded || !this.plans) return void this.post({ type: 'error', message: 'the plans are not ready yet' });
    if (this.job) return void this.post({ type: 'error', message: `busy: ${this.job.kind} is still running` });
    try {
      return editPlan(this.plans.set[edit.allocation], edit, this.loaded.cfg);
    } catch (err) {
      return void this.post({ type: 'error', message: errorMessage(err) });
    }
  }

  private suggestedOutput(plan: Plan): string {
    const model = this.loaded!;
    const config = readConfig();
    const place = { model: model.model, outputLocation: config.outputLocation, embeddedModel: EMBEDDED_MODEL, home: workspaceHome() ?? this.deps.storage };
    const name = pruneOutputName(model.model, this.plans!.request.method, { kind: 'sparsity', sparsity: plan.target }, plan.allocation === 'manual' ? 'plan' : plan.allocation);
    return path.join(outputParent(place), name);
  }

  /** Apply prunes into the folder the settings give (beside the model by default). */
  private async applyEdit(edit: Edit): Promise<void> {
    const plan = this.editedPlan(edit);
    if (!plan) return;
    await this.pruneInto('apply', plan, this.suggestedOutput(plan));
  }

  /** Export writes the plan file, or the model: a copy of the one Apply just wrote by this same plan, else a new prune. */
  private async exportEdit(edit: Edit & { what?: 'model' | 'plan' }): Promise<void> {
    const plan = this.editedPlan(edit);
    if (!plan) return;
    // Export asks where; the suggestion is one no folder has yet (Apply's output usually holds the plain name).
    const suggested = await unusedName(this.suggestedOutput(plan));
    if (edit.what === 'plan') {
      const target = await vscode.window.showSaveDialog({ defaultUri: vscode.Uri.file(`${suggested}.plan.json`), filters: { 'PruneLens plan': ['json'] }, title: 'Export the plan', saveLabel: 'Export' });
      if (!target) return;
      await fs.writeFile(target.fsPath, `${JSON.stringify(plan, null, 2)}\n`);
      this.deps.output.info(`plan written to ${target.fsPath}`);
      return this.post({ type: 'done', job: 'export', output: target.fsPath, pplDense: null, ppl: null, sparsity: plan.target, copied: false, planOnly: true });
    }
    const picked = await vscode.window.showSaveDialog({ defaultUri: vscode.Uri.file(suggested), title: 'Export the pruned model to a new folder', saveLabel: 'Export' });
    if (!picked) return;
    const applied = this.applied;
    const reuse = applied && samePlan(applied.plan, plan) && applied.method === this.plans!.request.method && sameCalibration(applied.calibration, this.plans!.request.calibration) && (await exists(path.join(applied.output, RECORD_FILE))) ? applied : undefined;
    if (reuse) return this.copyOutput(reuse.output, picked.fsPath, plan);
    await this.pruneInto('export', plan, picked.fsPath);
  }

  /** An applied model copied to `out`: under a temporary name, its record pointed at the new folder, then renamed into place. */
  private async copyOutput(from: string, out: string, plan: Plan): Promise<void> {
    const model = this.loaded!;
    const check = checkOutput(out, model.model);
    if (!check.ok) return this.post({ type: 'error', message: check.problem });
    if (path.resolve(from) === path.resolve(out)) return this.post({ type: 'error', message: `${out} is the applied model itself` });
    if (check.replaces && !(await confirmReplace(out))) return;
    const partial = `${out}.partial-${process.pid}`;
    try {
      await fs.cp(from, partial, { recursive: true, errorOnExist: true });
      const recordFile = path.join(partial, RECORD_FILE);
      const record = JSON.parse(await fs.readFile(recordFile, 'utf8')) as PruneRecord;
      record.output = out;
      await fs.writeFile(recordFile, `${JSON.stringify(record, null, 2)}\n`);
      if (check.replaces) await fs.rm(out, { recursive: true, force: true });
      await fs.rename(partial, out);
      // As a pruned export does, the plan is kept beside the model it made.
      await fs.writeFile(`${out}.plan.json`, `${JSON.stringify(plan, null, 2)}\n`);
      this.deps.output.info(`exported ${from} to ${out} (a copy: the same plan was just applied)`);
      this.finished('export', record, true);
    } catch (err) {
      await fs.rm(partial, { recursive: true, force: true });
      throw err;
    }
  }

  private finished(job: 'apply' | 'export', record: PruneRecord, copied: boolean): void {
    const result: JobResult = { job, output: record.output, pplDense: record.perplexity.dense, ppl: record.perplexity.pruned, sparsity: record.measured.sparsity, copied, planOnly: false };
    this.lastDone = { type: 'done', ...result };
    this.post(this.lastDone);
    this.deps.pruned(record);
    const ppl = record.perplexity.pruned === null ? '' : `, perplexity ${formatPerplexity(record.perplexity.dense)} → ${formatPerplexity(record.perplexity.pruned)}`;
    // Not awaited: the job is done when the model is written, not when the message is dismissed.
    void vscode.window.showInformationMessage(`PruneLens: ${copied ? 'copied' : 'pruned'} into ${path.basename(record.output)}${ppl}`, 'Open Report').then((choice) => {
      if (choice) void reportErrors(this.deps.output, () => openReport(record.output));
    });
  }

  /** The dense evaluation of this model, text and seqlen: from the cache, else made once and kept. */
  private async denseEvaluation(control: RunControl, textFile: string, seqlen: number): Promise<PerplexityResult> {
    const model = this.loaded!;
    const key = await this.deps.dense.key(model.inputs, textFile, seqlen);
    const cached = await this.deps.dense.read(key);
    if (cached) {
      this.deps.output.info(`dense perplexity of ${model.info.name} on ${path.basename(textFile)} at seqlen ${seqlen}: ${formatPerplexity(cached.ppl)} (cached)`);
      return cached;
    }
    const result = await evaluateDense({
      model: model.model,
      textFile,
      seqlen,
      runtime: runtimeOf(readConfig()),
      ...control,
      onProgress: (e) => control.onProgress?.(e.type === 'stage' ? { ...e, stage: 'evaluate dense' } : e),
    });
    await this.deps.dense.write(key, result).catch((err: Error) => this.deps.output.warn(`cannot cache the dense evaluation: ${err.message}`));
    return result;
  }

  private async pruneInto(job: 'apply' | 'export', plan: Plan, out: string): Promise<void> {
    const model = this.loaded!;
    const check = checkOutput(out, model.model);
    if (!check.ok) return this.post({ type: 'error', message: check.problem });
    if (check.replaces && !(await confirmReplace(out))) return;
    const method = this.plans!.request.method;
    const calibration = this.plans!.request.calibration;
    const config = readConfig();
    // Export keeps the plan beside the model it made; Apply's is only the engine's input.
    const planFile = job === 'export' ? `${out}.plan.json` : path.join(os.tmpdir(), `prunelens-plan-${randomUUID()}.json`);
    const stages = [
      { stage: 'evaluate dense', weight: 1 },
      { stage: 'prune', weight: 2 },
      { stage: 'evaluate pruned', weight: 1 },
    ];
    await this.runJob(job, `PruneLens: pruning ${model.info.name} (${METHOD_LABELS[method]}, ${ALLOCATION_LABELS[plan.allocation as Allocation] ?? plan.allocation} plan)`, stages, async (control) => {
      requireTrust();
      this.deps.output.info(`prune ${model.model} into ${out} by the ${plan.allocation} plan (${formatPercent(plan.target)}), ${METHOD_LABELS[method]}`);
      const evaluation = { file: settingPath(config.evaluationText, SAMPLE_EVALUATION_TEXT), seqlen: config.seqlen };
      const dense = await this.denseEvaluation(control, evaluation.file, evaluation.seqlen);
      await fs.writeFile(planFile, `${JSON.stringify(plan, null, 2)}\n`);
      let succeeded = false;
      try {
        const record = await applyPlan({
          model: model.model,
          out,
          overwrite: check.replaces,
          spec: { method, sparsity: plan.target, include: [], exclude: [], ...DEFAULT_SETTINGS },
          allocation: { kind: 'plan', file: planFile },
          calibration,
          evaluation,
          dense,
          runtime: runtimeOf(config),
          ...control,
        });
        succeeded = true;
        if (job === 'apply') this.applied = { plan, method, calibration, output: record.output };
        this.finished(job, record, false);
      } finally {
        if (job === 'apply' || !succeeded) await fs.rm(planFile, { force: true });
      }
    });
  }

  /**
   * One job at a time, shown both as a cancellable notification and on the panel's progress line; the
   * panel's Cancel button aborts it like the notification's.
   */
  private async runJob(kind: Job, title: string, stages: readonly StageWeight[], work: (control: RunControl) => Promise<void>): Promise<void> {
    if (this.job) return this.post({ type: 'error', message: `busy: ${this.job.kind} is still running` });
    const running: RunningJob = { kind, abort: new AbortController() };
    this.job = running;
    try {
      await this.reported(
        () =>
          withEngineProgress(title, stages, this.deps.output, (control) =>
            work({
              ...control,
              signal: AbortSignal.any([control.signal!, running.abort.signal]),
              onProgress: (e) => {
                control.onProgress?.(e);
                if (e.type !== 'stage') return;
                running.last = { type: 'progress', job: kind, stage: e.stage, done: e.done, total: e.total, detail: e.detail };
                this.post(running.last);
              },
            }),
          ),
        kind,
      );
    } finally {
      this.job = undefined;
    }
  }

  /** Runs `work`, telling the page as well as the user when it fails; undefined then. */
  private async reported<T>(work: () => Promise<T> | Thenable<T>, job?: Job): Promise<T | undefined> {
    let result: T | undefined;
    await reportErrors(this.deps.output, async () => {
      try {
        result = await work();
      } catch (err) {
        if (job && isCancelled(err)) this.post({ type: 'cancelled', job });
        else if (!isCancelled(err)) this.post({ type: 'error', message: errorMessage(err), ...(job ? { job } : {}) });
        throw err;
      }
    });
    return result;
  }
}

const exists = (file: string): Promise<boolean> => fs.stat(file).then(() => true, () => false);

/** `folder`, or `folder-2`, `folder-3`… when taken. */
async function unusedName(folder: string): Promise<string> {
  let candidate = folder;
  for (let n = 2; await exists(candidate); n++) candidate = `${folder}-${n}`;
  return candidate;
}
const sameCalibration = (a: PlanRequest['calibration'], b: PlanRequest['calibration']): boolean => JSON.stringify(a) === JSON.stringify(b);

function errorMessage(err: unknown): string {
  return err instanceof PruneLensError ? err.message : `Unexpected error: ${err instanceof Error ? err.message : String(err)}`;
}

async function loadModel(model: string): Promise<LoadedModel> {
  const checkpoint = await Checkpoint.open(model);
  try {
    const summary = describeModel(checkpoint);
    const optional = ['config.json', 'tokenizer.json', 'tokenizer_config.json'].map((f) => path.join(checkpoint.dir, f));
    const present = await Promise.all(optional.map((f) => fs.stat(f).then(() => f, () => undefined)));
    return {
      model,
      dir: checkpoint.dir,
      files: checkpoint.files,
      inputs: [...present.filter((f): f is string => f !== undefined), ...checkpoint.files],
      cfg: checkpoint.config,
      info: { path: checkpoint.dir, name: path.basename(checkpoint.dir), modelType: summary.modelType, layers: summary.layers, parameters: summary.parameters },
    };
  } finally {
    await checkpoint.close();
  }
}
