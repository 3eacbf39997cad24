import * as path from 'node:path';
import * as vscode from 'vscode';
import { TreeNode } from '../tree-node';

/** A run's report (opened as a Markdown preview) or record (opened as JSON). */
export class RunFileNode extends TreeNode {
  constructor(
    readonly uri: vscode.Uri,
    private readonly role: 'report' | 'record',
    private readonly parent: TreeNode,
  ) {
    super();
  }

  open(): vscode.Command {
    return this.role === 'report'
      ? { command: 'markdown.showPreview', title: 'Open Report', arguments: [this.uri] }
      : { command: 'vscode.open', title: 'Open Record', arguments: [this.uri] };
  }

  getTreeItem(): vscode.TreeItem {
    const item = new vscode.TreeItem(path.basename(this.uri.fsPath), vscode.TreeItemCollapsibleState.None);
    item.id = `run-file:${this.uri.fsPath}`;
    item.description = this.role;
    item.resourceUri = this.uri;
    item.contextValue = `run.${this.role}`;
    item.command = this.open();
    return item;
  }

  getChildren(): RunFileNode[] {
    return [];
  }

  getParent(): TreeNode {
    return this.parent;
  }
}
