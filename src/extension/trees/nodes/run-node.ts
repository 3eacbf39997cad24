import * as fs from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import { RECORD_FILE } from '../../../engine/export/output-folder';
import { REPORT_FILE } from '../../../engine/export/report';
import { runDate, runLabel, runPerplexity, runTooltip } from '../../runs/output-record';
import type { Run } from '../../runs/run-registry';
import { TreeNode } from '../tree-node';
import { RunFileNode } from './run-file-node';

/** A PruneLens output in the Runs view; clicking it opens its report (structured runs have only a record). */
export class RunNode extends TreeNode {
  private readonly children: RunFileNode[];

  constructor(readonly run: Run) {
    super();
    const report = path.join(run.folder, REPORT_FILE);
    this.children = [
      ...(fs.existsSync(report) ? [new RunFileNode(vscode.Uri.file(report), 'report', this)] : []),
      new RunFileNode(vscode.Uri.file(path.join(run.folder, RECORD_FILE)), 'record', this),
    ];
  }

  getTreeItem(): vscode.TreeItem {
    const { folder, record } = this.run;
    const item = new vscode.TreeItem(runLabel(record), vscode.TreeItemCollapsibleState.Collapsed);
    item.id = `run:${folder}`;
    // Label and description together tell two runs apart: method, amount and allocation; perplexity, date and folder.
    item.description = `${runPerplexity(record)} · ${runDate(record)} · ${path.basename(folder)}`;
    item.tooltip = runTooltip(record);
    item.contextValue = 'run';
    item.iconPath = new vscode.ThemeIcon('package');
    item.command = this.children[0]!.open();
    return item;
  }

  getChildren(): RunFileNode[] {
    return this.children;
  }

  getParent(): undefined {
    return undefined;
  }
}
