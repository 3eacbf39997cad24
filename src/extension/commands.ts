import * as path from 'node:path';
import * as vscode from 'vscode';
import { SAMPLE_EVALUATION_TEXT } from '../engine/embedded';
import { PruneLensError } from '../engine/errors';
import { Checkpoint } from '../engine/io/checkpoint';
import { describeModel } from '../engine/model/describe';
import { readConfig, runtimeOf, settingPath } from './config';
import { reportErrors, requireTrust } from './errors';
import { computeScores, openInModelView, revealFolder, runPrune, runRemoval, runStructured } from './prune/jobs';
import { modelFolderOf } from './prune/prune-options';
import { askModel, askPrune, isPruneArguments, pruneRequestFrom } from './prune/prune-wizard';
import { openReport } from './decorations/open-report';
import { withEngineProgress } from './progress';
import type { Services } from './services';
import { OutlineTreeNode } from './trees/nodes/outline-node';
import { RunNode } from './trees/nodes/run-node';
import { engineJobs } from './worker/engine';

export const enum CommandId {
  ShowModelInfo = 'prunelens.showModelInfo',
  EvaluatePerplexity = 'prunelens.evaluatePerplexity',
  Prune = 'prunelens.prune',
  OpenModel = 'prunelens.openModel',
  ComputeScores = 'prunelens.computeScores',
  PruneHead = 'prunelens.pruneHead',
  PruneLayer = 'prunelens.pruneLayer',
  ShowScores = 'prunelens.showScores',
  RefreshRuns = 'prunelens.refreshRuns',
  RevealOutput = 'prunelens.revealOutput',
  OpenAllocationPanel = 'prunelens.openAllocationPanel',
  ShowExpertHeatmap = 'prunelens.showExpertHeatmap',
  ShowLossDiff = 'prunelens.showLossDiff',
  ToggleLossDiff = 'prunelens.toggleLossDiff',
  OpenReport = 'prunelens.openReport',
}

/** What a command was invoked on: an Explorer resource, a Model view node or a Runs view node. */
type Target = vscode.Uri | OutlineTreeNode | RunNode;

function isTarget(value: unknown): value is Target {
  return value instanceof vscode.Uri || value instanceof OutlineTreeNode || value instanceof RunNode;
}

/**
 * VS Code calls a command with what it was invoked on: `(uri, selectedUris)` from the Explorer, `(node,
 * selectedNodes)` from a view, nothing from the palette or a keybinding. Only the first argument can be
 * the target, and only when it is one of those types.
 */
function targetOf(args: readonly unknown[]): Target | undefined {
  return isTarget(args[0]) ? args[0] : undefined;
}

function locationOf(target: Target | undefined): string | undefined {
  if (target instanceof vscode.Uri) return target.fsPath;
  if (target instanceof OutlineTreeNode) return target.modelFolder;
  if (target instanceof RunNode) return target.run.folder;
  return undefined;
}

export function registerCommands(services: Services): vscode.Disposable[] {
  const { output } = services;
  const register = (id: CommandId, handler: (...args: unknown[]) => Promise<void>): vscode.Disposable =>
    vscode.commands.registerCommand(id, (...args: unknown[]) => reportErrors(output, () => handler(...args)));
  const modelOf = async (args: readonly unknown[], title: string): Promise<string | undefined> => locationOf(targetOf(args)) ?? (await askModel(services, title));
  return [
    register(CommandId.ShowModelInfo, async (...args) => {
      // Reading a checkpoint is what restricted mode promises not to do (the manifest says so).
      requireTrust();
      const model = await modelOf(args, 'PruneLens: Show Model Info');
      if (model) await showModelInfo(services, model);
    }),
    register(CommandId.EvaluatePerplexity, async (...args) => {
      requireTrust();
      const model = await modelOf(args, 'PruneLens: Evaluate Perplexity');
      if (model) await evaluatePerplexity(services, model);
    }),
    register(CommandId.Prune, async (...args) => {
      requireTrust();
      const model = await modelOf(args, 'PruneLens: Prune');
      if (!model) return;
      // Code (tests, tasks, other extensions) may pass the flow's answers; anything VS Code passes is never taken for them.
      const settings = args.find(isPruneArguments);
      if (settings) return runPrune(services, pruneRequestFrom(services, model, settings));
      const job = await askPrune(services, model);
      if (job?.kind === 'unstructured') await runPrune(services, job.request);
      else if (job?.kind === 'structured') await runStructured(services, job.request);
    }),
    register(CommandId.OpenModel, async (...args) => {
      requireTrust();
      const model = await modelOf(args, 'PruneLens: Open Model');
      if (model) await openInModelView(services, model);
    }),
    register(CommandId.ComputeScores, () => computeScores(services)),
    register(CommandId.PruneHead, async (...args) => {
      const node = outlineNodeOf(args, 'Prune This Head acts on a head of the Model view');
      const { layer, head } = node.outline;
      if (layer === undefined || head === undefined) throw new PruneLensError('usage', 'Prune This Head acts on a head of the Model view');
      await runRemoval(services, node.modelFolder, { heads: [[layer, head]], layers: [] });
    }),
    register(CommandId.PruneLayer, async (...args) => {
      const node = outlineNodeOf(args, 'Prune This Layer acts on a layer of the Model view');
      const { layer } = node.outline;
      if (layer === undefined) throw new PruneLensError('usage', 'Prune This Layer acts on a layer of the Model view');
      await runRemoval(services, node.modelFolder, { heads: [], layers: [layer] });
    }),
    register(CommandId.ShowScores, async (...args) => {
      const node = outlineNodeOf(args, 'Show Scores acts on a layer or head of the Model view');
      if (!services.models.scores) throw new PruneLensError('usage', 'this model has no scores yet; run Compute Importance Scores in the Model view');
      await vscode.commands.executeCommand('markdown.showPreview', services.scores.uriFor(node));
    }),
    register(CommandId.RefreshRuns, () => services.runs.refresh()),
    register(CommandId.RevealOutput, async (...args) => {
      const folder = locationOf(targetOf(args));
      if (folder) await revealFolder(folder);
    }),
    register(CommandId.OpenAllocationPanel, (...args) => services.allocation.openAllocationPanel(locationOf(targetOf(args)) ?? services.models.current?.summary.path)),
    register(CommandId.ShowExpertHeatmap, async (...args) => {
      requireTrust();
      // From the palette: the Model view's model if it has experts, else the person picks one.
      const shown = services.models.current?.summary;
      const model = locationOf(targetOf(args)) ?? (shown?.experts ? shown.path : undefined) ?? (await askModel(services, 'PruneLens: Show Expert Heat Map'));
      if (model) await services.heatmap.openExpertHeatmap(model);
    }),
    register(CommandId.ShowLossDiff, async (...args) => {
      const folder = locationOf(targetOf(args)) ?? services.runs.list[0]?.folder;
      if (!folder) throw new PruneLensError('usage', 'no PruneLens run to show; prune a model first');
      await services.loss.showRun(folder);
    }),
    register(CommandId.ToggleLossDiff, async () => services.loss.toggle()),
    // The status-bar item passes the run's folder as a string.
    register(CommandId.OpenReport, (...args) => openReport(typeof args[0] === 'string' ? args[0] : locationOf(targetOf(args)))),
  ];
}

function outlineNodeOf(args: readonly unknown[], usage: string): OutlineTreeNode {
  if (args[0] instanceof OutlineTreeNode) return args[0];
  throw new PruneLensError('usage', usage);
}

async function showModelInfo(services: Services, model: string): Promise<void> {
  const checkpoint = await Checkpoint.open(model);
  try {
    const s = describeModel(checkpoint);
    services.output.info(JSON.stringify(s, null, 2));
    services.output.show(true);
    void vscode.window.showInformationMessage(
      `${s.architecture}: ${s.layers} layers, ${s.heads} heads (${s.kvHeads} KV), ${s.parameters.toLocaleString()} parameters, ${s.dtype}`,
    );
  } finally {
    await checkpoint.close();
  }
}

async function evaluatePerplexity(services: Services, model: string): Promise<void> {
  const { output } = services;
  const config = readConfig();
  const result = await withEngineProgress('PruneLens: perplexity', [{ stage: 'evaluate', weight: 1 }], output, (control) =>
    engineJobs.run('evaluate', { model, textFile: settingPath(config.evaluationText, SAMPLE_EVALUATION_TEXT), seqlen: config.seqlen, runtime: runtimeOf(config) }, control),
  );
  output.info(`${result.model}: ppl ${result.ppl.toFixed(4)} over ${result.windows} windows of ${result.seqlen} (${result.seconds.toFixed(1)} s)`);
  void vscode.window.showInformationMessage(`Perplexity of ${path.basename(modelFolderOf(model))}: ${result.ppl.toFixed(3)} (${result.windows} windows of ${result.seqlen} tokens)`);
}
