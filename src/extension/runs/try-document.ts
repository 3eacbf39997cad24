/**
 * "Try it" as Markdown: the prompt, then the dense and the pruned model's continuations side by side in
 * one table row, so a person reads what pruning did to the text. No `vscode` import, so it is tested
 * under plain Node.
 */
import * as path from 'node:path';
import type { TryRunResult } from '../../engine/llamacpp/try-run';

/** Model text shown as text: Markdown and HTML syntax escaped, line breaks kept inside the table cell. */
export function markdownText(text: string): string {
  return text
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/([\\`*_[\]{}()#+\-.!|~])/g, '\\$1')
    .replace(/\r?\n/g, '<br>');
}

export function tryDocument(r: TryRunResult, runLabel: string): string {
  const cell = (side: TryRunResult['dense']): string => `**${markdownText(r.prompt)}**${markdownText(side.text)}`;
  const figures = (side: TryRunResult['dense']): string =>
    `${side.tokens} tokens${side.tokens < r.maxTokens ? ' (the model ended the text)' : ''}, ${side.tokensPerSecond.toFixed(0)} tokens/s`;
  return [
    `# PruneLens: try it, ${markdownText(runLabel)}`,
    '',
    `The prompt (bold) continued greedily for up to ${r.maxTokens} tokens by each model, from ${r.type} GGUF files in ${markdownText(r.runtime)}.`,
    '',
    `| dense: ${markdownText(path.basename(r.dense.model))} | pruned: ${markdownText(path.basename(r.pruned.model))} |`,
    '|---|---|',
    `| ${cell(r.dense)} | ${cell(r.pruned)} |`,
    `| ${figures(r.dense)} | ${figures(r.pruned)} |`,
    '',
    `1. \`${r.dense.file}\``,
    `2. \`${r.pruned.file}\``,
    '',
  ].join('\n');
}
