import * as vscode from 'vscode';
import { EMBEDDED_MODEL, SAMPLE_EVALUATION_TEXT } from '../engine/embedded';
import { PruneLensError } from '../engine/errors';
import { Checkpoint } from '../engine/io/checkpoint';
import { describeModel } from '../engine/model/describe';
import { readConfig, runtimeOf, settingPath } from './config';
import { reportErrors, requireTrust } from './errors';
import { computeScores, openInModelView, revealFolder, runPrune, runRemoval } from './prune/jobs';
import { askModel, askPrune, pruneRequestFrom, type PruneArguments } from './prune/prune-wizard';
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
  ShowLossDiff = 'prunelens.showLossDiff',
  ToggleLossDiff = 'prunelens.toggleLossDiff',
  OpenReport = 'prunelens.openReport',
}

/** What a command was invoked on: an Explorer resource, a Model view node or a Runs view node. */
type Target = vscode.Uri | OutlineTreeNode | RunNode | undefined;

function locationOf(target: Target): string | undefined {
  if (target instanceof vscode.Uri) return target.fsPath;
  if (target instanceof OutlineTreeNode) return target.modelFolder;
  if (target instanceof RunNode) return target.run.folder;
  return undefined;
}

export function registerCommands(services: Services): vscode.Disposable[] {
  const { output } = services;
  const register = (id: CommandId, handler: (...args: never[]) => Promise<void>): vscode.Disposable =>
    vscode.commands.registerCommand(id, (...args: never[]) => reportErrors(output, () => handler(...args)));
  return [
    register(CommandId.ShowModelInfo, (uri?: vscode.Uri) => showModelInfo(services, uri?.fsPath ?? EMBEDDED_MODEL)),
    register(CommandId.EvaluatePerplexity, (uri?: vscode.Uri) => evaluatePerplexity(services, uri?.fsPath ?? EMBEDDED_MODEL)),
    register(CommandId.Prune, async (target?: Target, args?: PruneArguments) => {
      requireTrust();
      const model = locationOf(target) ?? (await askModel(services, 'PruneLens: Prune'));
      if (!model) return;
      const request = args ? pruneRequestFrom(services, model, args) : await askPrune(services, model);
      if (request) await runPrune(services, request);
    }),
    register(CommandId.OpenModel, async (target?: Target) => {
      const model = locationOf(target) ?? (await askModel(services, 'PruneLens: Open Model'));
      if (model) await openInModelView(services, model);
    }),
    register(CommandId.ComputeScores, () => computeScores(services)),
    register(CommandId.PruneHead, async (node: OutlineTreeNode) => {
      const { layer, head } = node.outline;
      if (layer === undefined || head === undefined) throw new PruneLensError('usage', 'Prune This Head acts on a head of the Model view');
      await runRemoval(services, node.modelFolder, { heads: [[layer, head]], layers: [] });
    }),
    register(CommandId.PruneLayer, async (node: OutlineTreeNode) => {
      const { layer } = node.outline;
      if (layer === undefined) throw new PruneLensError('usage', 'Prune This Layer acts on a layer of the Model view');
      await runRemoval(services, node.modelFolder, { heads: [], layers: [layer] });
    }),
    register(CommandId.ShowScores, async (node: OutlineTreeNode) => {
      if (!services.models.scores) throw new PruneLensError('usage', 'this model has no scores yet; run Compute Importance Scores in the Model view');
      await vscode.commands.executeCommand('markdown.showPreview', services.scores.uriFor(node));
    }),
    register(CommandId.RefreshRuns, () => services.runs.refresh()),
    register(CommandId.RevealOutput, async (target?: Target) => {
      const folder = locationOf(target);
      if (folder) await revealFolder(folder);
    }),
    register(CommandId.OpenAllocationPanel, (target?: Target) => services.allocation.openAllocationPanel(locationOf(target) ?? services.models.current?.summary.path)),
    register(CommandId.ShowLossDiff, async (target?: Target) => {
      const folder = locationOf(target) ?? services.runs.list[0]?.folder;
      if (!folder) throw new PruneLensError('usage', 'no PruneLens run to show; prune a model first');
      await services.loss.showRun(folder);
    }),
    register(CommandId.ToggleLossDiff, async () => services.loss.toggle()),
    register(CommandId.OpenReport, (target?: Target | string) => openReport(typeof target === 'string' ? target : locationOf(target))),
  ];
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
  requireTrust();
  const { output } = services;
  const config = readConfig();
  const result = await withEngineProgress('PruneLens: perplexity', [{ stage: 'evaluate', weight: 1 }], output, (control) =>
    engineJobs.run('evaluate', { model, textFile: settingPath(config.evaluationText, SAMPLE_EVALUATION_TEXT), seqlen: config.seqlen, runtime: runtimeOf(config) }, control),
  );
  output.info(`${result.model}: ppl ${result.ppl.toFixed(4)} over ${result.windows} windows of ${result.seqlen} (${result.seconds.toFixed(1)} s)`);
  void vscode.window.showInformationMessage(`Perplexity ${result.ppl.toFixed(3)} (${result.windows} windows of ${result.seqlen} tokens)`);
}
