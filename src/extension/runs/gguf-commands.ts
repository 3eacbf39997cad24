import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import { formatMiB } from '../../engine/display';
import { SAMPLE_EVALUATION_TEXT } from '../../engine/embedded';
import { PruneLensError } from '../../engine/errors';
import type { GgufType } from '../../engine/export/gguf/ggml-types';
import { refuseUnsupportedArchitecture } from '../../engine/llamacpp/export-run-gguf';
import { llamaInstalled, LLAMA_CPP_PACKAGE } from '../../engine/llamacpp/llama-client';
import { promptFromText, TRY_TOKENS } from '../../engine/llamacpp/try-run';
import { readConfig, settingPath } from '../config';
import { reportErrors, requireTrust } from '../errors';
import { withEngineProgress } from '../progress';
import type { Services } from '../services';
import { RunNode } from '../trees/nodes/run-node';
import { engineJobs } from '../worker/engine';
import { tryDocument } from './try-document';
import { runLabel, runPerplexity, runDate } from './output-record';
import type { Run } from './run-registry';

export const enum GgufCommandId {
  ExportGguf = 'prunelens.exportGguf',
  TryRun = 'prunelens.tryRun',
}

/** "Try it" results open as Markdown under this scheme, read-only; kept in workspace state like comparisons. */
const TRY_SCHEME = 'prunelens-try';
const TRIES_KEY = 'prunelens.tries';
const KEEP_TRIES = 10;

const TYPES: { type: GgufType; detail: string }[] = [
  { type: 'f16', detail: 'Half precision: what llama.cpp, Ollama and LM Studio users usually run unquantized' },
  { type: 'f32', detail: 'Full precision: twice the size, the exact weights' },
  { type: 'bf16', detail: 'Brain float: half the size, the range of f32' },
  { type: 'q8_0', detail: '8-bit blocks of 32: about half of f16 (rows not a multiple of 32 stay f16)' },
];

/**
 * Export to GGUF and Try it, on a run of the Runs view (or one picked from the palette). Both run in
 * the engine process; what llama.cpp cannot take (architecture, missing node-llama-cpp) is said before any work.
 */
export function registerGgufCommands(services: Services): vscode.Disposable[] {
  const { output, runs, workspaceState } = services;
  const tries = (): Record<string, string> => workspaceState.get<Record<string, string>>(TRIES_KEY) ?? {};
  const changed = new vscode.EventEmitter<vscode.Uri>();

  const chosenRun = async (node: unknown, title: string): Promise<Run | undefined> => {
    if (node instanceof RunNode) return node.run;
    await runs.refresh();
    if (runs.list.length === 0) throw new PruneLensError('usage', `${title.replace(/^PruneLens: /, '')} acts on a PruneLens run; this workspace has none yet`);
    const picked = await vscode.window.showQuickPick(
      runs.list.map((run) => ({ label: runLabel(run.record), description: `${runPerplexity(run.record)} · ${runDate(run.record)}`, detail: run.folder, run })),
      { title, placeHolder: 'Pick a run' },
    );
    return picked?.run;
  };

  return [
    changed,
    vscode.workspace.registerTextDocumentContentProvider(TRY_SCHEME, {
      onDidChange: changed.event,
      provideTextDocumentContent: (uri) => tries()[uri.toString()] ?? '# PruneLens: this text is gone\n\nRun **PruneLens: Try It** on the run again.\n',
    }),
    vscode.commands.registerCommand(GgufCommandId.ExportGguf, (node?: unknown) =>
      reportErrors(output, async () => {
        requireTrust();
        const title = 'PruneLens: Export to GGUF';
        const run = await chosenRun(node, title);
        if (!run) return;
        await refuseUnsupportedArchitecture(run.folder);
        const typePick = await vscode.window.showQuickPick(
          TYPES.map((t, i) => ({ label: t.type, description: i === 0 ? 'default' : undefined, detail: t.detail, type: t.type })),
          { title: `${title} (1/3): weight type`, placeHolder: 'The type of the matrices; norms stay f32' },
        );
        if (!typePick) return;
        const measure = llamaInstalled()
          ? await vscode.window.showQuickPick(
              [
                { label: 'Export and measure in llama.cpp', detail: 'Also exports the dense model (cached) and measures file size, memory and tokens/s of both; the savings go into the run\'s report', measure: true },
                { label: 'Export only', detail: 'Write the GGUF file and stop', measure: false },
              ],
              { title: `${title} (2/3): savings`, placeHolder: 'Measure what pruning saves where the model runs?' },
            )
          : { measure: false };
        if (!measure) return;
        if (!measure.measure) output.info(`${LLAMA_CPP_PACKAGE} is not installed: exporting without measuring in llama.cpp`);
        const target = await vscode.window.showSaveDialog({
          defaultUri: vscode.Uri.file(`${run.folder}-${typePick.type}.gguf`),
          filters: { 'GGUF model': ['gguf'] },
          title: `${title} (3/3): file`,
          saveLabel: 'Export',
        });
        if (!target) return;
        const out = target.fsPath;
        // The save dialog already asked before replacing a file; the engine replaces only a GGUF file.
        const overwrite = await fs.stat(out).then(() => true, () => false);
        const textFile = settingPath(readConfig().evaluationText, SAMPLE_EVALUATION_TEXT);
        const stages = [{ stage: 'export gguf', weight: 1 }, ...(measure.measure ? [{ stage: 'measure in llama.cpp', weight: 2 }] : [])];
        const result = await withEngineProgress(`PruneLens: exporting ${path.basename(run.folder)} to GGUF (${typePick.type})`, stages, output, (control) =>
          engineJobs.run('gguf', { model: run.folder, type: typePick.type, out, overwrite, measure: measure.measure, textFile }, control),
        );
        const r = result.export;
        output.info(`${r.out}: ${r.architecture}, ${r.tensors} tensors, ${formatMiB(r.bytes)} (${r.type})${r.fallbackToF16.length ? `; kept at f16: ${r.fallbackToF16.join(', ')}` : ''}`);
        if (result.savings) await runs.refresh();
        const s = result.savings;
        const saved = s ? `; in llama.cpp ${formatMiB(s.dense.bytes)} → ${formatMiB(s.pruned.bytes)}, generation ${s.dense.generateTokensPerSecond.toFixed(0)} → ${s.pruned.generateTokensPerSecond.toFixed(0)} tokens/s` : '';
        void vscode.window.showInformationMessage(`PruneLens: exported ${path.basename(r.out)} (${formatMiB(r.bytes)}, ${r.type})${saved}`, 'Reveal in Explorer').then((choice) => {
          if (choice) void vscode.commands.executeCommand('revealFileInOS', vscode.Uri.file(r.out));
        });
      }),
    ),
    vscode.commands.registerCommand(GgufCommandId.TryRun, (node?: unknown) =>
      reportErrors(output, async () => {
        requireTrust();
        const title = 'PruneLens: Try It';
        const run = await chosenRun(node, title);
        if (!run) return;
        if (!llamaInstalled()) {
          throw new PruneLensError('provider', `Try It runs the models in llama.cpp, which needs the optional package ${LLAMA_CPP_PACKAGE}; it is not installed with this copy of PruneLens`);
        }
        await refuseUnsupportedArchitecture(run.folder);
        const textFile = settingPath(readConfig().evaluationText, SAMPLE_EVALUATION_TEXT);
        const suggestion = promptFromText(await fs.readFile(textFile, 'utf8').catch(() => ''));
        const prompt = await vscode.window.showInputBox({
          title,
          prompt: `The start of a text; the dense model and ${runLabel(run.record)} each continue it greedily for ${TRY_TOKENS} tokens in llama.cpp`,
          value: suggestion,
          validateInput: (v) => (v.trim() === '' ? 'Type the start of a text' : undefined),
        });
        if (prompt === undefined) return;
        const result = await withEngineProgress(`PruneLens: trying ${path.basename(run.folder)} in llama.cpp`, [{ stage: 'export gguf', weight: 1 }, { stage: 'generate in llama.cpp', weight: 1 }], output, (control) =>
          engineJobs.run('try', { model: run.folder, prompt, maxTokens: TRY_TOKENS }, control),
        );
        const kept = Object.entries(tries());
        const number = 1 + kept.reduce((n, [key]) => Math.max(n, Number(/%20(\d+)\.md$/.exec(key)?.[1] ?? 0)), 0);
        const uri = vscode.Uri.from({ scheme: TRY_SCHEME, path: `/Try ${path.basename(run.folder)} ${number}.md` });
        await workspaceState.update(TRIES_KEY, Object.fromEntries([...kept.slice(-(KEEP_TRIES - 1)), [uri.toString(), tryDocument(result, runLabel(run.record))]]));
        changed.fire(uri);
        // Its own tab, kept open (not a preview tab the next editor replaces): the two texts are there to be
        // read and compared, beside a runs comparison if one is open.
        await vscode.commands.executeCommand('vscode.openWith', uri, 'vscode.markdown.preview.editor', { preview: false });
      }),
    ),
  ];
}
