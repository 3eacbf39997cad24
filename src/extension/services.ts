import type * as vscode from 'vscode';
import type { CheckpointFolders } from './checkpoint-folders';
import type { LossDecorations } from './decorations/loss-decorations';
import type { AllocationPanelRegistration } from './panels/allocation-panel';
import type { ExpertHeatmapRegistration } from './panels/expert-heatmap-panel';
import type { RunRegistry } from './runs/run-registry';
import type { ModelTree } from './trees/model-tree';
import type { ScoresDocuments } from './trees/scores-documents';

/** What activation creates once and every command works with. */
export interface Services {
  output: vscode.LogOutputChannel;
  runs: RunRegistry;
  checkpoints: CheckpointFolders;
  models: ModelTree;
  scores: ScoresDocuments;
  /** Outputs of the embedded model go here when no workspace folder is open. */
  storage: vscode.Uri;
  allocation: AllocationPanelRegistration;
  heatmap: ExpertHeatmapRegistration;
  loss: LossDecorations;
  /** The workspace's own state (VS Code keeps it across reloads). */
  workspaceState: vscode.Memento;
}
