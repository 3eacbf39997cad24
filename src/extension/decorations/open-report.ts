import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import { PruneLensError } from '../../engine/errors';
import { REPORT_FILE } from '../../engine/export/report';

/**
 * The PruneLens output folder named by a command argument: a folder, or a file inside one (the
 * explorer passes prunelens.json or the report itself); undefined asks for a folder.
 */
async function outputFolderOf(target: string | vscode.Uri | undefined, openLabel: string): Promise<string | undefined> {
  if (target === undefined) {
    const picked = await vscode.window.showOpenDialog({ canSelectFolders: true, canSelectFiles: false, canSelectMany: false, openLabel, title: 'PruneLens output folder' });
    return picked?.[0]?.fsPath;
  }
  const location = typeof target === 'string' ? target : target.fsPath;
  const stat = await fs.stat(location).catch(() => {
    throw new PruneLensError('output', 'not found', location);
  });
  return stat.isDirectory() ? location : path.dirname(location);
}

/** Opens a run's prunelens-report.md in the built-in Markdown preview, where its SVG figures render. */
export async function openReport(target?: string | vscode.Uri): Promise<void> {
  const folder = await outputFolderOf(target, 'Open Report');
  if (folder === undefined) return;
  const report = path.join(folder, REPORT_FILE);
  await fs.access(report).catch(() => {
    throw new PruneLensError('output', `no ${REPORT_FILE} here; is this a PruneLens output folder?`, folder);
  });
  await vscode.commands.executeCommand('markdown.showPreview', vscode.Uri.file(report));
}
