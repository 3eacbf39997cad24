import * as vscode from 'vscode';
import { CheckpointFolders } from './checkpoint-folders';
import { registerCommands } from './commands';
import { reportErrors } from './errors';
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
}

export function activate(context: vscode.ExtensionContext): PruneLensApi {
  const output = vscode.window.createOutputChannel('PruneLens', { log: true });
  const runs = new RunRegistry(output);
  const checkpoints = new CheckpointFolders(output);
  const models = new ModelTree(output);
  const scores = new ScoresDocuments(models);
  const services = { output, runs, checkpoints, models, scores, storage: context.globalStorageUri };
  context.subscriptions.push(
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
    }),
    ...registerCommands(services),
  );
  void checkpoints.refresh();
  void runs.refresh();
  return { onDidFinishRun: runs.onDidFinishRun, modelTree: models };
}

export function deactivate(): void {}
