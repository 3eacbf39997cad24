import * as path from 'node:path';
import * as vscode from 'vscode';
import type { ModelTree } from './model-tree';
import type { OutlineTreeNode } from './nodes/outline-node';
import { scoresMarkdown } from './scores-markdown';

export const SCORES_SCHEME = 'prunelens-scores';

/**
 * Read-only Markdown documents with a layer's scores, rendered from the Model view's current model,
 * so "Show Scores" writes no file anywhere.
 */
export class ScoresDocuments implements vscode.TextDocumentContentProvider, vscode.Disposable {
  private readonly changed = new vscode.EventEmitter<vscode.Uri>();
  readonly onDidChange = this.changed.event;
  private readonly subscription: vscode.Disposable;

  constructor(private readonly models: ModelTree) {
    // Recomputed scores must reach documents that are already open.
    this.subscription = models.onDidChangeTreeData(() => {
      for (const doc of vscode.workspace.textDocuments) if (doc.uri.scheme === SCORES_SCHEME) this.changed.fire(doc.uri);
    });
  }

  uriFor(node: OutlineTreeNode): vscode.Uri {
    const { layer, head } = node.outline;
    const name = head === undefined ? `layer ${layer}` : `head ${layer}.${head}`;
    const query = new URLSearchParams({ model: node.modelFolder, layer: String(layer) });
    if (head !== undefined) query.set('head', String(head));
    return vscode.Uri.from({ scheme: SCORES_SCHEME, path: `/${path.basename(node.modelFolder)} ${name} scores.md`, query: query.toString() });
  }

  provideTextDocumentContent(uri: vscode.Uri): string {
    const query = new URLSearchParams(uri.query);
    const folder = query.get('model') ?? '';
    const layer = Number(query.get('layer'));
    const head = query.has('head') ? Number(query.get('head')) : undefined;
    const scores = this.models.current?.summary.path === folder ? this.models.scores : undefined;
    if (!scores?.layers[layer]) {
      return `# No scores\n\nThe Model view does not show scores for \`${folder}\` now; open it there and run **Compute Importance Scores**.\n`;
    }
    return scoresMarkdown(path.basename(folder), scores, layer, head);
  }

  dispose(): void {
    this.subscription.dispose();
    this.changed.dispose();
  }
}
