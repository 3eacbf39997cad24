import * as vscode from 'vscode';
import { isCancelled, PruneLensError } from '../engine/errors';

/** Runs a command's work and shows engine errors as messages that say what to do; a cancel is not an error. */
export async function reportErrors(output: vscode.LogOutputChannel, job: () => Promise<void>): Promise<void> {
  try {
    await job();
  } catch (err) {
    if (isCancelled(err)) {
      output.info('cancelled');
      return;
    }
    output.error(err instanceof Error ? (err.stack ?? err.message) : String(err));
    const message = err instanceof PruneLensError ? err.message : `Unexpected error: ${String(err)}`;
    const choice = await vscode.window.showErrorMessage(`PruneLens: ${message}`, 'Show Log');
    if (choice === 'Show Log') output.show();
  }
}

/** Commands can be run from anywhere (keybindings, other extensions), so the menus' trust check is repeated here. */
export function requireTrust(): void {
  if (!vscode.workspace.isTrusted) throw new PruneLensError('usage', 'PruneLens runs models only in a trusted workspace');
}
