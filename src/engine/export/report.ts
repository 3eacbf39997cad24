import * as path from 'node:path';
import { estimatePlan } from '../allocate/estimate';
import { ALLOCATION_NAMES, formatLoss, formatMiB, formatMs, formatPercent, formatPerplexity, formatSeconds, METHOD_LABELS, UPDATE_LABELS } from '../display';
import { methodOf, updateOf } from '../prune/methods';
import type { PruneSettings } from '../prune/spec';
import type { StructuredRecord } from '../structured/structured-prune';
import type { PruneRecord } from './record';

export const REPORT_FILE = 'prunelens-report.md';
/** Figures written beside the report and linked from it by relative path (the Markdown preview and GitHub show them). */
export const SPARSITY_FIGURE = 'prunelens-sparsity.svg';
export const LOSS_HISTOGRAM_FIGURE = 'prunelens-loss-histogram.svg';
export const ERROR_FIGURE = 'prunelens-block-error.svg';

/** Per-token losses in nats of the same evaluation windows, before and after pruning. */
export interface TokenLossPair {
  dense: Float32Array;
  pruned: Float32Array;
}

/**
 * Every file of the report, to be written into the output folder: the Markdown and its figures. The
 * loss histogram needs the per-token losses, so it is drawn only when they were kept.
 */
export function reportFiles(r: PruneRecord, losses?: TokenLossPair): [name: string, content: string][] {
  const figures: [string, string][] = [[SPARSITY_FIGURE, sparsitySvg(r)]];
  const errors = blockErrors(r);
  if (errors) figures.push([ERROR_FIGURE, blockErrorSvg(errors)]);
  if (losses && losses.dense.length > 0) figures.push([LOSS_HISTOGRAM_FIGURE, lossHistogramSvg(losses)]);
  return [[REPORT_FILE, renderReport(r, figures.map(([name]) => name))], ...figures];
}

/** The report of a structured run (heads, channels or blocks removed): what was cut, perplexity, size and time. */
export function structuredReportFiles(r: StructuredRecord, losses?: TokenLossPair): [name: string, content: string][] {
  const figures: [string, string][] = losses && losses.dense.length > 0 ? [[LOSS_HISTOGRAM_FIGURE, lossHistogramSvg(losses)]] : [];
  return [[REPORT_FILE, renderStructuredReport(r, figures.map(([name]) => name))], ...figures];
}

export function renderStructuredReport(r: StructuredRecord, figures: readonly string[] = []): string {
  const where = { output: r.output } as PruneRecord;
  const explicit = r.explicit && [...r.explicit.heads.map(([l, h]) => `head ${l}.${h} (zeroed)`), ...r.explicit.layers.map((l) => `layer ${l}`)].join(', ');
  const target = r.target && `${[r.target.heads && 'heads', r.target.channels && 'channels', r.target.layers && 'layers'].filter(Boolean).join(', ')}, ${formatPercent(r.target.ratio)} of the parameters`;
  const kv = Object.entries(r.removed.kvHeads).filter(([, g]) => g.length > 0);
  const lines = [
    `# PruneLens report: removed ${explicit ?? target}`,
    '',
    `Source \`${relative(where, r.source.path)}\` (${r.source.dtype}), pruned into this folder on ${r.created}. Paths are relative to this folder.`,
    '',
    '## What was removed',
    '',
    '| part | removed |',
    '|---|---|',
    `| decoder blocks | ${r.removed.layers.length ? r.removed.layers.join(', ') : 'none'} |`,
    `| key/value heads (with their query heads) | ${kv.length ? kv.map(([l, g]) => `layer ${l}: ${g.join(', ')}`).join('; ') : 'none'} |`,
    `| MLP channels per layer | ${r.removed.channelsPerLayer} |`,
    `| heads zeroed in place | ${r.removed.maskedHeads.length ? r.removed.maskedHeads.map(([l, h]) => `${l}.${h}`).join(', ') : 'none'} |`,
    `| parameters | ${r.parameters.before.toLocaleString('en-US')} → ${r.parameters.after.toLocaleString('en-US')} (${formatPercent(r.parameters.removedFraction)} removed) |`,
    `| size on disk | ${formatMiB(r.bytes.before)} → ${formatMiB(r.bytes.after)} |`,
    '',
    '## Perplexity',
    '',
  ];
  if (r.evaluation) {
    const ratio = r.perplexity.dense && r.perplexity.pruned ? ` (x${(r.perplexity.pruned / r.perplexity.dense).toFixed(3)})` : '';
    lines.push(
      `\`${relative(where, r.evaluation.file)}\`, WikiText protocol: ${r.evaluation.windows} windows of ${r.evaluation.seqlen} tokens.`,
      '',
      '| model | perplexity |',
      '|---|---|',
      `| dense | ${formatPerplexity(r.perplexity.dense)} |`,
      `| pruned | ${formatPerplexity(r.perplexity.pruned)}${ratio} |`,
    );
    if (figures.includes(LOSS_HISTOGRAM_FIGURE)) lines.push('', `![Histogram of the change in loss per predicted token, pruned minus dense, in nats](${LOSS_HISTOGRAM_FIGURE})`);
  } else {
    lines.push('Not evaluated.');
  }
  lines.push('', '## Cost', '', `Whole run ${formatSeconds(r.seconds.total)}, peak resident memory ${r.peakRssMb.toFixed(0)} MiB.`, '');
  return lines.join('\n');
}

/** A stored block linear's layer and module (`model.layers.3.self_attn.q_proj.weight`, `h.3.attn.c_attn.weight`). */
const BLOCK_LINEAR = /^(?:.*\.)?(?:layers|h)\.(\d+)\.(.+)\.weight$/;

/** The table's columns: the stored linears of a block in the checkpoint's order (fused ones as stored), by their last name part. */
function linearColumns(r: PruneRecord): { module: string; label: string }[] {
  const modules = [...new Set(Object.keys(r.tensors).map((name) => BLOCK_LINEAR.exec(name)?.[2]).filter((m): m is string => m !== undefined))];
  const last = (module: string) => module.slice(module.lastIndexOf('.') + 1);
  // GPT-2 has attn.c_proj and mlp.c_proj: a name two modules share is written in full.
  return modules.map((module) => ({ module, label: modules.filter((m) => last(m) === last(module)).length > 1 ? module : last(module) }));
}

/** The per-block error chart's data: what it measures, per block, with each block's breakdown for its tooltip. */
export interface BlockErrors {
  title: string;
  axis: string;
  values: number[];
  details: string[];
}

/**
 * Per block, the loss its linears were left with as they were pruned (their sum; see Pruned in
 * prune/methods/method.ts), when the record kept them; otherwise the relative output error the plan's
 * error table gives for the ratios the run pruned at. Records made before per-linear losses were kept
 * and have no error table get no chart.
 */
function blockErrors(r: PruneRecord): BlockErrors | undefined {
  if (r.layers.length > 0 && r.layers.every((l) => l.linears && Object.keys(l.linears).length > 0)) {
    const linears = r.layers.map((l) => Object.entries(l.linears!));
    return {
      title: `Layer loss per decoder block (${methodText(r)}, measured while pruning)`,
      axis: "decoder block (sum of its linears' losses on the calibration windows)",
      values: linears.map((entries) => entries.reduce((n, [, v]) => n + v!.loss, 0)),
      details: linears.map((entries) => entries.map(([name, v]) => `${name} ${formatLoss(v!.loss)}`).join(', ')),
    };
  }
  if (!r.plan?.statistics?.errors) return undefined;
  try {
    const values = estimatePlan(r.plan).perBlock;
    return {
      title: `Estimated output error per decoder block (error table of the ${ALLOCATION_NAMES[r.plan.allocation]} plan)`,
      axis: "decoder block (squared output error over the dense output's, measured on calibration windows)",
      values,
      details: values.map(() => ''),
    };
  } catch {
    return undefined;
  }
}

/** "SparseGPT + ADMM update": the method, and the update when there was one. */
function methodText(r: PruneRecord): string {
  return `${METHOD_LABELS[r.method]}${r.settings.update ? ` + ${UPDATE_LABELS[r.settings.update]}` : ''}`;
}

/** A row for the method and one for the update, with the settings each reads (none: no row). */
function settingRows(r: PruneRecord): string[] {
  const text: Record<keyof PruneSettings, string> = { blocksize: `blocksize ${r.settings.blocksize}`, percdamp: `dampening ${r.settings.percdamp} x mean diag(H)` };
  const row = (label: string, settings: readonly (keyof PruneSettings)[]): string[] => (settings.length > 0 ? [`| ${label} | ${settings.map((s) => text[s]).join(', ')} |`] : []);
  return [...row(METHOD_LABELS[r.method], methodOf(r.method).settings), ...(r.settings.update ? row(UPDATE_LABELS[r.settings.update], updateOf(r.settings.update).settings) : [])];
}

/** A path as the report shows it: relative to the output folder, so the report reads the same wherever the folder goes. */
function relative(r: PruneRecord, file: string): string {
  const rel = path.relative(r.output, path.resolve(r.output, file));
  return rel === '' ? '.' : rel.split(path.sep).join('/');
}

/** The Markdown report written beside the pruned weights: the same numbers as prunelens.json, and links to `figures` written beside it. */
export function renderReport(r: PruneRecord, figures: readonly string[] = []): string {
  const pct = formatPercent;
  const ppl = (v: number | null): string => (v === null ? 'not evaluated' : formatPerplexity(v));
  const method = METHOD_LABELS[r.method];
  const allocation = ALLOCATION_NAMES[r.plan?.allocation ?? 'uniform'];
  const lines = [
    `# PruneLens report: ${method}${r.nm ? ` ${r.nm}` : ` ${pct(r.sparsity)}, ${allocation}`}`,
    '',
    `Source \`${relative(r, r.source.path)}\` (${r.source.parameters.toLocaleString('en-US')} parameters, ${r.source.dtype}), pruned into this folder on ${r.created}. Paths are relative to this folder.`,
    '',
    '## Settings',
    '',
    '| setting | value |',
    '|---|---|',
    `| method | ${method} |`,
    `| target | ${r.nm ? `${r.nm} (N:M)` : `${pct(r.sparsity)} unstructured`} |`,
    ...(r.nm ? [] : [`| allocation | ${allocation} |`]),
    `| linears | include ${r.settings.include.join(', ') || 'all'}; exclude ${r.settings.exclude.join(', ') || 'none'} |`,
    ...settingRows(r),
    r.calibration
      ? `| calibration | \`${relative(r, r.calibration.file)}\` (${r.calibration.format}, sha256 ${r.calibration.sha256.slice(0, 12)}…), ${r.calibration.nsamples} windows of ${r.calibration.seqlen}, seed ${r.calibration.seed} |`
      : '| calibration | none (magnitude needs no data) |',
    '',
    '## Perplexity',
    '',
  ];
  if (r.evaluation) {
    const ratio = r.perplexity.dense && r.perplexity.pruned ? ` (x${(r.perplexity.pruned / r.perplexity.dense).toFixed(3)})` : '';
    lines.push(
      `\`${relative(r, r.evaluation.file)}\`, WikiText protocol: ${r.evaluation.windows} windows of ${r.evaluation.seqlen} tokens.`,
      '',
      '| model | perplexity |',
      '|---|---|',
      `| dense | ${ppl(r.perplexity.dense)} |`,
      `| pruned | ${ppl(r.perplexity.pruned)}${ratio} |`,
    );
    if (figures.includes(LOSS_HISTOGRAM_FIGURE)) {
      lines.push('', `![Histogram of the change in loss per predicted token, pruned minus dense, in nats](${LOSS_HISTOGRAM_FIGURE})`);
    }
  } else {
    lines.push('Not evaluated.');
  }
  lines.push(
    '',
    '## Sparsity (measured on the written weights)',
    '',
    `Targeted linears: ${pct(r.measured.sparsity)} zeros (${r.measured.zeros.toLocaleString('en-US')} of ${r.measured.targetedParameters.toLocaleString('en-US')}); whole model: ${pct(r.measured.modelSparsity)}.`,
    '',
    ...(figures.includes(SPARSITY_FIGURE) ? [`![Measured sparsity per decoder block, with the plan's ratio marked](${SPARSITY_FIGURE})`, ''] : []),
    ...(figures.includes(ERROR_FIGURE) ? [`![${blockErrors(r)!.title}](${ERROR_FIGURE})`, ''] : []),
    `| layer | ${linearColumns(r).map((c) => c.label).join(' | ')} | block | seconds |`,
    `|---|${linearColumns(r).map(() => '---|').join('')}---|---|`,
  );
  for (const layer of r.layers) {
    const cells = linearColumns(r).map(({ module }) => {
      const entry = Object.entries(r.tensors).find(([name]) => {
        const m = BLOCK_LINEAR.exec(name);
        return m !== null && Number(m[1]) === layer.layer && m[2] === module;
      });
      return entry ? pct(entry[1].sparsity) : '';
    });
    lines.push(`| ${layer.layer} | ${cells.join(' | ')} | ${pct(layer.sparsity)} | ${formatSeconds(layer.seconds)} |`);
  }
  const measured = r.layers.filter((l) => l.linears && Object.keys(l.linears).length > 0);
  if (measured.length > 0) {
    lines.push(
      '',
      '## Per linear: loss, time and memory',
      '',
      "Loss: with calibration, the squared change of the linear's output per calibration window (½ tr(ΔW G ΔWᵀ); Wanda's input norms give its diagonal part); without, ||ΔW||². Memory: the process's resident memory when the linear was done.",
      '',
      '| layer | linear | loss | time | memory |',
      '|---|---|---|---|---|',
      ...measured.flatMap((l) => Object.entries(l.linears!).map(([name, v]) => `| ${l.layer} | ${name} | ${formatLoss(v!.loss)} | ${formatMs(v!.ms)} | ${v!.rssMb.toFixed(0)} MiB |`)),
    );
  }
  lines.push(
    '',
    '## Cost',
    '',
    `Pruning ${formatSeconds(r.seconds.prune)}, whole run ${formatSeconds(r.seconds.total)}, peak resident memory ${r.peakRssMb.toFixed(0)} MiB.`,
    '',
  );
  return lines.join('\n');
}

/*
 * Figures: colours by class, from the viewer's theme where it can be read. Inline in a VS Code webview the
 * --vscode-* variables apply; as an <img> (the Markdown preview, GitHub) they are not visible, so each
 * falls back to a colour for the page's light or dark scheme (prefers-color-scheme), and mid-tones that
 * read on either scheme as the last resort.
 */
const STYLE = [
  '<style>',
  '.ink{fill:var(--vscode-foreground,#6b6b6b)}.axis{stroke:var(--vscode-foreground,#6b6b6b)}',
  '.grid{stroke:var(--vscode-editorWidget-border,#8888884d)}',
  '.bar{fill:var(--vscode-charts-blue,#1a73d9)}.worse{fill:var(--vscode-charts-red,#c72e2e)}.better{fill:var(--vscode-charts-blue,#1a73d9)}',
  '.target{stroke:var(--vscode-charts-red,#c72e2e)}.target-text{fill:var(--vscode-charts-red,#c72e2e)}.err{fill:var(--vscode-charts-orange,#b35c00)}',
  '@media (prefers-color-scheme:dark){.ink{fill:var(--vscode-foreground,#cccccc)}.axis{stroke:var(--vscode-foreground,#cccccc)}',
  '.bar,.better{fill:var(--vscode-charts-blue,#3794ff)}.worse{fill:var(--vscode-charts-red,#f14c4c)}.target{stroke:var(--vscode-charts-red,#f14c4c)}',
  '.target-text{fill:var(--vscode-charts-red,#f14c4c)}.err{fill:var(--vscode-charts-orange,#d18616)}}',
  '</style>',
].join('');
const FONT = 'font-family="sans-serif" font-size="11"';
const TITLE_FONT = 'font-family="sans-serif" font-size="12"';

const escapeXml = (t: string): string => t.replace(/&/g, '&amp;').replace(/</g, '&lt;');

function svg(width: number, height: number, title: string, desc: string, body: string[]): string {
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" role="img">`,
    `<title>${escapeXml(title)}</title>`,
    `<desc>${escapeXml(desc)}</desc>`,
    STYLE,
    ...body,
    '</svg>',
    '',
  ].join('\n');
}

const num = (v: number): string => String(Math.round(v * 10) / 10);

/** Both figures share one size and margins, so they line up in the report. */
const FRAME = { width: 640, height: 240, left: 44, right: 12, top: 28, bottom: 34 };

/** Bars of each block's measured sparsity, a tick at the ratio its plan asked for, and the model-wide target. */
export function sparsitySvg(r: PruneRecord): string {
  const { width, height, left, right, top, bottom } = FRAME;
  const plotH = height - top - bottom;
  const n = Math.max(1, r.layers.length);
  const slot = (width - left - right) / n;
  const y = (v: number): number => top + plotH * (1 - v);
  const body: string[] = [
    `<text x="${left}" y="16" class="ink" ${TITLE_FONT}>Sparsity per decoder block (${METHOD_LABELS[r.method]}${r.nm ? ` ${r.nm}` : ''}, ${ALLOCATION_NAMES[r.plan.allocation]} allocation)</text>`,
  ];
  for (const t of [0, 0.25, 0.5, 0.75, 1]) {
    body.push(`<line x1="${left}" x2="${width - right}" y1="${num(y(t))}" y2="${num(y(t))}" class="grid"/>`);
    body.push(`<text x="${left - 6}" y="${num(y(t) + 4)}" class="ink" ${FONT} text-anchor="end">${Math.round(t * 100)}%</text>`);
  }
  r.layers.forEach((layer, i) => {
    const x = left + i * slot;
    const w = Math.max(1, slot * 0.7);
    const planned = r.plan.blocks[layer.layer]?.sparsity;
    body.push(`<rect x="${num(x + (slot - w) / 2)}" y="${num(y(layer.sparsity))}" width="${num(w)}" height="${num(plotH * layer.sparsity)}" class="bar"><title>block ${layer.layer}: ${(100 * layer.sparsity).toFixed(2)}%</title></rect>`);
    if (planned !== undefined && !r.nm) {
      body.push(`<line x1="${num(x + (slot - w) / 2 - 2)}" x2="${num(x + (slot + w) / 2 + 2)}" y1="${num(y(planned))}" y2="${num(y(planned))}" class="axis" stroke-width="2"/>`);
    }
    if (n <= 40 || i % Math.ceil(n / 40) === 0) body.push(`<text x="${num(x + slot / 2)}" y="${height - bottom + 14}" class="ink" ${FONT} text-anchor="middle">${layer.layer}</text>`);
  });
  body.push(`<line x1="${left}" x2="${width - right}" y1="${num(y(r.sparsity))}" y2="${num(y(r.sparsity))}" class="target" stroke-dasharray="5 3"/>`);
  body.push(`<text x="${width - right}" y="${num(y(r.sparsity) - 4)}" class="target-text" ${FONT} text-anchor="end">target ${(100 * r.sparsity).toFixed(1)}%</text>`);
  body.push(`<text x="${left + (width - left - right) / 2}" y="${height - 4}" class="ink" ${FONT} text-anchor="middle">decoder block (bar: measured; tick: planned)</text>`);
  const desc = `Measured sparsity per block: ${r.layers.map((l) => `${l.layer}: ${(100 * l.sparsity).toFixed(1)}%`).join(', ')}.`;
  return svg(width, height, 'Sparsity per decoder block', desc, body);
}

/** How far the per-token loss moved: a histogram of pruned - dense in nats, with 0 and the mean marked. */
export function lossHistogramSvg(losses: TokenLossPair): string {
  const diffs = Array.from(losses.pruned, (p, i) => p - losses.dense[i]!).filter(Number.isFinite);
  const sorted = [...diffs].sort((a, b) => a - b);
  const quantile = (q: number): number => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0;
  // The bulk of the tokens sets the range; the few beyond it are counted in the end bins.
  const binWidth = 0.25;
  const lo = Math.max(-10, Math.min(-1, Math.floor(quantile(0.005) / binWidth) * binWidth));
  const hi = Math.min(15, Math.max(1, Math.ceil(quantile(0.995) / binWidth) * binWidth));
  const bins = Math.round((hi - lo) / binWidth);
  const counts = new Array<number>(bins).fill(0);
  for (const d of diffs) counts[Math.min(bins - 1, Math.max(0, Math.floor((d - lo) / binWidth)))]! += 1;
  const total = Math.max(1, diffs.length);
  const peak = Math.max(...counts, 1) / total;
  const mean = diffs.reduce((a, b) => a + b, 0) / total;
  const { width, height, left, right, top, bottom } = FRAME;
  const plotW = width - left - right;
  const plotH = height - top - bottom;
  const x = (v: number): number => left + ((v - lo) / (hi - lo)) * plotW;
  const y = (share: number): number => top + plotH * (1 - share / peak);
  const body: string[] = [
    `<text x="${left}" y="16" class="ink" ${TITLE_FONT}>Change in loss per predicted token (pruned - dense), ${diffs.length.toLocaleString('en-US')} tokens</text>`,
  ];
  for (const f of [0, 0.5, 1]) {
    body.push(`<line x1="${left}" x2="${width - right}" y1="${num(y(peak * f))}" y2="${num(y(peak * f))}" class="grid"/>`);
    body.push(`<text x="${left - 6}" y="${num(y(peak * f) + 4)}" class="ink" ${FONT} text-anchor="end">${(100 * peak * f).toFixed(1)}%</text>`);
  }
  counts.forEach((c, i) => {
    const from = lo + i * binWidth;
    const share = c / total;
    body.push(
      `<rect x="${num(x(from) + 0.5)}" y="${num(y(share))}" width="${num(Math.max(0.5, x(from + binWidth) - x(from) - 1))}" height="${num(plotH * (share / peak))}" class="${from + binWidth / 2 < 0 ? 'better' : 'worse'}"/>`,
    );
  });
  const step = hi - lo > 8 ? 2 : 1;
  for (let t = Math.ceil(lo / step) * step; t <= hi + 1e-9; t += step) {
    body.push(`<text x="${num(x(t))}" y="${height - bottom + 14}" class="ink" ${FONT} text-anchor="middle">${t > 0 ? '+' : ''}${t}</text>`);
  }
  body.push(`<line x1="${num(x(0))}" x2="${num(x(0))}" y1="${top}" y2="${top + plotH}" class="axis"/>`);
  body.push(`<line x1="${num(x(mean))}" x2="${num(x(mean))}" y1="${top}" y2="${top + plotH}" class="axis" stroke-dasharray="4 3"/>`);
  body.push(`<text x="${num(x(mean) + 4)}" y="${top + 10}" class="ink" ${FONT}>mean ${mean >= 0 ? '+' : ''}${mean.toFixed(2)} (perplexity x${Math.exp(mean).toFixed(2)})</text>`);
  body.push(`<text x="${left + plotW / 2}" y="${height - 4}" class="ink" ${FONT} text-anchor="middle">nats (blue: more likely after pruning, red: less)</text>`);
  const worse = diffs.filter((d) => d > 0).length / total;
  const desc = `Mean change ${mean.toFixed(3)} nats; ${(100 * worse).toFixed(1)}% of tokens lost probability, ${(100 * (1 - worse)).toFixed(1)}% kept or gained it.`;
  return svg(width, height, 'Change in loss per token', desc, body);
}

/** The per-block error chart: one bar per decoder block (the measured layer loss, or the plan's estimate). */
export function blockErrorSvg(chart: BlockErrors): string {
  const errors = chart.values;
  const { width, height, left, right, top, bottom } = FRAME;
  const plotH = height - top - bottom;
  const n = Math.max(1, errors.length);
  const slot = (width - left - right) / n;
  const peak = Math.max(...errors, 1e-12);
  const y = (v: number): number => top + plotH * (1 - v / peak);
  const body: string[] = [`<text x="${left}" y="16" class="ink" ${TITLE_FONT}>${escapeXml(chart.title)}</text>`];
  for (const f of [0, 0.5, 1]) {
    body.push(`<line x1="${left}" x2="${width - right}" y1="${num(y(peak * f))}" y2="${num(y(peak * f))}" class="grid"/>`);
    body.push(`<text x="${left - 6}" y="${num(y(peak * f) + 4)}" class="ink" ${FONT} text-anchor="end">${formatLoss(peak * f)}</text>`);
  }
  errors.forEach((e, i) => {
    const x = left + i * slot;
    const w = Math.max(1, slot * 0.7);
    const detail = chart.details[i] ? ` (${chart.details[i]})` : '';
    body.push(`<rect x="${num(x + (slot - w) / 2)}" y="${num(y(e))}" width="${num(w)}" height="${num(plotH * (e / peak))}" class="err"><title>block ${i}: ${formatLoss(e)}${escapeXml(detail)}</title></rect>`);
    if (n <= 40 || i % Math.ceil(n / 40) === 0) body.push(`<text x="${num(x + slot / 2)}" y="${height - bottom + 14}" class="ink" ${FONT} text-anchor="middle">${i}</text>`);
  });
  body.push(`<text x="${left + (width - left - right) / 2}" y="${height - 4}" class="ink" ${FONT} text-anchor="middle">${escapeXml(chart.axis)}</text>`);
  const desc = `${chart.title}: ${errors.map((e, i) => `${i}: ${formatLoss(e)}`).join(', ')}.`;
  return svg(width, height, chart.title, desc, body);
}
