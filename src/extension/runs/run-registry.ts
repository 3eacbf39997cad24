import * as path from 'node:path';
import * as vscode from 'vscode';
import { RECORD_FILE } from '../../engine/export/output-folder';
import { Debouncer } from '../debouncer';
import { isWorkingFolder } from '../prune/prune-options';
import { readOutputRecord, type OutputRecord } from './output-record';

export interface Run {
  folder: string;
  record: OutputRecord;
}

/** Fired when a run started from the extension has written its output. */
export interface FinishedRun {
  folder: vscode.Uri;
  record: OutputRecord;
}

/**
 * The PruneLens outputs the Runs view lists: folders with a prunelens.json in the workspace, and the
 * ones this session wrote, which may lie outside it (a model opened from elsewhere, a configured
 * output location).
 */
export class RunRegistry implements vscode.Disposable {
  private readonly finished = new vscode.EventEmitter<FinishedRun>();
  private readonly changed = new vscode.EventEmitter<void>();
  /** Other parts (the inline loss view) open the evaluation text of a finished run. */
  readonly onDidFinishRun = this.finished.event;
  readonly onDidChange = this.changed.event;
  private readonly written = new Set<string>();
  private runs: Run[] = [];
  private readonly disposables: vscode.Disposable[] = [this.finished, this.changed];

  constructor(private readonly output: vscode.LogOutputChannel) {
    const refresh = new Debouncer(500, () => void this.refresh());
    const watcher = vscode.workspace.createFileSystemWatcher(`**/${RECORD_FILE}`);
    this.disposables.push(
      refresh,
      watcher,
      watcher.onDidCreate(() => refresh.trigger()),
      watcher.onDidChange(() => refresh.trigger()),
      watcher.onDidDelete(() => refresh.trigger()),
      vscode.workspace.onDidChangeWorkspaceFolders(() => refresh.trigger()),
    );
  }

  /** Newest first. */
  get list(): readonly Run[] {
    return this.runs;
  }

  /** Never throws: it runs in the background, so a failure is logged and the previous list kept. */
  async refresh(): Promise<void> {
    try {
      const found = await vscode.workspace.findFiles(`**/${RECORD_FILE}`, '**/node_modules/**');
      const folders = new Set([...found.filter((u) => u.scheme === 'file').map((u) => path.dirname(u.fsPath)), ...this.written]);
      const runs: Run[] = [];
      for (const folder of folders) {
        if (isWorkingFolder(folder)) continue;
        try {
          const record = await readOutputRecord(folder);
          if (record) runs.push({ folder, record });
        } catch (err) {
          this.output.warn((err as Error).message);
        }
      }
      this.runs = runs.sort((a, b) => b.record.created.localeCompare(a.record.created));
      this.changed.fire();
    } catch (err) {
      this.output.warn(`cannot list the PruneLens outputs: ${(err as Error).message}`);
    }
  }

  /** Records a run this session finished, tells subscribers, and refreshes the list. */
  async finish(folder: string, record: OutputRecord): Promise<void> {
    this.written.add(folder);
    this.finished.fire({ folder: vscode.Uri.file(folder), record });
    await this.refresh();
  }

  dispose(): void {
    for (const d of this.disposables) d.dispose();
  }
}
