import * as vscode from 'vscode';
import { EMBEDDED_MODEL, SAMPLE_EVALUATION_TEXT } from '../engine/embedded';
import { isCancelled, PruneLensError } from '../engine/errors';
import { evaluateModel } from '../engine/evaluate/evaluate-model';
import { Checkpoint } from '../engine/io/checkpoint';
import { describeModel } from '../engine/model/describe';
import { readConfig } from './config';

export const enum CommandId {
  ShowModelInfo = 'prunelens.showModelInfo',
  EvaluatePerplexity = 'prunelens.evaluatePerplexity',
}

export function registerCommands(output: vscode.LogOutputChannel): vscode.Disposable[] {
  const modelPath = (uri: vscode.Uri | undefined): string => uri?.fsPath ?? EMBEDDED_MODEL;
  return [
    vscode.commands.registerCommand(CommandId.ShowModelInfo, (uri?: vscode.Uri) =>
      report(output, async () => {
        const checkpoint = await Checkpoint.open(modelPath(uri));
        try {
          const s = describeModel(checkpoint);
          output.info(JSON.stringify(s, null, 2));
          output.show(true);
          void vscode.window.showInformationMessage(
            `${s.architecture}: ${s.layers} layers, ${s.heads} heads (${s.kvHeads} KV), ${s.parameters.toLocaleString()} parameters, ${s.dtype}`,
          );
        } finally {
          await checkpoint.close();
        }
      }),
    ),
    vscode.commands.registerCommand(CommandId.EvaluatePerplexity, (uri?: vscode.Uri) =>
      report(output, () => evaluateWithProgress(output, modelPath(uri))),
    ),
  ];
}

async function evaluateWithProgress(output: vscode.LogOutputChannel, model: string): Promise<void> {
  if (!vscode.workspace.isTrusted) throw new PruneLensError('usage', 'PruneLens runs models only in a trusted workspace');
  const config = readConfig();
  const result = await vscode.window.withProgress(
    { location: vscode.ProgressLocation.Notification, title: 'PruneLens: perplexity', cancellable: true },
    async (progress, token) => {
      const abort = new AbortController();
      const subscription = token.onCancellationRequested(() => abort.abort());
      let reported = 0;
      try {
        return await evaluateModel({
          model,
          textFile: config.evaluationText || SAMPLE_EVALUATION_TEXT,
          seqlen: config.seqlen,
          runtime: { provider: config.provider, threads: config.threads || undefined },
          signal: abort.signal,
          log: output,
          onProgress: (e) => {
            if (e.type === 'warning') return output.warn(e.message);
            const pct = (100 * e.done) / e.total;
            progress.report({ increment: pct - reported, message: e.detail });
            reported = pct;
          },
        });
      } finally {
        subscription.dispose();
      }
    },
  );
  output.info(`${result.model}: ppl ${result.ppl.toFixed(4)} over ${result.windows} windows of ${result.seqlen} (${result.seconds.toFixed(1)} s)`);
  void vscode.window.showInformationMessage(`Perplexity ${result.ppl.toFixed(3)} (${result.windows} windows of ${result.seqlen} tokens)`);
}

/** Shows engine errors as messages that say what to do; cancellation is not an error. */
async function report(output: vscode.LogOutputChannel, job: () => Promise<void>): Promise<void> {
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
