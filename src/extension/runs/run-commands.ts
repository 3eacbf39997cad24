import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import { PruneLensError } from '../../engine/errors';
import { reportErrors } from '../errors';
import type { Services } from '../services';
import { RunNode } from '../trees/nodes/run-node';
import { compareTable, type ComparedRun } from './compare-table';
import { readOutputRecord, runDate, runLabel, runPerplexity } from './output-record';
import type { Run } from './run-registry';

export const enum RunCommandId {
  ShowLossColours = 'prunelens.showLossDiffColours',
  NextWorstToken = 'prunelens.nextWorstToken',
  PreviousWorstToken = 'prunelens.previousWorstToken',
  CompareRunLosses = 'prunelens.compareRunLosses',
  CompareRuns = 'prunelens.compareRuns',
  DeleteRun = 'prunelens.deleteRun',
  SortByScore = 'prunelens.sortModelByScore',
  SortByPosition = 'prunelens.sortModelByPosition',
}

/** The comparison table opens as Markdown under this scheme, read-only; no file is written for it. */
const COMPARISON_SCHEME = 'prunelens-runs';

/** Where comparisons are kept (workspace state), and how many: the latest ones. */
const COMPARISONS_KEY = 'prunelens.comparisons';
const KEEP_COMPARISONS = 10;

/**
 * Commands on runs and their results: the loss diff's editor actions, comparing runs (a table, or two
 * runs' per-token losses), deleting a run, and the Model view's sort order.
 */
export function registerRunCommands(services: Services): vscode.Disposable[] {
  const { output, runs, loss, models, workspaceState } = services;
  // Comparisons are kept in the workspace's state, so a preview VS Code reopens after a window reload still has its table.
  const comparisons = (): Record<string, string> => workspaceState.get<Record<string, string>>(COMPARISONS_KEY) ?? {};
  const changed = new vscode.EventEmitter<vscode.Uri>();
  const register = (id: RunCommandId, handler: (...args: never[]) => Promise<void>): vscode.Disposable =>
    vscode.commands.registerCommand(id, (...args: never[]) => reportErrors(output, () => handler(...args)));

  /** Runs from the Runs view's selection (VS Code passes the clicked node and every selected one), else picked. */
  const chosenRuns = async (node: unknown, selected: unknown, title: string, exactly?: number): Promise<Run[] | undefined> => {
    const fromView = (Array.isArray(selected) ? selected : [node]).filter((n): n is RunNode => n instanceof RunNode).map((n) => n.run);
    if (fromView.length >= (exactly ?? 2)) return exactly ? fromView.slice(0, exactly) : fromView;
    await runs.refresh();
    const items = runs.list.map((run) => ({
      label: runLabel(run.record),
      description: `${runPerplexity(run.record)} · ${runDate(run.record)}`,
      detail: run.folder,
      picked: fromView.some((r) => r.folder === run.folder),
      run,
    }));
    if (items.length < (exactly ?? 2)) throw new PruneLensError('usage', `${title.replace(/^PruneLens: /, '')} needs at least ${exactly ?? 2} PruneLens runs; this workspace has ${items.length}`);
    const picked = await vscode.window.showQuickPick(items, { title, canPickMany: true, placeHolder: exactly ? `Pick ${exactly} runs (the first is the baseline)` : 'Pick the runs to compare' });
    if (!picked) return undefined;
    if (exactly !== undefined && picked.length !== exactly) throw new PruneLensError('usage', `pick exactly ${exactly} runs, not ${picked.length}`);
    if (picked.length < 2) throw new PruneLensError('usage', 'pick at least two runs');
    return picked.map((p) => p.run);
  };

  return [
    changed,
    vscode.workspace.registerTextDocumentContentProvider(COMPARISON_SCHEME, {
      onDidChange: changed.event,
      provideTextDocumentContent: (uri) => comparisons()[uri.toString()] ?? '# PruneLens: this comparison is gone\n\nRun **PruneLens: Compare Runs** again.\n',
    }),
    register(RunCommandId.ShowLossColours, async () => loss.toggle()),
    register(RunCommandId.NextWorstToken, () => loss.worstToken(1)),
    register(RunCommandId.PreviousWorstToken, () => loss.worstToken(-1)),
    register(RunCommandId.CompareRunLosses, async (node?: unknown, selected?: unknown) => {
      const pair = await chosenRuns(node, selected, 'PruneLens: Compare Two Runs Token by Token', 2);
      if (pair) await loss.compareRuns(pair[0]!.folder, pair[1]!.folder);
    }),
    register(RunCommandId.CompareRuns, async (node?: unknown, selected?: unknown) => {
      const chosen = await chosenRuns(node, selected, 'PruneLens: Compare Runs');
      if (!chosen) return;
      const compared: ComparedRun[] = await Promise.all(chosen.map(async (run) => ({ ...run, bytes: await folderBytes(run.folder) })));
      const kept = Object.entries(comparisons());
      const number = 1 + kept.reduce((n, [key]) => Math.max(n, Number(/Runs%20compared%20(\d+)\.md$/.exec(key)?.[1] ?? 0)), 0);
      const uri = vscode.Uri.from({ scheme: COMPARISON_SCHEME, path: `/Runs compared ${number}.md` });
      await workspaceState.update(COMPARISONS_KEY, Object.fromEntries([...kept.slice(-(KEEP_COMPARISONS - 1)), [uri.toString(), compareTable(compared)]]));
      changed.fire(uri);
      // Its own preview tab: markdown.showPreview would replace whichever preview is open (a Try It, another comparison).
      await vscode.commands.executeCommand('vscode.openWith', uri, 'vscode.markdown.preview.editor', { preview: false });
    }),
    register(RunCommandId.DeleteRun, async (node?: unknown, selected?: unknown) => {
      const chosen = (Array.isArray(selected) ? selected : [node]).filter((n): n is RunNode => n instanceof RunNode).map((n) => n.run);
      if (chosen.length === 0) throw new PruneLensError('usage', 'Delete Run acts on runs of the Runs view');
      // Only a folder whose prunelens.json still reads as a PruneLens record is deleted: nothing else is ever ours to remove.
      for (const run of chosen) {
        if (!(await readOutputRecord(run.folder))) throw new PruneLensError('output', 'not a PruneLens output; nothing was deleted', run.folder);
      }
      const names = chosen.map((r) => path.basename(r.folder));
      const choice = await vscode.window.showWarningMessage(
        chosen.length === 1 ? `Delete the PruneLens run ${names[0]}?` : `Delete ${chosen.length} PruneLens runs?`,
        { modal: true, detail: `${chosen.map((r) => r.folder).join('\n')}\n\nThe folder${chosen.length === 1 ? '' : 's'} and every file in ${chosen.length === 1 ? 'it' : 'them'} will be deleted.` },
        'Delete',
      );
      if (choice !== 'Delete') return;
      for (const run of chosen) {
        await fs.rm(run.folder, { recursive: true, force: true });
        output.info(`deleted ${run.folder}`);
      }
      await runs.refresh();
    }),
    register(RunCommandId.SortByScore, async () => models.setSortByScore(true)),
    register(RunCommandId.SortByPosition, async () => models.setSortByScore(false)),
    models.onDidSetScores(({ folder }) => {
      void vscode.window.showInformationMessage(`PruneLens: importance scores of ${path.basename(folder)} are in the Model view; sort by them from the view's title bar.`);
    }),
  ];
}

async function folderBytes(folder: string): Promise<number> {
  let total = 0;
  for (const entry of await fs.readdir(folder, { withFileTypes: true })) {
    const file = path.join(folder, entry.name);
    total += entry.isDirectory() ? await folderBytes(file) : (await fs.stat(file)).size;
  }
  return total;
}
