import * as vscode from 'vscode';
import type { OutlineKind, OutlineNode } from '../model-outline';
import { TreeNode } from '../tree-node';

const ICONS: Record<OutlineKind, string> = {
  model: 'circuit-board',
  layer: 'layers',
  attention: 'eye',
  heads: 'list-tree',
  kvGroup: 'key',
  head: 'symbol-field',
  mlp: 'symbol-operator',
  linear: 'symbol-array',
  expert: 'symbol-class',
};

/** A node of the Model view: a model, layer, attention or MLP part (or experts), key/value group, head, linear or expert. */
export class OutlineTreeNode extends TreeNode {
  private children: OutlineTreeNode[] | undefined;

  constructor(
    readonly outline: OutlineNode,
    /** The checkpoint folder the node belongs to; actions on it act on this model. */
    readonly modelFolder: string,
    private readonly parent?: OutlineTreeNode,
  ) {
    super();
  }

  getTreeItem(): vscode.TreeItem {
    const { outline } = this;
    const state =
      outline.children.length === 0
        ? vscode.TreeItemCollapsibleState.None
        : outline.kind === 'model'
          ? vscode.TreeItemCollapsibleState.Expanded
          : vscode.TreeItemCollapsibleState.Collapsed;
    const item = new vscode.TreeItem(outline.label, state);
    item.id = outline.id;
    item.description = outline.description;
    item.tooltip = outline.tooltip;
    item.contextValue = outline.contextValue;
    // The icon carries the colour scale: the node's score rank among its siblings, themable as prunelens.importance1..5.
    item.iconPath = new vscode.ThemeIcon(ICONS[outline.kind], outline.heat ? new vscode.ThemeColor(`prunelens.importance${outline.heat}`) : undefined);
    return item;
  }

  getChildren(): OutlineTreeNode[] {
    this.children ??= this.outline.children.map((c) => new OutlineTreeNode(c, this.modelFolder, this));
    return this.children;
  }

  getParent(): OutlineTreeNode | undefined {
    return this.parent;
  }
}
