import * as fs from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import { TOKEN_LOSSES_FILE } from '../engine/export/token-losses';
import { registerLossDecorations, type LossDecorations } from './decorations/loss-decorations';
import { registerAllocationPanel, type AllocationPanelRegistration } from './panels/allocation-panel';
import { registerExpertHeatmap, type ExpertHeatmapRegistration } from './panels/expert-heatmap-panel';
import { CheckpointFolders } from './checkpoint-folders';
import { registerCommands } from './commands';
import { reportErrors } from './errors';
import { FileHashes } from './file-hashes';
import { registerGgufCommands } from './runs/gguf-commands';
import { registerRunCommands } from './runs/run-commands';
import { RunRegistry, type FinishedRun } from './runs/run-registry';
import { ModelTree } from './trees/model-tree';
import type { TreeNode } from './trees/tree-node';
import { RunsTree } from './trees/runs-tree';
import { SCORES_SCHEME, ScoresDocuments } from './trees/scores-documents';

/** What other extensions (and the end-to-end tests) get from `activate`. */
export interface PruneLensApi {
  readonly onDidFinishRun: vscode.Event<FinishedRun>;
  /** The Model view's data, so a caller can read what the tree shows. */
  readonly modelTree: vscode.TreeDataProvider<TreeNode>;
  readonly allocationPanel: Pick<AllocationPanelRegistration, 'onDidReceiveMessage' | 'deliver' | 'onDidPrune'>;
  readonly expertHeatmap: Pick<ExpertHeatmapRegistration, 'onDidReceiveMessage' | 'onDidPrune'>;
  readonly lossDiff: Pick<LossDecorations, 'onDidDecorate'>;
}

export function activate(context: vscode.ExtensionContext): PruneLensApi {
  const output = vscode.window.createOutputChannel('PruneLens', { log: true });
  // Token ids are cached in the extension's own storage; the engine processes inherit the setting.
  process.env.PRUNELENS_CACHE ??= context.globalStorageUri.fsPath;
  const runs = new RunRegistry(output);
  const checkpoints = new CheckpointFolders(output);
  const hashes = new FileHashes(context.globalStorageUri.fsPath);
  const models = new ModelTree(output, { dir: (context.storageUri ?? context.globalStorageUri).fsPath, hashes });
  const scores = new ScoresDocuments(models);
  const allocation = registerAllocationPanel(context, output, hashes);
  const heatmap = registerExpertHeatmap(context, output, hashes);
  const loss = registerLossDecorations(output);
  const services = { output, runs, checkpoints, models, scores, storage: context.globalStorageUri, allocation, heatmap, loss, workspaceState: context.workspaceState };
  context.subscriptions.push(
    ...allocation.disposables,
    ...heatmap.disposables,
    heatmap.onDidPrune((record) => void runs.finish(record.output, record)),
    heatmap.onDidComputeStats(({ model, stats }) => models.setExpertStats(model, stats)),
    ...loss.disposables,
    allocation.onDidPrune((record) => void runs.finish(record.output, record)),
    output,
    runs,
    checkpoints,
    models,
    scores,
    new RunsTree(runs),
    vscode.workspace.registerTextDocumentContentProvider(SCORES_SCHEME, scores),
    runs.onDidFinishRun(({ folder }) => {
      // An output is renamed into place, which no file watcher pattern sees as a new checkpoint.
      void checkpoints.refresh();
      if (models.current?.summary.path === folder.fsPath) void reportErrors(output, () => models.open(folder.fsPath));
      // A finished run opens its evaluation text with every token coloured by how its loss moved.
      if (fs.existsSync(path.join(folder.fsPath, TOKEN_LOSSES_FILE))) void reportErrors(output, () => loss.showRun(folder.fsPath));
    }),
    ...registerCommands(services),
    ...registerRunCommands(services),
    ...registerGgufCommands(services),
  );
  void checkpoints.refresh();
  void runs.refresh();
  return { onDidFinishRun: runs.onDidFinishRun, modelTree: models, allocationPanel: allocation, expertHeatmap: heatmap, lossDiff: loss };
}

export function deactivate(): void {}
