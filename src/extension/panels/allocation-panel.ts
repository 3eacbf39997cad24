import { randomUUID } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as vscode from 'vscode';
import type { AllocationRequest } from '../../engine/allocate/allocation';
import { estimatePlan } from '../../engine/allocate/estimate';
import { OWL_DEFAULTS } from '../../engine/allocate/owl';
import { planSparsity, type Allocation, type Plan } from '../../engine/allocate/plan';
import { EMBEDDED_MODEL, SAMPLE_CALIBRATION_TEXT, SAMPLE_EVALUATION_TEXT } from '../../engine/embedded';
import { isCancelled, PruneLensError } from '../../engine/errors';
import type { PruneRecord } from '../../engine/export/record';
import { Checkpoint } from '../../engine/io/checkpoint';
import type { ModelConfig } from '../../engine/model/config';
import { describeModel } from '../../engine/model/describe';
import type { Method } from '../../engine/prune/spec';
import type { RunControl } from '../../engine/progress';
import {
  ALLOCATION_KINDS,
  ALLOCATION_LABELS,
  assertNever,
  isFromWebview,
  METHOD_LABELS,
  restorableState,
  type FromWebview,
  type Job,
  type ModelInfo,
  type PanelState,
  type PlanSummary,
  type ToWebview,
} from '../../shared/protocol';
import { readConfig, runtimeOf, settingPath, workspaceHome } from '../config';
import { openReport } from '../decorations/open-report';
import { reportErrors, requireTrust } from '../errors';
import { checkOutput, outputParent, pruneOutputName } from '../prune/prune-options';
import { confirmReplace } from '../prune/prune-wizard';
import { withEngineProgress } from '../progress';
import type { StageWeight } from '../stage-progress';
import { editPlan } from './plan-edits';
import { PlanCache, type PlanRequest, type PlanSet } from './plan-cache';
import { webviewHtml, webviewOptions } from './webview-html';
import { engineJobs } from '../worker/engine';

export const ALLOCATION_PANEL = 'prunelens.allocationPanel';

const TITLE = 'PruneLens: Sparsity Allocation';
const DEFAULTS: Pick<PanelState, 'method' | 'target'> = { method: 'wanda', target: 0.5 };

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
  /** Where outputs of the embedded model go when no workspace folder is open. */
  storage: string;
  pruned(record: PruneRecord): void;
  received(message: FromWebview): void;
}

/** One panel at a time; it is restored after a reload from the state its webview saved. */
export function registerAllocationPanel(context: vscode.ExtensionContext, output: vscode.LogOutputChannel): AllocationPanelRegistration {
  const pruned = new vscode.EventEmitter<PruneRecord>();
  const received = new vscode.EventEmitter<FromWebview>();
  const deps: Dependencies = {
    extensionUri: context.extensionUri,
    output,
    cache: new PlanCache(vscode.Uri.joinPath(context.globalStorageUri, 'plans').fsPath),
    storage: context.globalStorageUri.fsPath,
    pruned: (record) => pruned.fire(record),
    received: (message) => received.fire(message),
  };
  let current: AllocationPanel | undefined;
  const adopt = (panel: vscode.WebviewPanel, request: PanelRequest): void => {
    current?.dispose();
    const created = new AllocationPanel(panel, deps, request);
    current = created;
    panel.onDidDispose(() => {
      if (current === created) current = undefined;
    });
  };
  return {
    disposables: [
      pruned,
      received,
      vscode.window.registerWebviewPanelSerializer(ALLOCATION_PANEL, {
        async deserializeWebviewPanel(panel, state: unknown) {
          const request = restorableState(state);
          // A page that never got its model has nothing to restore.
          if (!request) return panel.dispose();
          panel.webview.options = webviewOptions(deps.extensionUri);
          adopt(panel, request);
        },
      }),
      { dispose: () => current?.dispose() },
    ],
    async openAllocationPanel(model) {
      requireTrust();
      const request = { ...DEFAULTS, model: (typeof model === 'string' ? model : model?.fsPath) ?? EMBEDDED_MODEL };
      if (current) return current.open(request);
      const panel = vscode.window.createWebviewPanel(ALLOCATION_PANEL, TITLE, vscode.ViewColumn.Active, {
        ...webviewOptions(deps.extensionUri),
        // The page is rebuilt from its saved state each time it is shown again; nothing is held while hidden.
        retainContextWhenHidden: false,
      });
      adopt(panel, request);
    },
    onDidPrune: pruned.event,
    onDidReceiveMessage: received.event,
    deliver(message) {
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
  private loaded?: LoadedModel;
  /** The settings the page shows; the plans below match them once computed. */
  private request: PanelRequest;
  private plans?: { request: PlanRequest; set: PlanSet };
  private job?: RunningJob;
  private lastOutput?: string;
  private disposed = false;

  constructor(
    private readonly panel: vscode.WebviewPanel,
    private readonly deps: Dependencies,
    request: PanelRequest,
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
    void this.open(request);
  }

  /** Shows `request.model`, planning it unless it is already shown. */
  async open(request: PanelRequest): Promise<void> {
    this.panel.reveal();
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
    await this.reported(() => this.computePlans(request.method, request.target));
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
    if (this.ready) {
      void this.panel.webview.postMessage(message);
    } else if (message.type === 'done' || message.type === 'cancelled' || message.type === 'error') {
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
    });
  }

  private postPlans(): void {
    const { request, set } = this.plans!;
    const plans = Object.fromEntries(
      ALLOCATION_KINDS.map((kind) => [kind, { blocks: set[kind].blocks.map((b) => b.sparsity), ...estimatePlan(set[kind]) }]),
    ) as Record<Allocation, PlanSummary>;
    this.post({ type: 'plans', method: request.method, target: request.target, plans });
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
        return void this.reported(() => this.computePlans(message.method, message.target));
      case 'requestEstimate':
        return this.estimate(message.requestId, message.allocation, message.blocks);
      case 'apply':
      case 'export':
        return void this.reported(() => this.prune(message.type, message.allocation, message.blocks));
      case 'cancel':
        return this.job?.abort.abort();
      case 'openReport': {
        const out = this.lastOutput;
        if (out) return void reportErrors(this.deps.output, () => openReport(out));
        return this.post({ type: 'error', message: 'nothing has been pruned from this panel yet' });
      }
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
  }

  private async computePlans(method: Method, target: number): Promise<void> {
    const model = this.loaded;
    if (!model) return;
    if (this.job) return this.post({ type: 'error', message: `busy: ${this.job.kind} is still running` });
    const config = readConfig();
    const calibration = { file: settingPath(config.calibrationText, SAMPLE_CALIBRATION_TEXT), nsamples: config.nsamples, seqlen: config.seqlen, seed: 0 };
    const request: PlanRequest = { method, target, calibration };
    const key = await this.deps.cache.key(model, request);
    const cached = await this.deps.cache.read(key, model.cfg);
    if (cached) {
      this.deps.output.info(`allocation plans for ${model.info.name} (${method}, ${target}) read from the cache`);
      return this.setPlans(model, request, cached);
    }
    // Each allocation runs the whole sequential loop; its stages are named for it so the bar advances across all three.
    const stageOf = (kind: Allocation, stage: string): string => `${ALLOCATION_LABELS[kind]}: ${stage}`;
    const stages = ALLOCATION_KINDS.flatMap((kind) => [...(kind === 'owl' ? [{ stage: stageOf(kind, 'outliers'), weight: 0.5 }] : []), { stage: stageOf(kind, 'prune'), weight: 1 }]);
    await this.runJob('plans', `PruneLens: planning ${model.info.name} at ${percent(target)}`, stages, async (control) => {
      requireTrust();
      this.deps.output.info(`plan ${model.model}: ${method} at ${target}, calibration ${calibration.nsamples} windows of ${calibration.seqlen} from ${calibration.file}`);
      const set: Partial<PlanSet> = {};
      for (const kind of ALLOCATION_KINDS) {
        const allocation: Exclude<AllocationRequest, { kind: 'plan' }> = kind === 'owl' ? { kind, ...OWL_DEFAULTS } : { kind };
        set[kind] = await engineJobs.run(
          'plan',
          { model: model.model, spec: { method, sparsity: target, include: [], exclude: [], blocksize: 128, percdamp: 0.01 }, allocation, calibration, runtime: runtimeOf(config) },
          { ...control, onProgress: (e) => control.onProgress?.(e.type === 'stage' ? { ...e, stage: stageOf(kind, e.stage) } : e) },
        );
      }
      this.setPlans(model, request, set as PlanSet);
      await this.deps.cache.write(key, set as PlanSet).catch((err: Error) => this.deps.output.warn(`cannot cache the plans: ${err.message}`));
    });
  }

  private setPlans(model: LoadedModel, request: PlanRequest, set: PlanSet): void {
    this.request = { model: model.model, method: request.method, target: request.target };
    this.plans = { request, set };
    this.postPlans();
  }

  private estimate(requestId: number, allocation: Allocation, blocks: number[]): void {
    if (!this.plans || !this.loaded) return;
    try {
      const plan = editPlan(this.plans.set[allocation], blocks, this.loaded.cfg);
      const { score, perBlock } = estimatePlan(plan);
      this.post({ type: 'estimate', requestId, score, perBlock, target: planSparsity(plan, this.loaded.cfg) });
    } catch (err) {
      this.post({ type: 'error', message: errorMessage(err) });
    }
  }

  /** Apply prunes into the folder the settings give (beside the model by default); Export asks where, and keeps the plan file beside it. */
  private async prune(job: 'apply' | 'export', allocation: Allocation, blocks: number[]): Promise<void> {
    const model = this.loaded;
    if (!model || !this.plans) return this.post({ type: 'error', message: 'the plans are not ready yet' });
    if (this.job) return this.post({ type: 'error', message: `busy: ${this.job.kind} is still running` });
    let plan: Plan;
    try {
      plan = editPlan(this.plans.set[allocation], blocks, model.cfg);
    } catch (err) {
      return this.post({ type: 'error', message: errorMessage(err) });
    }
    const method = this.plans.request.method;
    const config = readConfig();
    const place = { model: model.model, outputLocation: config.outputLocation, embeddedModel: EMBEDDED_MODEL, home: workspaceHome() ?? this.deps.storage };
    const name = pruneOutputName(model.model, method, { kind: 'sparsity', sparsity: plan.target }, plan.allocation === 'manual' ? 'plan' : plan.allocation);
    const suggested = path.join(outputParent(place), name);
    const picked =
      job === 'apply'
        ? suggested
        : (await vscode.window.showSaveDialog({ defaultUri: vscode.Uri.file(suggested), title: 'Export the pruned model to a new folder', saveLabel: 'Export' }))?.fsPath;
    if (picked === undefined) return;
    const out = picked;
    const check = checkOutput(out, model.model);
    if (!check.ok) return this.post({ type: 'error', message: check.problem });
    if (check.replaces && !(await confirmReplace(out))) return;
    // Export keeps the plan beside the model it made; Apply's is only the engine's input.
    const planFile = job === 'export' ? `${out}.plan.json` : path.join(os.tmpdir(), `prunelens-plan-${randomUUID()}.json`);
    const stages = [
      { stage: 'evaluate dense', weight: 1 },
      { stage: 'prune', weight: 2 },
      { stage: 'evaluate pruned', weight: 1 },
    ];
    await this.runJob(job, `PruneLens: pruning ${model.info.name} (${METHOD_LABELS[method]}, ${plan.allocation} plan)`, stages, async (control) => {
      requireTrust();
      this.deps.output.info(`prune ${model.model} into ${out} by the ${plan.allocation} plan (${percent(plan.target)}), ${method}`);
      await fs.writeFile(planFile, `${JSON.stringify(plan, null, 2)}\n`);
      let succeeded = false;
      try {
        const record = await engineJobs.run(
          'prune',
          {
            model: model.model,
            out,
            overwrite: check.replaces,
            spec: { method, sparsity: plan.target, include: [], exclude: [], blocksize: 128, percdamp: 0.01 },
            allocation: { kind: 'plan', file: planFile },
            calibration: this.plans!.request.calibration,
            evaluation: { file: settingPath(config.evaluationText, SAMPLE_EVALUATION_TEXT), seqlen: config.seqlen },
            runtime: runtimeOf(config),
          },
          control,
        );
        succeeded = true;
        this.lastOutput = record.output;
        this.post({ type: 'done', job, output: record.output, pplDense: record.perplexity.dense, ppl: record.perplexity.pruned, sparsity: record.measured.sparsity });
        this.deps.pruned(record);
        const ppl = record.perplexity.pruned === null ? '' : `, perplexity ${record.perplexity.dense?.toFixed(2) ?? '-'} → ${record.perplexity.pruned.toFixed(2)}`;
        // Not awaited: the job is done when the model is written, not when the message is dismissed.
        void vscode.window.showInformationMessage(`PruneLens: pruned into ${path.basename(record.output)}${ppl}`, 'Open Report').then((choice) => {
          if (choice) void reportErrors(this.deps.output, () => openReport(record.output));
        });
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

function errorMessage(err: unknown): string {
  return err instanceof PruneLensError ? err.message : `Unexpected error: ${err instanceof Error ? err.message : String(err)}`;
}

async function loadModel(model: string): Promise<LoadedModel> {
  const checkpoint = await Checkpoint.open(model);
  try {
    const summary = describeModel(checkpoint);
    return {
      model,
      dir: checkpoint.dir,
      files: checkpoint.files,
      cfg: checkpoint.config,
      info: { path: checkpoint.dir, name: path.basename(checkpoint.dir), modelType: summary.modelType, layers: summary.layers, parameters: summary.parameters },
    };
  } finally {
    await checkpoint.close();
  }
}

function percent(v: number): string {
  return `${(100 * v).toFixed(0)}%`;
}
