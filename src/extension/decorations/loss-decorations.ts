import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import { formatPerplexity } from '../../engine/display';
import { PruneLensError } from '../../engine/errors';
import { readTokenLosses, TOKEN_LOSSES_FILE, type TokenLosses } from '../../engine/export/token-losses';
import { readTextFile } from '../../engine/text/text-file';
import { Debouncer } from '../debouncer';
import { readOutputRecord, runLabel, type OutputRecord } from '../runs/output-record';
import { DENSE_PRUNED, hoverText, legend, LEVELS, lossBuckets, lossSegments, segmentAt, THRESHOLDS, worstFirst, type LossLabels, type LossSegments, type Span } from './loss-ranges';

/** The status bar item runs it with the run's folder; the extension registers it with openReport. */
export const OPEN_REPORT_COMMAND = 'prunelens.openReport';
/** The evaluation text is shown read-only under this scheme: `prunelens-text:/path/to/eval.txt?run=<folder>[&compare=<folder>]`. */
export const LOSS_TEXT_SCHEME = 'prunelens-text';
/** The virtual document's language: no grammar, only its own editor defaults (word wrap, so no token is off to the side). */
export const LOSS_TEXT_LANGUAGE = 'prunelens-loss-diff';
/** True while the loss colours are drawn; the editor title shows Hide or Show by it. */
const VISIBLE_CONTEXT = 'prunelens.lossDiffVisible';

/** Redraws wait for scrolling and edits to pause this long. */
const REDRAW_DELAY_MS = 50;
/** Characters decorated beyond the visible ones, so a short scroll shows colour before the redraw. */
const MARGIN = 4000;

export interface LossDecorations {
  disposables: vscode.Disposable[];
  /** Reads a run's prunelens.json and token losses, opens its evaluation text and colours it. */
  showRun(outputFolder: string): Promise<void>;
  /** Opens the evaluation text two runs share, coloured by how the second run's losses differ from the first's. */
  compareRuns(first: string, second: string): Promise<void>;
  /** Hides or shows the colours (the run stays loaded). */
  toggle(): void;
  /** Moves the cursor to the next (or previous) token in order of how much its loss rose. */
  worstToken(step: 1 | -1): Promise<void>;
  /** After each redraw of an editor showing the run's text: how many token ranges were coloured. */
  onDidDecorate: vscode.Event<{ uri: vscode.Uri; ranges: number }>;
}

interface ShownRun {
  /** The document showing it: the evaluation text under LOSS_TEXT_SCHEME. */
  uri: vscode.Uri;
  textFile: string;
  /** The document's text: the legend, then the evaluation text the spans were measured on. */
  content: string;
  /** Where the evaluation text starts in the document (after the legend). */
  offset: number;
  swatches: { start: number; end: number; level: number }[];
  segments: LossSegments;
  labels: LossLabels;
  worst: Int32Array;
  /** Position in `worst` of the last token "next worst token" went to; -1 before the first. */
  cursor: number;
  /** When it was loaded: the document's modification time, which changes only when the run is loaded again. */
  loadedAt: number;
}

/** One run's losses and record, checked against its evaluation text. */
async function loadLosses(outputFolder: string): Promise<{ folder: string; record: OutputRecord; losses: TokenLosses; textFile: string; text: string }> {
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
  const end = losses.ends.reduce((m, e) => Math.max(m, e), 0);
  if (end > text.length) throw new PruneLensError('text', `the token losses reach character ${end} but the text has ${text.length}: it changed after the run`, textFile);
  return { folder, record, losses, textFile, text };
}

const runName = (folder: string, record: OutputRecord): string => `${path.basename(folder)} (${runLabel(record)})`;

/**
 * The inline perplexity diff, after Error Lens: one decoration type per level, created once with theme
 * colours and disposed together; only the read-only evaluation text (a virtual document, so nothing in
 * the install folder or the workspace is opened for editing) is decorated, and only around its visible
 * ranges, redrawn when those change. The document begins with a legend drawn with the same decorations.
 * Its URI names the run, so after a window reload VS Code reopens it and the run is loaded again.
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
  /** Shown runs by document URI (the last few: a document reopened in another language must find its run); the latest is the one commands act on. */
  const shown = new Map<string, ShownRun>();
  const KEEP_RUNS = 4;
  /** Documents open() is opening, which it puts in the loss diff's language itself. */
  const opening = new Set<string>();
  let latest: ShownRun | undefined;
  let visible = true;
  const decorated = new vscode.EventEmitter<{ uri: vscode.Uri; ranges: number }>();
  const changedFiles = new vscode.EventEmitter<vscode.FileChangeEvent[]>();

  const runOf = (document: vscode.TextDocument): ShownRun | undefined => (document.uri.scheme === LOSS_TEXT_SCHEME ? shown.get(document.uri.toString()) : undefined);

  const draw = (editor: vscode.TextEditor): void => {
    const run = runOf(editor.document);
    if (!run) {
      // A tab whose run was let go (KEEP_RUNS) while it stayed open, e.g. one of several restored by a window
      // reload: VS Code keeps its text and will not read it again, so the run is loaded here, then drawn.
      if (editor.document.uri.scheme === LOSS_TEXT_SCHEME) {
        runAt(editor.document.uri).then(
          () => redraw.trigger(),
          (err: unknown) => output.warn(`loss diff of ${editor.document.uri.toString()}: ${err instanceof Error ? err.message : String(err)}`),
        );
      }
      return;
    }
    if (!visible || editor.document.getText() !== run.content) {
      for (const type of allTypes) editor.setDecorations(type, []);
      return;
    }
    const { document } = editor;
    const first = editor.visibleRanges[0];
    const last = editor.visibleRanges[editor.visibleRanges.length - 1];
    const window = first && last ? { from: document.offsetAt(first.start) - run.offset - MARGIN, to: document.offsetAt(last.end) - run.offset + MARGIN } : undefined;
    const buckets = lossBuckets(run.segments, window);
    const ranges = (spans: Span[]): vscode.Range[] => spans.map(([s, e]) => new vscode.Range(document.positionAt(run.offset + s), document.positionAt(run.offset + e)));
    const swatches = (level: number): vscode.Range[] => run.swatches.filter((s) => s.level === level).map((s) => new vscode.Range(document.positionAt(s.start), document.positionAt(s.end)));
    worse.forEach((type, k) => editor.setDecorations(type, [...swatches(k + 1), ...ranges(buckets.worse[k]!)]));
    better.forEach((type, k) => editor.setDecorations(type, [...swatches(-(k + 1)), ...ranges(buckets.better[k]!)]));
    const count = (levels: Span[][]): number => levels.reduce((n, spans) => n + spans.length, 0);
    decorated.fire({ uri: document.uri, ranges: count(buckets.worse) + count(buckets.better) });
  };
  const drawAll = (): void => vscode.window.visibleTextEditors.forEach(draw);
  const redraw = new Debouncer(REDRAW_DELAY_MS, drawAll);

  const setVisible = (value: boolean): void => {
    visible = value;
    void vscode.commands.executeCommand('setContext', VISIBLE_CONTEXT, visible);
    drawAll();
  };

  const showStatus = (run: ShownRun, ppl: { before: number | null; after: number | null }, reportFolder: string): void => {
    status.text = `$(graph-line) PPL ${formatPerplexity(ppl.before)} → ${formatPerplexity(ppl.after)}`;
    status.tooltip = new vscode.MarkdownString(
      `Perplexity ${formatPerplexity(ppl.before)} (${run.labels.before}) → ${formatPerplexity(ppl.after)} (${run.labels.after}) on \`${path.basename(run.textFile)}\`.\n\n` +
        `Tokens are tinted by their change in loss: red where ${run.labels.after} is less sure of the text, blue where it is more; ` +
        `the strongest of ${LEVELS} levels at ${THRESHOLDS[LEVELS - 1]} nats and beyond. Click for the report.`,
    );
    status.command = { command: OPEN_REPORT_COMMAND, title: 'Open Report', arguments: [reportFolder] };
    status.show();
  };

  /** Loads what a document URI names (a run, or two compared) and remembers it under that URI. */
  const load = async (uri: vscode.Uri): Promise<ShownRun> => {
    const query = new URLSearchParams(uri.query);
    const runFolder = query.get('run');
    if (!runFolder) throw new PruneLensError('usage', `${uri.toString()} names no PruneLens run`);
    const compare = query.get('compare');
    const a = await loadLosses(runFolder);
    let segments: LossSegments;
    let labels: LossLabels;
    let ppl: { before: number | null; after: number | null };
    if (compare) {
      const b = await loadLosses(compare);
      const same = a.textFile === b.textFile && a.losses.seqlen === b.losses.seqlen && a.losses.windows === b.losses.windows && a.losses.starts.every((s, i) => s === b.losses.starts[i]);
      if (!same) {
        throw new PruneLensError(
          'usage',
          `the two runs were evaluated on different tokens (${path.basename(a.textFile)}, ${a.losses.windows} windows of ${a.losses.seqlen} vs ${path.basename(b.textFile)}, ${b.losses.windows} of ${b.losses.seqlen}); compare runs evaluated alike`,
          compare,
        );
      }
      segments = lossSegments({ starts: a.losses.starts, ends: a.losses.ends, dense: a.losses.pruned, pruned: b.losses.pruned });
      labels = { before: runName(a.folder, a.record), after: runName(b.folder, b.record) };
      ppl = { before: a.record.perplexity.pruned, after: b.record.perplexity.pruned };
    } else {
      segments = lossSegments(a.losses);
      labels = DENSE_PRUNED;
      ppl = { before: a.record.perplexity.dense, after: a.record.perplexity.pruned };
    }
    const key = legend(labels);
    const run: ShownRun = {
      uri,
      textFile: a.textFile,
      content: key.text + a.text,
      offset: key.text.length,
      swatches: key.swatches,
      segments,
      labels,
      worst: worstFirst(segments),
      cursor: -1,
      loadedAt: Date.now(),
    };
    shown.delete(uri.toString());
    shown.set(uri.toString(), run);
    // The oldest go first, never one on screen: draw() would load it again at once.
    const onScreen = new Set(vscode.window.visibleTextEditors.map((e) => e.document.uri.toString()));
    const evictable = [...shown.keys()].filter((key) => key !== uri.toString() && !onScreen.has(key));
    for (const key of evictable.slice(0, Math.max(0, shown.size - KEEP_RUNS))) shown.delete(key);
    latest = run;
    showStatus(run, ppl, compare ?? a.folder);
    output.info(`loss diff ${compare ? `of ${compare} against ${a.folder}` : `of ${a.folder}`}: ${segments.starts.length} tokens on ${a.textFile}`);
    return run;
  };

  const open = async (uri: vscode.Uri): Promise<void> => {
    await load(uri);
    changedFiles.fire([{ type: vscode.FileChangeType.Changed, uri }]);
    opening.add(uri.toString());
    try {
      const document = await vscode.workspace.openTextDocument(uri);
      const inLanguage = document.languageId === LOSS_TEXT_LANGUAGE ? document : await vscode.languages.setTextDocumentLanguage(document, LOSS_TEXT_LANGUAGE);
      await vscode.window.showTextDocument(inLanguage, { preview: false });
    } finally {
      opening.delete(uri.toString());
    }
    setVisible(true);
  };

  // Colours are on until toggled; the editor title offers Hide or Show by this.
  void vscode.commands.executeCommand('setContext', VISIBLE_CONTEXT, true);

  /**
   * The documents live on a read-only file system of their own rather than behind a text content
   * provider: VS Code reopens the editors of a file system after a window reload (activating the
   * extension by onFileSystem), and drops those of a content provider. Every path reads the run its
   * URI names; nothing can be written.
   */
  const runAt = async (uri: vscode.Uri): Promise<ShownRun> => shown.get(uri.toString()) ?? (await load(uri));
  const readOnly = (uri: vscode.Uri): never => {
    throw vscode.FileSystemError.NoPermissions(uri);
  };
  const lossTextFiles: vscode.FileSystemProvider = {
    onDidChangeFile: changedFiles.event,
    watch: () => new vscode.Disposable(() => {}),
    async stat(uri) {
      const run = await runAt(uri);
      return { type: vscode.FileType.File, ctime: run.loadedAt, mtime: run.loadedAt, size: Buffer.byteLength(run.content), permissions: vscode.FilePermission.Readonly };
    },
    async readFile(uri) {
      const run = await runAt(uri);
      redraw.trigger();
      return Buffer.from(run.content, 'utf8');
    },
    readDirectory: readOnly,
    createDirectory: readOnly,
    writeFile: readOnly,
    delete: readOnly,
    rename: readOnly,
  };

  const uriFor = (textFile: string, query: Record<string, string>): vscode.Uri =>
    vscode.Uri.from({ scheme: LOSS_TEXT_SCHEME, path: vscode.Uri.file(textFile).path, query: new URLSearchParams(query).toString() });

  return {
    onDidDecorate: decorated.event,
    disposables: [
      ...allTypes,
      decorated,
      changedFiles,
      status,
      redraw,
      vscode.workspace.registerFileSystemProvider(LOSS_TEXT_SCHEME, lossTextFiles, { isReadonly: true, isCaseSensitive: true }),
      vscode.languages.registerHoverProvider(
        { scheme: LOSS_TEXT_SCHEME },
        {
          provideHover(document, position) {
            const run = runOf(document);
            if (!run || !visible) return undefined;
            const i = segmentAt(run.segments, document.offsetAt(position) - run.offset);
            if (i === undefined) return undefined;
            const start = run.segments.starts[i]!;
            const end = run.segments.ends[i]!;
            const range = new vscode.Range(document.positionAt(run.offset + start), document.positionAt(run.offset + end));
            return new vscode.Hover(new vscode.MarkdownString(hoverText(run.segments, i, run.content.slice(run.offset + start, run.offset + end), run.labels)), range);
          },
        },
      ),
      vscode.window.onDidChangeVisibleTextEditors(() => redraw.trigger()),
      vscode.window.onDidChangeTextEditorVisibleRanges((e) => {
        if (runOf(e.textEditor.document)) redraw.trigger();
      }),
      // A document VS Code reopens itself (window reload) gets the loss diff's language too.
      vscode.workspace.onDidOpenTextDocument((document) => {
        if (document.uri.scheme === LOSS_TEXT_SCHEME && document.languageId !== LOSS_TEXT_LANGUAGE && !opening.has(document.uri.toString())) {
          void vscode.languages.setTextDocumentLanguage(document, LOSS_TEXT_LANGUAGE);
        }
      }),
    ],

    async showRun(outputFolder) {
      const folder = path.resolve(outputFolder);
      const losses = await loadLosses(folder);
      await open(uriFor(losses.textFile, { run: folder }));
    },

    async compareRuns(first, second) {
      const a = await loadLosses(first);
      await open(uriFor(a.textFile, { run: path.resolve(first), compare: path.resolve(second) }));
    },

    toggle() {
      if (!latest) {
        void vscode.window.showInformationMessage('PruneLens: no loss diff is loaded; prune a model, or use Show Loss Diff on a run.');
        return;
      }
      setVisible(!visible);
    },

    async worstToken(step) {
      const editor = vscode.window.activeTextEditor;
      const run = (editor && runOf(editor.document)) ?? latest;
      if (!run) throw new PruneLensError('usage', 'no loss diff is open; use Show Loss Diff on a run first');
      const count = run.worst.length;
      if (count === 0) return;
      run.cursor = Math.min(count - 1, Math.max(0, run.cursor + step));
      const i = run.worst[run.cursor]!;
      const target = editor && runOf(editor.document) === run ? editor : await vscode.window.showTextDocument(run.uri, { preview: false });
      const { document } = target;
      const range = new vscode.Range(document.positionAt(run.offset + run.segments.starts[i]!), document.positionAt(run.offset + run.segments.ends[i]!));
      // The cursor at the token's start, where the hover below is shown for it.
      target.selection = new vscode.Selection(range.end, range.start);
      target.revealRange(range, vscode.TextEditorRevealType.InCenterIfOutsideViewport);
      if (!visible) setVisible(true);
      const diff = run.segments.pruned[i]! - run.segments.dense[i]!;
      vscode.window.setStatusBarMessage(`PruneLens: token ${run.cursor + 1} of ${count} by rise in loss (${diff >= 0 ? '+' : '−'}${Math.abs(diff).toFixed(3)} nats)`, 5000);
      await vscode.commands.executeCommand('editor.action.showHover');
    },
  };
}
