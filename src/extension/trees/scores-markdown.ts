import type { AlignedScores } from './model-outline';

const LOWEST_CHANNELS = 10;

const score = (v: number): string => v.toExponential(3);
const fixed = (v: number): string => v.toFixed(4);

function quantile(sorted: number[], q: number): number {
  const at = (sorted.length - 1) * q;
  const lo = Math.floor(at);
  return sorted[lo]! + (sorted[Math.min(lo + 1, sorted.length - 1)]! - sorted[lo]!) * (at - lo);
}

/** One layer's importance scores as Markdown, the layer's head highlighted when asked from a head. */
export function scoresMarkdown(modelName: string, aligned: AlignedScores, layer: number, head?: number): string {
  const s = aligned.layers[layer]!;
  const { calibration, densePpl, pplWindows } = aligned.values;
  const groups = s.groups.output.length;
  const perGroup = s.heads.output.length / groups;
  const bold = (text: string, on: boolean): string => (on ? `**${text}**` : text);
  const lines = [
    `# ${modelName}: ${head === undefined ? `layer ${layer}` : `head ${layer}.${head}`}`,
    '',
    `Scores from ${calibration.nsamples} calibration windows of ${calibration.seqlen} tokens of \`${calibration.file}\` (seed ${calibration.seed}).`,
    ...(aligned.measuredOn === 'source'
      ? ['', `Measured on the source model before structured pruning; this layer was its layer ${aligned.sourceLayers[layer]}.`]
      : []),
    '',
    '## Block',
    '',
    '| metric | value |',
    '|---|---|',
    `| block influence (1 - mean cos(input, output)) | ${fixed(s.block.influence)} |`,
    `| attention half | ${fixed(s.block.attentionInfluence)} |`,
    `| MLP half | ${fixed(s.block.mlpInfluence)} |`,
    `| perplexity without this block | ${s.block.pplWithout.toFixed(3)} (dense ${densePpl.toFixed(3)}, ${pplWindows} windows) |`,
    '',
    '## Heads',
    '',
    'Output change: squared change of the block output when the head is removed (higher matters more). Similarity: 1 - the highest mean cosine with another head (low is redundant).',
    '',
    '| head | KV group | output change | similarity |',
    '|---|---|---|---|',
    ...s.heads.output.map((v, h) => {
      const row = [`${layer}.${h}`, String(Math.floor(h / perGroup)), score(v), fixed(s.heads.similarity[h]!)];
      return `| ${row.map((c) => bold(c, h === head)).join(' | ')} |`;
    }),
    '',
    '## Key/value groups',
    '',
    'What structured pruning removes together: a key/value head with every query head that reads it.',
    '',
    '| group | heads | output change | mean similarity |',
    '|---|---|---|---|',
    ...s.groups.output.map((v, g) => `| ${g} | ${g * perGroup}–${(g + 1) * perGroup - 1} | ${score(v)} | ${fixed(s.groups.similarity[g]!)} |`),
    '',
    '## MLP channels',
    '',
    ...(aligned.channelsFromSource ? [`All ${s.channels.flap.length} channels of the source, before channels were cut.`, ''] : []),
    '| metric | min | 25% | median | 75% | max |',
    '|---|---|---|---|---|---|',
    ...([['FLAP fluctuation', s.channels.flap], ['structured Wanda', s.channels.wandaSp]] as const).map(([name, values]) => {
      const sorted = [...values].sort((a, b) => a - b);
      return `| ${name} | ${[0, 0.25, 0.5, 0.75, 1].map((q) => score(quantile(sorted, q))).join(' | ')} |`;
    }),
    '',
    `Lowest ${LOWEST_CHANNELS} channels by FLAP (removed first): ${s.channels.flap
      .map((v, c) => [v, c] as const)
      .sort((a, b) => a[0] - b[0] || a[1] - b[1])
      .slice(0, LOWEST_CHANNELS)
      .map(([v, c]) => `${c} (${score(v)})`)
      .join(', ')}.`,
    '',
  ];
  return lines.join('\n');
}
