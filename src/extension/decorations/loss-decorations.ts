import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import { PruneLensError } from '../../engine/errors';
import { readTokenLosses, TOKEN_LOSSES_FILE } from '../../engine/export/token-losses';
import { readTextFile } from '../../engine/text/text-file';
import { Debouncer } from '../debouncer';
import { readOutputRecord } from '../runs/output-record';
import { hoverText, LEVELS, lossBuckets, lossSegments, segmentAt, THRESHOLDS, type LossSegments, type Span } from './loss-ranges';

/** The status bar item runs it with the run's folder; the extension registers it with openReport. */
export const OPEN_REPORT_COMMAND = 'prunelens.openReport';
/** True while a run's loss diff is drawn; menus can show the toggle's state. */
const VISIBLE_CONTEXT = 'prunelens.lossDiffVisible';

/** Redraws wait for scrolling and edits to pause this long. */
const REDRAW_DELAY_MS = 50;
/** Characters decorated beyond the visible ones, so a short scroll shows colour before the redraw. */
const MARGIN = 4000;

export interface LossDecorations {
  disposables: vscode.Disposable[];
  /** Reads a run's prunelens.json and token losses, opens its evaluation text and colours it. */
  showRun(outputFolder: string): Promise<void>;
  /** Hides or shows the colours (the run stays loaded). */
  toggle(): void;
  /** After each redraw of an editor showing the run's text: how many token ranges were coloured. */
  onDidDecorate: vscode.Event<{ uri: vscode.Uri; ranges: number }>;
}

interface ShownRun {
  folder: string;
  textFile: string;
  /** The text the spans were measured on; an editor showing anything else is left alone. */
  text: string;
  segments: LossSegments;
}

/**
 * The inline perplexity diff, after Error Lens: one decoration type per level, created once with theme
 * colours and disposed together; only editors showing the run's evaluation text are decorated, and only
 * around their visible ranges, redrawn when those change.
 *
 * Colours: `prunelens.lossIncrease1..5` and `prunelens.lossDecrease1..5`, contributed in package.json so
 * every theme can override them. Their defaults are a red / blue diverging pair, not the diff editor's
 * red / green, which readers with red-green colour blindness cannot tell apart; the five levels are one
 * hue at rising opacity, since a built-in theme colour has a single fixed opacity. The two strongest
 * levels also mark the overview ruler (charts.red / charts.blue), so the worst tokens can be found by
 * scrolling.
 */
export function registerLossDecorations(output: vscode.LogOutputChannel): LossDecorations {
  const decorationType = (kind: 'Increase' | 'Decrease', level: number): vscode.TextEditorDecorationType =>
    vscode.window.createTextEditorDecorationType({
      backgroundColor: new vscode.ThemeColor(`prunelens.loss${kind}${level}`),
      rangeBehavior: vscode.DecorationRangeBehavior.ClosedClosed,
      ...(level >= LEVELS - 1 ? { overviewRulerColor: new vscode.ThemeColor(kind === 'Increase' ? 'charts.red' : 'charts.blue'), overviewRulerLane: vscode.OverviewRulerLane.Right } : {}),
    });
  const worse = THRESHOLDS.map((_, k) => decorationType('Increase', k + 1));
  const better = THRESHOLDS.map((_, k) => decorationType('Decrease', k + 1));
  const allTypes = [...worse, ...better];
  const status = vscode.window.createStatusBarItem('prunelens.perplexity', vscode.StatusBarAlignment.Right, 100);
  status.name = 'PruneLens Perplexity';
  let run: ShownRun | undefined;
  let visible = true;
  const decorated = new vscode.EventEmitter<{ uri: vscode.Uri; ranges: number }>();
  let hover: vscode.Disposable | undefined;
  /** Per document version: whether the document still holds the run's text. */
  const matches = new Map<string, { version: number; same: boolean }>();

  const isRunText = (uri: vscode.Uri): boolean => run !== undefined && uri.scheme === 'file' && pathKey(uri.fsPath) === pathKey(run.textFile);
  const showsRun = (document: vscode.TextDocument): boolean => {
    if (!run || !isRunText(document.uri)) return false;
    const key = document.uri.toString();
    let known = matches.get(key);
    if (known?.version !== document.version) {
      known = { version: document.version, same: document.getText() === run.text };
      matches.set(key, known);
    }
    return known.same;
  };

  const draw = (editor: vscode.TextEditor): void => {
    if (!run || !visible || !showsRun(editor.document)) {
      for (const type of allTypes) editor.setDecorations(type, []);
      return;
    }
    const { document } = editor;
    const first = editor.visibleRanges[0];
    const last = editor.visibleRanges[editor.visibleRanges.length - 1];
    const window = first && last ? { from: document.offsetAt(first.start) - MARGIN, to: document.offsetAt(last.end) + MARGIN } : undefined;
    const buckets = lossBuckets(run.segments, window);
    const ranges = (spans: Span[]): vscode.Range[] => spans.map(([s, e]) => new vscode.Range(document.positionAt(s), document.positionAt(e)));
    worse.forEach((type, k) => editor.setDecorations(type, ranges(buckets.worse[k]!)));
    better.forEach((type, k) => editor.setDecorations(type, ranges(buckets.better[k]!)));
    const count = (levels: Span[][]): number => levels.reduce((n, spans) => n + spans.length, 0);
    decorated.fire({ uri: document.uri, ranges: count(buckets.worse) + count(buckets.better) });
  };
  const drawAll = (): void => vscode.window.visibleTextEditors.forEach(draw);
  const redraw = new Debouncer(REDRAW_DELAY_MS, drawAll);

  const setVisible = (value: boolean): void => {
    visible = value;
    void vscode.commands.executeCommand('setContext', VISIBLE_CONTEXT, visible && run !== undefined);
    drawAll();
  };

  return {
    onDidDecorate: decorated.event,
    disposables: [
      ...allTypes,
      decorated,
      status,
      redraw,
      { dispose: () => hover?.dispose() },
      vscode.window.onDidChangeVisibleTextEditors(() => redraw.trigger()),
      vscode.window.onDidChangeTextEditorVisibleRanges((e) => {
        if (isRunText(e.textEditor.document.uri)) redraw.trigger();
      }),
      vscode.workspace.onDidChangeTextDocument((e) => {
        if (isRunText(e.document.uri)) redraw.trigger();
      }),
      vscode.workspace.onDidCloseTextDocument((document) => matches.delete(document.uri.toString())),
    ],

    async showRun(outputFolder) {
      const folder = path.resolve(outputFolder);
      const record = await readOutputRecord(folder);
      if (!record) throw new PruneLensError('output', 'not a PruneLens output (no prunelens.json)', folder);
      const lossesFile = path.join(folder, TOKEN_LOSSES_FILE);
      await fs.access(lossesFile).catch(() => {
        throw new PruneLensError('output', `no ${TOKEN_LOSSES_FILE}: this run was not evaluated, or was made by an older PruneLens`, folder);
      });
      const losses = await readTokenLosses(lossesFile);
      const textFile = path.resolve(folder, losses.textFile);
      const text = await readTextFile(textFile);
      const segments = lossSegments(losses);
      const end = segments.ends[segments.ends.length - 1] ?? 0;
      if (end > text.length) {
        throw new PruneLensError('text', `the token losses reach character ${end} but the text has ${text.length}: it changed after the run`, textFile);
      }
      run = { folder, textFile, text, segments };
      matches.clear();
      hover?.dispose();
      hover = vscode.languages.registerHoverProvider(
        { scheme: 'file', pattern: new vscode.RelativePattern(vscode.Uri.file(path.dirname(textFile)), path.basename(textFile)) },
        {
          provideHover(document, position) {
            if (!run || !visible || !showsRun(document)) return undefined;
            const i = segmentAt(run.segments, document.offsetAt(position));
            if (i === undefined) return undefined;
            const range = new vscode.Range(document.positionAt(run.segments.starts[i]!), document.positionAt(run.segments.ends[i]!));
            return new vscode.Hover(new vscode.MarkdownString(hoverText(run.segments, i)), range);
          },
        },
      );
      const { dense, pruned } = record.perplexity;
      const ppl = (v: number | null): string => (v === null ? '-' : v.toFixed(2));
      status.text = `$(graph-line) PPL ${ppl(dense)} → ${ppl(pruned)}`;
      status.tooltip = new vscode.MarkdownString(
        `**${path.basename(folder)}**: perplexity ${ppl(dense)} dense, ${ppl(pruned)} pruned on \`${path.basename(textFile)}\`.\n\n` +
          `Tokens are tinted by their change in loss: red where the pruned model is less sure of the text, blue where it is more; ` +
          `the strongest of ${LEVELS} levels at ${THRESHOLDS[LEVELS - 1]} nats and beyond. Click for the report.`,
      );
      status.command = { command: OPEN_REPORT_COMMAND, title: 'Open Report', arguments: [folder] };
      status.show();
      output.info(`loss diff of ${folder}: ${losses.starts.length} tokens on ${textFile}`);
      await vscode.window.showTextDocument(vscode.Uri.file(textFile), { preview: false });
      setVisible(true);
    },

    toggle() {
      if (!run) {
        void vscode.window.showInformationMessage('PruneLens: no loss diff is loaded; prune a model, or use Show Loss Diff on a run.');
        return;
      }
      setVisible(!visible);
    },
  };
}

/** Paths as the file system compares them: Windows ignores case, and the drive letter's case varies. */
function pathKey(file: string): string {
  const resolved = path.resolve(file);
  return process.platform === 'win32' ? resolved.toLowerCase() : resolved;
}
