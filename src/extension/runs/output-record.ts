import * as path from 'node:path';
import { readOptionalJson } from '../read-json';
import { PruneLensError } from '../../engine/errors';
import { RECORD_FILE } from '../../engine/export/output-folder';
import { ALLOCATION_NAMES, formatPercent, formatPerplexity, METHOD_LABELS } from '../../engine/display';
import type { PruneRecord } from '../../engine/export/record';
import type { GgufExportNote } from '../../engine/llamacpp/export-run-gguf';
import type { StructuredRecord } from '../../engine/structured/structured-prune';
import type { ExpertRemoval } from '../../engine/experts/expert-prune';
import { formatExpertList } from '../../engine/experts/expert-list';

/** What a PruneLens output's prunelens.json holds: an unstructured or a structured run, and its measured GGUF export if one was made. */
export type OutputRecord = (PruneRecord | StructuredRecord) & { gguf?: GgufExportNote };

export function isStructuredRecord(record: OutputRecord): record is StructuredRecord {
  return 'kind' in record && record.kind === 'structured';
}

/** A folder's prunelens.json, or undefined when it has none (not a PruneLens output). */
export async function readOutputRecord(folder: string): Promise<OutputRecord | undefined> {
  const file = path.join(folder, RECORD_FILE);
  const raw = await readOptionalJson(file);
  if (raw === undefined) return undefined;
  const r = raw as Partial<PruneRecord> | null;
  if (r?.format !== 'prunelens.record' || r.version !== 1 || typeof r.created !== 'string' || typeof r.perplexity !== 'object' || r.perplexity === null) {
    throw new PruneLensError('output', 'not a PruneLens record (format "prunelens.record", version 1)', file);
  }
  return raw as OutputRecord;
}

const percent = formatPercent;

/** "removed 0.e3, 1.e2", "removed 9 named experts (3 masked)": a person's list, named while short. */
function expertListLabel(e: ExpertRemoval): string {
  const named = Object.values(e.explicit!.experts).reduce((n, m) => n + m.length, 0);
  const masked = Object.values(e.masked).reduce((n, m) => n + m.length, 0);
  const what = named <= 3 ? formatExpertList(e.explicit!.experts).replaceAll(',', ', ') : `${named} named experts`;
  return `removed ${what}${masked > 0 ? ` (${masked} masked)` : ''}`;
}
const perplexity = formatPerplexity;

/** "Wanda 50.0% uniform", "Wanda 70.0% OWL", "SparseGPT 2:4", "heads, channels 20.0%", "removed 3.h2, L4": method, amount, allocation. */
export function runLabel(record: OutputRecord): string {
  if (isStructuredRecord(record)) {
    if (record.experts?.target) return `experts ${percent(record.experts.target.ratio)} by ${record.experts.target.metric}`;
    if (record.experts) return expertListLabel(record.experts);
    if (record.target) {
      const t = record.target;
      return `${[t.heads && 'heads', t.channels && 'channels', t.layers && 'layers'].filter(Boolean).join(', ')} ${percent(t.ratio)}`;
    }
    const removed = [...(record.explicit?.heads.map(([l, h]) => `${l}.h${h}`) ?? []), ...(record.explicit?.layers.map((l) => `L${l}`) ?? [])];
    return `removed ${removed.join(', ')}`;
  }
  // Records written before sparsity allocation existed carry no plan; they were uniform.
  const allocation = record.plan?.allocation ?? 'uniform';
  return `${METHOD_LABELS[record.method]} ${record.nm ?? percent(record.sparsity)}${record.nm ? '' : ` ${ALLOCATION_NAMES[allocation]}`}`;
}

/** "27 Nov 08:12": when a run was made, in the user's time zone, short enough for a tree row. */
export function runDate(record: OutputRecord): string {
  const d = new Date(record.created);
  if (Number.isNaN(d.getTime())) return record.created;
  const pad = (n: number): string => String(n).padStart(2, '0');
  const month = d.toLocaleString('en-US', { month: 'short' });
  return `${d.getDate()} ${month} ${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

/** "ppl 4.648 → 18.84", what the Runs view and the finish message show. */
export function runPerplexity(record: OutputRecord): string {
  const { dense, pruned } = record.perplexity;
  return dense === null && pruned === null ? 'not evaluated' : `ppl ${perplexity(dense)} → ${perplexity(pruned)}`;
}

export function runTooltip(record: OutputRecord): string {
  const lines = [record.output, `created ${record.created}`, `source ${record.source.path}`];
  if (isStructuredRecord(record)) {
    lines.push(`parameters ${record.parameters.before.toLocaleString('en-US')} → ${record.parameters.after.toLocaleString('en-US')} (${percent(record.parameters.removedFraction)} removed)`);
  } else {
    lines.push(`sparsity ${percent(record.measured.sparsity)} of the pruned linears, ${percent(record.measured.modelSparsity)} of all parameters`);
  }
  if (record.evaluation) lines.push(`perplexity on ${record.evaluation.file}, ${record.evaluation.windows} windows of ${record.evaluation.seqlen}`);
  return lines.join('\n');
}
