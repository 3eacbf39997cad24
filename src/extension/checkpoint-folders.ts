import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import { Debouncer } from './debouncer';
import { isWorkingFolder } from './prune/prune-options';

/** The context key the Explorer's `when` clauses test folders against (`resourcePath in …`). */
const CONTEXT_KEY = 'prunelens.checkpointFolders';
const EXCLUDE = '**/node_modules/**';

/**
 * Workspace folders that hold a checkpoint: a config.json beside a .safetensors file. A `when` clause
 * cannot look inside a folder, so the list is published as a context key and kept current from
 * file-system events.
 */
export class CheckpointFolders implements vscode.Disposable {
  private folders: string[] = [];
  private readonly disposables: vscode.Disposable[] = [];

  constructor(private readonly output: vscode.LogOutputChannel) {
    const refresh = new Debouncer(500, () => void this.refresh());
    // Content changes do not make or unmake a checkpoint; creating and deleting files does.
    const watcher = vscode.workspace.createFileSystemWatcher('**/{config.json,*.safetensors}', false, true, false);
    this.disposables.push(
      refresh,
      watcher,
      watcher.onDidCreate(() => refresh.trigger()),
      watcher.onDidDelete(() => refresh.trigger()),
      vscode.workspace.onDidChangeWorkspaceFolders(() => refresh.trigger()),
    );
  }

  get list(): readonly string[] {
    return this.folders;
  }

  /** Never throws: it runs in the background, so a failure is logged and the previous list kept. */
  async refresh(): Promise<void> {
    try {
      const configs = await vscode.workspace.findFiles('**/config.json', EXCLUDE);
      const folders: string[] = [];
      for (const uri of configs) {
        const dir = path.dirname(uri.fsPath);
        if (uri.scheme !== 'file' || isWorkingFolder(dir)) continue;
        const names = await fs.readdir(dir).catch(() => [] as string[]);
        if (names.some((n) => n.endsWith('.safetensors'))) folders.push(dir);
      }
      this.folders = folders.sort();
      await vscode.commands.executeCommand('setContext', CONTEXT_KEY, this.folders);
      this.output.info(`checkpoint folders in the workspace: ${this.folders.length ? this.folders.join(', ') : 'none'}`);
    } catch (err) {
      this.output.warn(`cannot list the workspace's checkpoint folders: ${(err as Error).message}`);
    }
  }

  dispose(): void {
    for (const d of this.disposables) d.dispose();
  }
}
