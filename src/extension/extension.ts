import * as vscode from 'vscode';
import { registerCommands } from './commands';

export function activate(context: vscode.ExtensionContext): void {
  const output = vscode.window.createOutputChannel('PruneLens', { log: true });
  context.subscriptions.push(output, ...registerCommands(output));
}

export function deactivate(): void {}
