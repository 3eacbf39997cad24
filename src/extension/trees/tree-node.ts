import type * as vscode from 'vscode';

/** A node renders itself and knows its parent, so providers stay thin and `reveal` works. */
export abstract class TreeNode {
  abstract getTreeItem(): vscode.TreeItem;
  abstract getChildren(): TreeNode[];
  abstract getParent(): TreeNode | undefined;
}
