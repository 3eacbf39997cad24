import type { PruneRecord } from './record';

export const REPORT_FILE = 'prunelens-report.md';

const LINEAR_COLUMNS = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'];

/** The Markdown report written beside the pruned weights: the same numbers as prunelens.json. */
export function renderReport(r: PruneRecord): string {
  const pct = (v: number): string => `${(100 * v).toFixed(2)}%`;
  const ppl = (v: number | null): string => (v === null ? 'not evaluated' : v.toFixed(4));
  const lines = [
    `# PruneLens report: ${r.method}${r.nm ? ` ${r.nm}` : ` ${pct(r.sparsity)}`}`,
    '',
    `Source \`${r.source.path}\` (${r.source.parameters.toLocaleString('en-US')} parameters, ${r.source.dtype}), written to \`${r.output}\` on ${r.created}.`,
    '',
    '## Settings',
    '',
    '| setting | value |',
    '|---|---|',
    `| method | ${r.method} |`,
    `| target | ${r.nm ? `${r.nm} (N:M)` : `${pct(r.sparsity)} unstructured`} |`,
    `| linears | include ${r.settings.include.join(', ') || 'all'}; exclude ${r.settings.exclude.join(', ') || 'none'} |`,
    ...(r.method === 'sparsegpt' ? [`| SparseGPT | blocksize ${r.settings.blocksize}, dampening ${r.settings.percdamp} x mean diag(H) |`] : []),
    r.calibration
      ? `| calibration | \`${r.calibration.file}\` (${r.calibration.format}, sha256 ${r.calibration.sha256.slice(0, 12)}…), ${r.calibration.nsamples} windows of ${r.calibration.seqlen}, seed ${r.calibration.seed} |`
      : '| calibration | none (magnitude needs no data) |',
    '',
    '## Perplexity',
    '',
  ];
  if (r.evaluation) {
    const ratio = r.perplexity.dense && r.perplexity.pruned ? ` (x${(r.perplexity.pruned / r.perplexity.dense).toFixed(3)})` : '';
    lines.push(
      `\`${r.evaluation.file}\`, WikiText protocol: ${r.evaluation.windows} windows of ${r.evaluation.seqlen} tokens.`,
      '',
      '| model | perplexity |',
      '|---|---|',
      `| dense | ${ppl(r.perplexity.dense)} |`,
      `| pruned | ${ppl(r.perplexity.pruned)}${ratio} |`,
    );
  } else {
    lines.push('Not evaluated.');
  }
  lines.push(
    '',
    '## Sparsity (measured on the written weights)',
    '',
    `Targeted linears: ${pct(r.measured.sparsity)} zeros (${r.measured.zeros.toLocaleString('en-US')} of ${r.measured.targetedParameters.toLocaleString('en-US')}); whole model: ${pct(r.measured.modelSparsity)}.`,
    '',
    `| layer | ${LINEAR_COLUMNS.join(' | ')} | block | seconds |`,
    `|---|${LINEAR_COLUMNS.map(() => '---|').join('')}---|---|`,
  );
  for (const layer of r.layers) {
    const cells = LINEAR_COLUMNS.map((linear) => {
      const entry = Object.entries(r.tensors).find(([name]) => name.startsWith(`model.layers.${layer.layer}.`) && name.endsWith(`.${linear}.weight`));
      return entry ? pct(entry[1].sparsity) : '';
    });
    lines.push(`| ${layer.layer} | ${cells.join(' | ')} | ${pct(layer.sparsity)} | ${layer.seconds.toFixed(2)} |`);
  }
  lines.push(
    '',
    '## Cost',
    '',
    `Pruning ${r.seconds.prune.toFixed(1)} s, whole run ${r.seconds.total.toFixed(1)} s, peak resident memory ${r.peakRssMb.toFixed(0)} MiB.`,
    '',
  );
  return lines.join('\n');
}
