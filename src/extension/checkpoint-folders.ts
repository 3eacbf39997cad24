import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import { MOE_FAMILIES } from '../engine/model/families/moe';
import { Debouncer } from './debouncer';
import { isWorkingFolder } from './prune/prune-options';

/** The context key the Explorer's `when` clauses test folders against (`resourcePath in …`). */
const CONTEXT_KEY = 'prunelens.checkpointFolders';
/** The same for the mixture-of-experts checkpoints among them (the expert heat map's menu item). */
const MOE_CONTEXT_KEY = 'prunelens.moeCheckpointFolders';
const MOE_TYPES: ReadonlySet<string> = new Set(MOE_FAMILIES);
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
      const moe: string[] = [];
      for (const uri of configs) {
        const dir = path.dirname(uri.fsPath);
        if (uri.scheme !== 'file' || isWorkingFolder(dir)) continue;
        const names = await fs.readdir(dir).catch(() => [] as string[]);
        if (!names.some((n) => n.endsWith('.safetensors'))) continue;
        folders.push(dir);
        if (MOE_TYPES.has(await modelType(uri.fsPath))) moe.push(dir);
      }
      this.folders = folders.sort();
      await vscode.commands.executeCommand('setContext', CONTEXT_KEY, this.folders);
      await vscode.commands.executeCommand('setContext', MOE_CONTEXT_KEY, moe.sort());
      this.output.info(`checkpoint folders in the workspace: ${this.folders.length ? this.folders.join(', ') : 'none'}`);
    } catch (err) {
      this.output.warn(`cannot list the workspace's checkpoint folders: ${(err as Error).message}`);
    }
  }

  dispose(): void {
    for (const d of this.disposables) d.dispose();
  }
}

/** config.json's model_type, or '' where it cannot be read (the checkpoint is then not offered as MoE). */
async function modelType(config: string): Promise<string> {
  try {
    const raw = JSON.parse(await fs.readFile(config, 'utf8')) as { model_type?: unknown };
    return typeof raw.model_type === 'string' ? raw.model_type : '';
  } catch {
    return '';
  }
}
