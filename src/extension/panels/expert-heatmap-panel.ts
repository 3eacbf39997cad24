import * as path from 'node:path';
import * as vscode from 'vscode';
import { formatPerplexity } from '../../engine/display';
import { EMBEDDED_MODEL, SAMPLE_CALIBRATION_TEXT, SAMPLE_EVALUATION_TEXT } from '../../engine/embedded';
import { isCancelled, PruneLensError } from '../../engine/errors';
import { checkExpertList, expertRemovalCost, formatExpertList } from '../../engine/experts/expert-list';
import type { ExpertRecord } from '../../engine/experts/expert-prune';
import { moeOf, type ExpertStats } from '../../engine/experts/expert-stats';
import { expertListOutputName } from '../../engine/export/output-name';
import { DTYPE_BYTES } from '../../engine/io/dtype';
import { Checkpoint } from '../../engine/io/checkpoint';
import { parameterCount, type ModelConfig } from '../../engine/model/config';
import type { RunControl } from '../../engine/progress';
import {
  assertNever,
  isFromHeatmap,
  restorableHeatmap,
  type ExpertSelection,
  type HeatmapFromWebview,
  type HeatmapJob,
  type HeatmapModel,
  type HeatmapStats,
  type HeatmapToWebview,
} from '../../shared/protocol';
import { readConfig, runtimeOf, settingPath, workspaceHome } from '../config';
import { openReport } from '../decorations/open-report';
import { reportErrors, requireTrust } from '../errors';
import type { FileHashes } from '../file-hashes';
import { checkOutput, outputParent } from '../prune/prune-options';
import { confirmReplace } from '../prune/prune-wizard';
import { withEngineProgress } from '../progress';
import { readOutputRecord } from '../runs/output-record';
import type { StageWeight } from '../stage-progress';
import { engineJobs } from '../worker/engine';
import { ExpertStatsCache } from './expert-stats-cache';
import { singlePanel } from './single-panel';
import { webviewHtml } from './webview-html';

export const EXPERT_HEATMAP_PANEL = 'prunelens.expertHeatmap';
const TITLE = 'PruneLens: Expert Heat Map';
const PAGE = { script: 'heatmap.js', style: 'expert-heatmap.css' };

export interface ExpertHeatmapRegistration {
  disposables: vscode.Disposable[];
  /** The command handler: a MoE checkpoint folder (or its config.json / safetensors file). */
  openExpertHeatmap(model: string): Promise<void>;
  /** Each time Apply has written a model. */
  onDidPrune: vscode.Event<ExpertRecord>;
  /** Every valid message the page sent, for callers (the end-to-end tests) that follow the panel. */
  onDidReceiveMessage: vscode.Event<HeatmapFromWebview>;
  /** Statistics computed by the heat map or the Model view, for the other to show. */
  onDidComputeStats: vscode.Event<{ model: string; stats: ExpertStats }>;
}

interface Dependencies {
  extensionUri: vscode.Uri;
  output: vscode.LogOutputChannel;
  cache: ExpertStatsCache;
  storage: string;
  pruned(record: ExpertRecord): void;
  received(message: HeatmapFromWebview): void;
  computed(model: string, stats: ExpertStats): void;
}

/** One heat map at a time; restored after a reload from the model its page saved. */
export function registerExpertHeatmap(context: vscode.ExtensionContext, output: vscode.LogOutputChannel, hashes: FileHashes): ExpertHeatmapRegistration {
  const pruned = new vscode.EventEmitter<ExpertRecord>();
  const received = new vscode.EventEmitter<HeatmapFromWebview>();
  const computed = new vscode.EventEmitter<{ model: string; stats: ExpertStats }>();
  const deps: Dependencies = {
    extensionUri: context.extensionUri,
    output,
    cache: new ExpertStatsCache(vscode.Uri.joinPath(context.globalStorageUri, 'experts').fsPath, hashes),
    storage: context.globalStorageUri.fsPath,
    pruned: (record) => pruned.fire(record),
    received: (message) => received.fire(message),
    computed: (model, stats) => computed.fire({ model, stats }),
  };
  const panels = singlePanel<string, ExpertHeatmap>({
    viewType: EXPERT_HEATMAP_PANEL,
    title: TITLE,
    extensionUri: deps.extensionUri,
    restore: restorableHeatmap,
    create: (panel, model, restored) => new ExpertHeatmap(panel, deps, model, restored),
  });
  return {
    disposables: [pruned, received, computed, ...panels.disposables],
    async openExpertHeatmap(model) {
      requireTrust();
      await panels.open(model);
    },
    onDidPrune: pruned.event,
    onDidReceiveMessage: received.event,
    onDidComputeStats: computed.event,
  };
}

interface LoadedModel {
  model: string;
  cfg: ModelConfig;
  dtypeBytes: number;
  inputs: string[];
  info: HeatmapModel;
}

async function loadModel(model: string): Promise<LoadedModel> {
  const checkpoint = await Checkpoint.open(model);
  try {
    const cfg = checkpoint.config;
    const moe = moeOf(cfg, checkpoint.dir);
    return {
      model,
      cfg,
      dtypeBytes: DTYPE_BYTES[checkpoint.dtype],
      inputs: [path.join(checkpoint.dir, 'config.json'), ...checkpoint.files],
      info: {
        path: checkpoint.dir,
        name: path.basename(checkpoint.dir),
        modelType: cfg.modelType,
        layers: cfg.numLayers,
        sparseLayers: moe.sparse.flatMap((s, l) => (s ? [l] : [])),
        experts: moe.experts,
        topK: moe.topK,
        parameters: parameterCount(cfg),
      },
    };
  } finally {
    await checkpoint.close();
  }
}

function calibrationRequest() {
  const config = readConfig();
  return { file: settingPath(config.calibrationText, SAMPLE_CALIBRATION_TEXT), nsamples: config.nsamples, seqlen: config.seqlen, seed: 0 };
}

function pageStats(stats: ExpertStats): HeatmapStats {
  const { file, nsamples, seqlen } = stats.calibration;
  return { calibration: { file: path.basename(file), nsamples, seqlen }, tokens: stats.tokens, layers: stats.layers };
}

const selectionLists = (selection: ExpertSelection): [number, number][] => Object.entries(selection).flatMap(([l, experts]) => experts.map((e) => [Number(l), e] as [number, number]));

class ExpertHeatmap {
  private readonly disposables: vscode.Disposable[] = [];
  private ready = false;
  private pending: HeatmapToWebview[] = [];
  private loaded?: LoadedModel;
  private stats?: ExpertStats;
  private job?: { kind: HeatmapJob; abort: AbortController; last?: HeatmapToWebview };
  private disposed = false;

  constructor(
    private readonly panel: vscode.WebviewPanel,
    private readonly deps: Dependencies,
    model: string,
    restored: boolean,
  ) {
    panel.webview.html = webviewHtml(panel.webview, deps.extensionUri, TITLE, PAGE);
    this.disposables.push(
      panel.onDidDispose(() => this.dispose()),
      panel.webview.onDidReceiveMessage((raw: unknown) => this.receive(raw)),
      panel.onDidChangeViewState(() => {
        if (!panel.visible) this.ready = false;
      }),
    );
    // A panel VS Code restores after a reload must not take the front from whatever tab the person has
    // moved to while the extension was starting.
    void this.open(model, !restored);
  }

  /** Shows `model`: its statistics from the cache, else computed (a calibration pass in the engine process). */
  async open(model: string, reveal = true): Promise<void> {
    if (reveal) this.panel.reveal();
    if (this.job) {
      void vscode.window.showWarningMessage(`PruneLens: the expert heat map is busy (${this.job.kind}); cancel it or wait before opening another model.`);
      return;
    }
    if (this.loaded?.model === model && this.stats) return;
    const loaded = await this.reported(async () => {
      requireTrust();
      return loadModel(model);
    });
    if (!loaded) return;
    this.loaded = loaded;
    this.stats = undefined;
    this.panel.title = `${TITLE} (${loaded.info.name})`;
    this.postInit();
    await this.reported(() => this.computeStats());
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.job?.abort.abort();
    this.panel.dispose();
    for (const d of this.disposables) d.dispose();
  }

  private post(message: HeatmapToWebview): void {
    if (this.disposed) return;
    if (this.ready) void this.panel.webview.postMessage(message);
    else if (message.type === 'done' || message.type === 'cancelled' || message.type === 'error') this.pending.push(message);
  }

  private postInit(): void {
    const config = readConfig();
    this.post({
      type: 'init',
      model: this.loaded!.info,
      calibration: path.basename(settingPath(config.calibrationText, SAMPLE_CALIBRATION_TEXT)),
      evaluation: path.basename(settingPath(config.evaluationText, SAMPLE_EVALUATION_TEXT)),
    });
  }

  receive(raw: unknown): void {
    if (!isFromHeatmap(raw)) {
      this.deps.output.warn(`expert heat map: ignored a malformed message ${JSON.stringify(raw)?.slice(0, 200)}`);
      return;
    }
    const message: HeatmapFromWebview = raw;
    this.deps.received(message);
    switch (message.type) {
      case 'ready':
        return this.onReady();
      case 'computeStats':
        return void this.reported(() => this.computeStats());
      case 'requestCost':
        return this.cost(message.requestId, message.selection);
      case 'apply':
        return void this.reported(() => this.apply(message.selection));
      case 'cancel':
        return this.job?.abort.abort();
      case 'openReport':
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
    if (this.stats) this.post({ type: 'stats', stats: pageStats(this.stats) });
    if (this.job?.last) this.post(this.job.last);
    const pending = this.pending;
    this.pending = [];
    for (const message of pending) this.post(message);
  }

  private async computeStats(): Promise<void> {
    const model = this.loaded;
    if (!model) return;
    const calibration = calibrationRequest();
    const key = await this.deps.cache.key(model.inputs, calibration);
    const cached = await this.deps.cache.read(key);
    if (cached) {
      this.deps.output.info(`expert statistics of ${model.info.name} read from the cache`);
      this.stats = cached;
      return this.post({ type: 'stats', stats: pageStats(cached) });
    }
    await this.runJob('stats', `PruneLens: expert statistics of ${model.info.name}`, [{ stage: 'expert statistics', weight: 1 }], async (control) => {
      this.deps.output.info(`expert statistics of ${model.model}: ${calibration.nsamples} windows of ${calibration.seqlen} from ${calibration.file}`);
      const stats = await engineJobs.run('expertStats', { model: model.model, calibration, runtime: runtimeOf(readConfig()) }, control);
      this.stats = stats;
      this.post({ type: 'stats', stats: pageStats(stats) });
      this.deps.computed(model.info.path, stats);
      await this.deps.cache.write(key, stats).catch((err: Error) => this.deps.output.warn(`cannot cache the expert statistics: ${err.message}`));
    });
  }

  /** The engine's price of a selection, or why it cannot be applied. */
  private cost(requestId: number, selection: ExpertSelection): void {
    const model = this.loaded;
    if (!model) return;
    try {
      const lists = checkExpertList(model.cfg, selectionLists(selection), model.info.path);
      this.post({ type: 'cost', requestId, cost: expertRemovalCost(model.cfg, model.dtypeBytes, lists) });
    } catch (err) {
      if (!(err instanceof PruneLensError)) throw err;
      this.post({ type: 'costError', requestId, message: err.message });
    }
  }

  private async apply(selection: ExpertSelection): Promise<void> {
    const model = this.loaded;
    if (!model) return;
    if (this.job) return this.post({ type: 'error', message: `busy: ${this.job.kind} is still running` });
    const lists = checkExpertList(model.cfg, selectionLists(selection), model.info.path);
    if (lists.size === 0) return this.post({ type: 'error', message: 'select experts to remove first' });
    const experts = Object.fromEntries([...lists].map(([l, e]) => [String(l), e]));
    const config = readConfig();
    const place = { model: model.model, outputLocation: config.outputLocation, embeddedModel: EMBEDDED_MODEL, home: workspaceHome() ?? this.deps.storage };
    const out = path.join(outputParent(place), expertListOutputName(model.model, formatExpertList(lists)));
    const check = checkOutput(out, model.model);
    if (!check.ok) return this.post({ type: 'error', message: check.problem });
    if (check.replaces && !(await confirmReplace(out))) return;
    const stages = [
      { stage: 'expert statistics', weight: 1 },
      { stage: 'router inputs', weight: 1 },
      { stage: 'evaluate dense', weight: 1 },
      { stage: 'evaluate pruned', weight: 1 },
      { stage: 'masked routing', weight: 1 },
    ];
    await this.runJob('apply', `PruneLens: removing experts from ${model.info.name}`, stages, async (control) => {
      requireTrust();
      this.deps.output.info(`remove experts ${formatExpertList(lists)} from ${model.model} into ${out}`);
      const record = await engineJobs.run(
        'experts',
        {
          model: model.model,
          out,
          overwrite: check.replaces,
          explicit: { experts, metric: 'reap', seed: 0 },
          calibration: calibrationRequest(),
          evaluation: { file: settingPath(config.evaluationText, SAMPLE_EVALUATION_TEXT), seqlen: config.seqlen },
          runtime: runtimeOf(config),
        },
        control,
      );
      const e = record.experts;
      this.post({ type: 'done', output: record.output, pplDense: record.perplexity.dense, ppl: record.perplexity.pruned, parametersRemoved: record.parameters.before - record.parameters.after, maskedRouting: e.maskedRouting });
      this.deps.pruned(record);
      const ppl = record.perplexity.pruned === null ? '' : `, perplexity ${formatPerplexity(record.perplexity.dense)} → ${formatPerplexity(record.perplexity.pruned)}`;
      void vscode.window.showInformationMessage(`PruneLens: experts removed into ${path.basename(record.output)}${ppl}`, 'Open Report').then((choice) => {
        if (choice) void reportErrors(this.deps.output, () => openReport(record.output));
      });
    });
  }

  /** One job at a time, as a cancellable notification and on the page's progress line; the page's Cancel aborts it too. */
  private async runJob(kind: HeatmapJob, title: string, stages: readonly StageWeight[], work: (control: RunControl) => Promise<void>): Promise<void> {
    if (this.job) return this.post({ type: 'error', message: `busy: ${this.job.kind} is still running` });
    const running = { kind, abort: new AbortController(), last: undefined as HeatmapToWebview | undefined };
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
                running.last = { type: 'progress', job: kind, stage: e.stage, done: e.done, total: e.total };
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
  private async reported<T>(work: () => Promise<T> | Thenable<T>, job?: HeatmapJob): Promise<T | undefined> {
    let result: T | undefined;
    await reportErrors(this.deps.output, async () => {
      try {
        result = await work();
      } catch (err) {
        if (job && isCancelled(err)) this.post({ type: 'cancelled', job });
        else if (!isCancelled(err)) this.post({ type: 'error', message: err instanceof PruneLensError ? err.message : `Unexpected error: ${err instanceof Error ? err.message : String(err)}`, ...(job ? { job } : {}) });
        throw err;
      }
    });
    return result;
  }
}
