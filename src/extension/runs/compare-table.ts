/**
 * Runs side by side as Markdown tables (what "Compare Runs" previews): perplexity, sparsity overall and
 * per block, size on disk and time, and what a measured GGUF export saved in llama.cpp. No `vscode` import, so it is tested under plain Node.
 */
import * as path from 'node:path';
import { ALLOCATION_NAMES, formatMiB, formatPercent, formatPerplexity, formatSeconds, METHOD_LABELS } from '../../engine/display';
import type { GgufSavings } from '../../engine/llamacpp/gguf-savings';
import { isStructuredRecord, runDate, runLabel, type OutputRecord } from './output-record';

export interface ComparedRun {
  folder: string;
  record: OutputRecord;
  /** Bytes of every file in the output folder. */
  bytes: number;
}

const cell = (text: string): string => text.replace(/\|/g, '\\|').replace(/\n/g, ' ');

export function compareTable(runs: readonly ComparedRun[]): string {
  const names = runs.map((r, i) => `${i + 1}. ${path.basename(r.folder)}`);
  const row = (label: string, values: string[]): string => `| ${label} | ${values.map(cell).join(' | ')} |`;
  const header = [`| | ${names.map(cell).join(' | ')} |`, `|---|${runs.map(() => '---:|').join('')}`];
  const of = (f: (r: ComparedRun) => string): string[] => runs.map(f);
  const lines = [
    '# PruneLens: runs compared',
    '',
    ...header,
    row('run', of((r) => runLabel(r.record))),
    row('method', of((r) => (isStructuredRecord(r.record) ? 'structured' : METHOD_LABELS[r.record.method]))),
    row('allocation', of((r) => (isStructuredRecord(r.record) ? '–' : r.record.nm ? `${r.record.nm} (N:M)` : ALLOCATION_NAMES[r.record.plan?.allocation ?? 'uniform']))),
    row('perplexity, dense', of((r) => formatPerplexity(r.record.perplexity.dense))),
    row('perplexity, pruned', of((r) => formatPerplexity(r.record.perplexity.pruned))),
    row('evaluated on', of((r) => (r.record.evaluation ? `${path.basename(r.record.evaluation.file)}, ${r.record.evaluation.windows} × ${r.record.evaluation.seqlen}` : 'not evaluated'))),
    row('sparsity (pruned linears)', of((r) => (isStructuredRecord(r.record) ? '–' : formatPercent(r.record.measured.sparsity)))),
    row('parameters removed or zero', of((r) => formatPercent(isStructuredRecord(r.record) ? r.record.parameters.removedFraction : r.record.measured.modelSparsity))),
    row('size on disk', of((r) => formatMiB(r.bytes))),
    row('time', of((r) => formatSeconds(r.record.seconds.total))),
    row('made', of((r) => runDate(r.record))),
    '',
  ];
  const blocks = Math.max(0, ...runs.map((r) => (isStructuredRecord(r.record) ? 0 : r.record.layers.length)));
  if (blocks > 0) {
    lines.push('## Sparsity per decoder block', '', ...header);
    for (let b = 0; b < blocks; b++) {
      lines.push(row(`block ${b}`, of((r) => (isStructuredRecord(r.record) ? '–' : r.record.layers[b] ? formatPercent(r.record.layers[b]!.sparsity) : '–'))));
    }
    lines.push('');
  }
  const measured = runs.filter((r) => r.record.gguf?.savings);
  if (measured.length > 0) {
    // Dense → pruned, each measured in llama.cpp on the same machine in one sitting (export-run-gguf.ts).
    const gguf = (f: (s: GgufSavings) => string): string[] => of((r) => (r.record.gguf?.savings ? f(r.record.gguf.savings) : 'not measured'));
    const pair = (of: (side: GgufSavings['dense']) => number, show: (v: number) => string) => (s: GgufSavings): string => `${show(of(s.dense))} → ${show(of(s.pruned))}`;
    lines.push(
      '## In llama.cpp (GGUF, dense → pruned)',
      '',
      ...header,
      row('GGUF type', gguf((s) => s.type)),
      row('file size', gguf(pair((x) => x.bytes, formatMiB))),
      row('memory added by loading', gguf(pair((x) => x.loadMiB * 2 ** 20, formatMiB))),
      row('prompt tokens/s', gguf(pair((x) => x.promptTokensPerSecond, (v) => v.toFixed(0)))),
      row('generation tokens/s', gguf(pair((x) => x.generateTokensPerSecond, (v) => v.toFixed(1)))),
      row('measured with', gguf((s) => s.runtime)),
      '',
    );
  }
  const structured = runs.filter((r) => isStructuredRecord(r.record));
  if (structured.length > 0) {
    lines.push('Structured runs remove whole heads, channels or blocks, so they have no per-block sparsity; their removed share of all parameters is above.', '');
  }
  lines.push(...runs.map((r, i) => `${i + 1}. \`${r.folder}\``), '');
  return lines.join('\n');
}
