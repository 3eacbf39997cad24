import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import { EMBEDDED_MODEL } from '../../engine/embedded';
import type { FileHashes } from '../file-hashes';
import type { ExpertStats } from '../../engine/experts/expert-stats';
import type { StructuredScores } from '../../engine/structured/scores';
import { loadModel } from './model-loader';
import { alignScores, buildModelOutline, type AlignedScores, type ModelOutlineInput } from './model-outline';
import { OutlineTreeNode } from './nodes/outline-node';
import type { TreeNode } from './tree-node';

export const MODEL_VIEW = 'prunelens.model';
/** Lets the view's menus offer "Show Scores" only when there are scores to show. */
const HAS_SCORES = 'prunelens.hasScores';
/** The view's title shows "Sort by Position" while sorted by score, and the other way round. */
const SORTED_BY_SCORE = 'prunelens.sortedByScore';
/** The model node offers the expert heat map only for a mixture-of-experts model. */
const HAS_EXPERTS = 'prunelens.modelHasExperts';

/** Where computed scores are kept: the workspace's storage, one file per checkpoint content hash. */
export interface ScoreStore {
  dir: string;
  hashes: FileHashes;
}

/** The Model view: one checkpoint at a time, the embedded model until another is opened. */
export class ModelTree implements vscode.TreeDataProvider<TreeNode>, vscode.Disposable {
  private readonly changed = new vscode.EventEmitter<void>();
  readonly onDidChangeTreeData = this.changed.event;
  private readonly scoresSet = new vscode.EventEmitter<{ folder: string }>();
  /** Scores just computed for the shown model are in the tree. */
  readonly onDidSetScores = this.scoresSet.event;
  private sortByScore = false;
  readonly view: vscode.TreeView<TreeNode>;
  private model: ModelOutlineInput | undefined;
  private root: OutlineTreeNode | undefined;
  private firstLoad: Promise<void> | undefined;
  /** Only the latest open() may show its model: an earlier, slower one must not replace it. */
  private generation = 0;

  constructor(
    private readonly output: vscode.LogOutputChannel,
    private readonly store: ScoreStore,
  ) {
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
    if (generation !== this.generation) return;
    this.show(model);
    if (model.summary.experts) {
      // A MoE model's statistics are its experts' routing; kept like scores, one file per checkpoint content hash.
      const experts = await this.readStoredExperts(model).catch((err: Error) => void this.output.warn(`cannot read stored expert statistics: ${err.message}`));
      if (experts && generation === this.generation) this.show({ ...model, experts });
      return;
    }
    if (model.scores) return;
    // Scores computed in an earlier session come back from the workspace's storage (hashing a large checkpoint takes a moment, so after the first draw).
    const stored = await this.readStored(model).catch((err: Error) => void this.output.warn(`cannot read stored scores: ${err.message}`));
    if (stored && generation === this.generation) this.show({ ...model, scores: { values: stored, measuredOn: 'this model' } });
  }

  /** Expert statistics just computed (here or by the heat map) for the shown model: in the tree, and kept for the next session. */
  setExpertStats(folder: string, experts: ExpertStats): void {
    if (this.model?.summary.path !== path.resolve(folder) || !this.model.summary.experts) return;
    const model = this.model;
    this.show({ ...model, experts });
    void this.writeStoredExperts(model, experts).catch((err: Error) => this.output.warn(`cannot keep the expert statistics: ${err.message}`));
  }

  private async readStoredExperts(model: ModelOutlineInput): Promise<ExpertStats | undefined> {
    const raw = await fs.readFile(await this.storedFile(model, 'experts'), 'utf8').catch(() => undefined);
    if (raw === undefined) return undefined;
    const stats = JSON.parse(raw) as Partial<ExpertStats>;
    return Array.isArray(stats.layers) && stats.experts === model.summary.experts?.count ? (stats as ExpertStats) : undefined;
  }

  private async writeStoredExperts(model: ModelOutlineInput, stats: ExpertStats): Promise<void> {
    const file = await this.storedFile(model, 'experts');
    await fs.mkdir(path.dirname(file), { recursive: true });
    await fs.writeFile(`${file}.partial-${process.pid}`, JSON.stringify(stats));
    await fs.rename(`${file}.partial-${process.pid}`, file);
  }

  /** Scores just computed for the shown model replace the ones it had, and are kept for the next session. */
  setScores(folder: string, scores: StructuredScores): void {
    if (this.model?.summary.path !== folder) return;
    const model = this.model;
    this.show({ ...model, scores: { values: scores, measuredOn: 'this model' } });
    this.scoresSet.fire({ folder });
    void this.writeStored(model, scores).catch((err: Error) => this.output.warn(`cannot keep the scores: ${err.message}`));
  }

  setSortByScore(sorted: boolean): void {
    this.sortByScore = sorted;
    void vscode.commands.executeCommand('setContext', SORTED_BY_SCORE, sorted);
    if (this.model) this.show(this.model);
  }

  private async storedFile(model: ModelOutlineInput, kind: 'scores' | 'experts' = 'scores'): Promise<string> {
    const files = [path.join(model.summary.path, 'config.json'), ...model.summary.files.map((f) => path.resolve(model.summary.path, f))];
    return path.join(this.store.dir, kind, `${(await this.store.hashes.of(files)).slice(0, 32)}.json`);
  }

  private async readStored(model: ModelOutlineInput): Promise<StructuredScores | undefined> {
    const raw = await fs.readFile(await this.storedFile(model), 'utf8').catch(() => undefined);
    if (raw === undefined) return undefined;
    const scores = JSON.parse(raw) as Partial<StructuredScores>;
    return Array.isArray(scores.layers) && scores.layers.length === model.summary.layers ? (scores as StructuredScores) : undefined;
  }

  private async writeStored(model: ModelOutlineInput, scores: StructuredScores): Promise<void> {
    const file = await this.storedFile(model);
    await fs.mkdir(path.dirname(file), { recursive: true });
    await fs.writeFile(`${file}.partial-${process.pid}`, JSON.stringify(scores));
    await fs.rename(`${file}.partial-${process.pid}`, file);
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
    this.root = new OutlineTreeNode(buildModelOutline(model, { sortByScore: this.sortByScore }), model.summary.path);
    this.view.message = undefined;
    void vscode.commands.executeCommand('setContext', HAS_SCORES, alignScores(model) !== undefined);
    void vscode.commands.executeCommand('setContext', HAS_EXPERTS, model.summary.experts !== undefined);
    this.changed.fire();
  }

  dispose(): void {
    this.view.dispose();
    this.changed.dispose();
    this.scoresSet.dispose();
  }
}
