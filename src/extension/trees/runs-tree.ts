import * as vscode from 'vscode';
import type { RunRegistry } from '../runs/run-registry';
import { RunNode } from './nodes/run-node';
import type { TreeNode } from './tree-node';

export const RUNS_VIEW = 'prunelens.runs';

/** The Runs view: PruneLens outputs, newest first, each with its report and record. */
export class RunsTree implements vscode.TreeDataProvider<TreeNode>, vscode.Disposable {
  private readonly changed = new vscode.EventEmitter<void>();
  readonly onDidChangeTreeData = this.changed.event;
  readonly view: vscode.TreeView<TreeNode>;
  private nodes: RunNode[] | undefined;
  private readonly subscription: vscode.Disposable;

  constructor(private readonly runs: RunRegistry) {
    // Several runs can be selected, to compare or delete them together.
    this.view = vscode.window.createTreeView(RUNS_VIEW, { treeDataProvider: this, canSelectMany: true });
    this.subscription = runs.onDidChange(() => {
      this.nodes = undefined;
      this.changed.fire();
    });
  }

  getTreeItem(node: TreeNode): vscode.TreeItem {
    return node.getTreeItem();
  }

  getChildren(node?: TreeNode): TreeNode[] {
    if (node) return node.getChildren();
    this.nodes ??= this.runs.list.map((run) => new RunNode(run));
    return this.nodes;
  }

  getParent(node: TreeNode): TreeNode | undefined {
    return node.getParent();
  }

  dispose(): void {
    this.subscription.dispose();
    this.view.dispose();
    this.changed.dispose();
  }
}
