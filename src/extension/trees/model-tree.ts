import * as vscode from 'vscode';
import { EMBEDDED_MODEL } from '../../engine/embedded';
import type { StructuredScores } from '../../engine/structured/scores';
import { loadModel } from './model-loader';
import { alignScores, buildModelOutline, type AlignedScores, type ModelOutlineInput } from './model-outline';
import { OutlineTreeNode } from './nodes/outline-node';
import type { TreeNode } from './tree-node';

export const MODEL_VIEW = 'prunelens.model';
/** Lets the view's menus offer "Show Scores" only when there are scores to show. */
const HAS_SCORES = 'prunelens.hasScores';

/** The Model view: one checkpoint at a time, the embedded model until another is opened. */
export class ModelTree implements vscode.TreeDataProvider<TreeNode>, vscode.Disposable {
  private readonly changed = new vscode.EventEmitter<void>();
  readonly onDidChangeTreeData = this.changed.event;
  readonly view: vscode.TreeView<TreeNode>;
  private model: ModelOutlineInput | undefined;
  private root: OutlineTreeNode | undefined;
  private firstLoad: Promise<void> | undefined;
  /** Only the latest open() may show its model: an earlier, slower one must not replace it. */
  private generation = 0;

  constructor(private readonly output: vscode.LogOutputChannel) {
    this.view = vscode.window.createTreeView(MODEL_VIEW, { treeDataProvider: this, showCollapseAll: true });
  }

  get current(): ModelOutlineInput | undefined {
    return this.model;
  }

  /** The shown model's scores in its own numbering, if it has any. */
  get scores(): AlignedScores | undefined {
    return this.model && alignScores(this.model);
  }

  /** Opens a checkpoint folder (or one of its files); failures go to the caller, which reports them. */
  async open(location: string): Promise<void> {
    const generation = ++this.generation;
    const model = await loadModel(location);
    if (generation === this.generation) this.show(model);
  }

  /** Scores just computed for the shown model replace the ones it had. */
  setScores(folder: string, scores: StructuredScores): void {
    if (this.model?.summary.path === folder) this.show({ ...this.model, scores: { values: scores, measuredOn: 'this model' } });
  }

  getTreeItem(node: TreeNode): vscode.TreeItem {
    return node.getTreeItem();
  }

  async getChildren(node?: TreeNode): Promise<TreeNode[]> {
    if (node) return node.getChildren();
    if (!this.root) {
      this.firstLoad ??= this.open(EMBEDDED_MODEL).catch((err: Error) => {
        this.output.error(err.message);
        this.view.message = `Cannot open the embedded model: ${err.message}`;
      });
      await this.firstLoad;
    }
    return this.root ? [this.root] : [];
  }

  getParent(node: TreeNode): TreeNode | undefined {
    return node.getParent();
  }

  private show(model: ModelOutlineInput): void {
    this.model = model;
    this.root = new OutlineTreeNode(buildModelOutline(model), model.summary.path);
    this.view.message = undefined;
    void vscode.commands.executeCommand('setContext', HAS_SCORES, alignScores(model) !== undefined);
    this.changed.fire();
  }

  dispose(): void {
    this.view.dispose();
    this.changed.dispose();
  }
}
