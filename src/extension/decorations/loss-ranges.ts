/**
 * What the inline perplexity diff draws, computed without VS Code: each token's change in loss
 * (pruned - dense, nats) mapped onto a diverging scale, as character ranges per level.
 */
import type { TokenLosses } from '../../engine/export/token-losses';

export type TokenLossColumns = Pick<TokenLosses, 'starts' | 'ends' | 'dense' | 'pruned'>;

/**
 * Where each level starts, in nats of |pruned - dense|; below the first a token is neutral. Fixed rather
 * than fitted to the run, so a colour means the same in every run, and doubling from level to level:
 * 0.25 nats is a factor of 1.28 in the probability of the token, 4 nats a factor of 55. On the embedded
 * model at Wanda 50% (perplexity 4.65 -> 18.8, median change +1.06 nats) this puts 14% of the tokens in
 * the neutral band and 9% at the top level, and uses every level in between.
 */
export const THRESHOLDS = [0.25, 0.5, 1, 2, 4] as const;
export const LEVELS = THRESHOLDS.length;

/** [start, end) in UTF-16 code units of the evaluation text, as document.positionAt takes them. */
export type Span = readonly [number, number];

/**
 * Tokens placed on the text: sorted by start and never overlapping. Tokens that share characters (a
 * character split over byte tokens) or have no characters of their own are merged with their
 * neighbour, adding their losses: the loss of a run of tokens is the sum of theirs.
 */
export interface LossSegments {
  starts: Int32Array;
  ends: Int32Array;
  dense: Float64Array;
  pruned: Float64Array;
  /** Tokens in each segment. */
  tokens: Int32Array;
}

export interface LossBuckets {
  /** worse[k]: spans at level k + 1 of loss increase (the pruned model is less sure of the text). */
  worse: Span[][];
  /** better[k]: spans at level k + 1 of loss decrease. */
  better: Span[][];
  neutral: Span[];
}

export function lossSegments(losses: TokenLossColumns): LossSegments {
  const n = losses.starts.length;
  const order = Array.from({ length: n }, (_, i) => i);
  // Evaluation windows run through the text in order, so this is almost always sorted already.
  let sorted = true;
  for (let i = 1; i < n && sorted; i++) sorted = losses.starts[i - 1]! <= losses.starts[i]!;
  if (!sorted) order.sort((a, b) => losses.starts[a]! - losses.starts[b]! || losses.ends[a]! - losses.ends[b]!);
  const starts: number[] = [];
  const ends: number[] = [];
  const dense: number[] = [];
  const pruned: number[] = [];
  const tokens: number[] = [];
  for (const i of order) {
    const start = losses.starts[i]!;
    const end = Math.max(start, losses.ends[i]!);
    const last = starts.length - 1;
    const merge =
      last >= 0 && (start < ends[last]! || (start === ends[last]! && (start === end || starts[last] === ends[last])));
    if (merge) {
      ends[last] = Math.max(ends[last]!, end);
      dense[last]! += losses.dense[i]!;
      pruned[last]! += losses.pruned[i]!;
      tokens[last]! += 1;
    } else {
      starts.push(start);
      ends.push(end);
      dense.push(losses.dense[i]!);
      pruned.push(losses.pruned[i]!);
      tokens.push(1);
    }
  }
  // A segment still without characters (an empty text, a lone empty token) cannot be drawn or hovered.
  const keep = starts.map((s, i) => s < ends[i]!);
  const pick = <T extends number>(xs: T[]): T[] => xs.filter((_, i) => keep[i]);
  return {
    starts: Int32Array.from(pick(starts)),
    ends: Int32Array.from(pick(ends)),
    dense: Float64Array.from(pick(dense)),
    pruned: Float64Array.from(pick(pruned)),
    tokens: Int32Array.from(pick(tokens)),
  };
}

/** -LEVELS..LEVELS: positive where pruning raised the loss, 0 inside the neutral band (and for NaN). */
export function levelOf(diff: number): number {
  const size = Math.abs(diff);
  let level = 0;
  while (level < LEVELS && size >= THRESHOLDS[level]!) level++;
  return diff < 0 && level > 0 ? -level : level;
}

/** The segments overlapping [from, to), or all of them, sorted into their levels. */
export function lossBuckets(segments: LossSegments, window?: { from: number; to: number }): LossBuckets {
  const buckets: LossBuckets = { worse: THRESHOLDS.map(() => []), better: THRESHOLDS.map(() => []), neutral: [] };
  const count = segments.starts.length;
  const from = window ? firstEndingAfter(segments, window.from) : 0;
  const to = window?.to ?? Infinity;
  for (let i = from; i < count && segments.starts[i]! < to; i++) {
    const level = levelOf(segments.pruned[i]! - segments.dense[i]!);
    const span: Span = [segments.starts[i]!, segments.ends[i]!];
    if (level > 0) buckets.worse[level - 1]!.push(span);
    else if (level < 0) buckets.better[-level - 1]!.push(span);
    else buckets.neutral.push(span);
  }
  return buckets;
}

/** The segment holding the character at `offset`, if any. */
export function segmentAt(segments: LossSegments, offset: number): number | undefined {
  const i = firstEndingAfter(segments, offset);
  return i < segments.starts.length && segments.starts[i]! <= offset ? i : undefined;
}

/** What the two loss columns are: the dense and the pruned model, or two runs being compared. */
export interface LossLabels {
  before: string;
  after: string;
}

export const DENSE_PRUNED: LossLabels = { before: 'dense', after: 'pruned' };

/**
 * Markdown for a segment's hover: the token's text, both losses, the change, and what they mean as
 * probabilities. `token` is the segment's text, shown quoted with escapes so spaces and newlines read.
 */
export function hoverText(segments: LossSegments, i: number, token?: string, labels: LossLabels = DENSE_PRUNED): string {
  const dense = segments.dense[i]!;
  const pruned = segments.pruned[i]!;
  const diff = pruned - dense;
  const tokens = segments.tokens[i]!;
  // "1 in N" reads well for unlikely tokens; for likely ones the probability says it better.
  const loss = (nats: number): string => `${nats.toFixed(3)} nats (p = ${probability(Math.exp(-nats))}${nats >= Math.LN2 ? `, 1 in ${oneIn(Math.exp(nats))}` : ''})`;
  const ratio = Math.exp(diff);
  const after = labels === DENSE_PRUNED ? 'after pruning' : `in ${labels.after}`;
  const effect =
    levelOf(diff) === 0
      ? 'about the same'
      : diff > 0
        ? `${ratio.toFixed(ratio < 10 ? 2 : 0)}× less likely ${after}`
        : `${(1 / ratio).toFixed(1 / ratio < 10 ? 2 : 0)}× more likely ${after}`;
  return [
    `**PruneLens token loss**${token !== undefined ? ` \`${quoted(token)}\`` : ''}${tokens > 1 ? ` (${tokens} tokens together)` : ''}`,
    '',
    `${labels.before}: ${loss(dense)}  `,
    `${labels.after}: ${loss(pruned)}  `,
    `change: ${diff >= 0 ? '+' : '−'}${Math.abs(diff).toFixed(3)} nats, ${effect} (level ${levelOf(diff)} of ±${LEVELS})`,
  ].join('\n');
}

/** A token's text for an inline code span: escapes shown, backticks (which would end the span) replaced. */
function quoted(text: string): string {
  return JSON.stringify(text.length > 40 ? `${text.slice(0, 40)}…` : text).replace(/`/g, "'");
}

/** Segment indices from the largest rise in loss to the largest fall: the order "next worst token" walks. */
export function worstFirst(segments: LossSegments): Int32Array {
  const order = Int32Array.from({ length: segments.starts.length }, (_, i) => i);
  const diff = (i: number): number => segments.pruned[i]! - segments.dense[i]!;
  return order.sort((a, b) => diff(b) - diff(a) || a - b);
}

/**
 * The legend the evaluation text's virtual document starts with: every level's label, each to be
 * coloured with its level's decoration, so the key is drawn in the theme's own colours; short enough to
 * fit an editor's width, with what the colours mean on the line below.
 */
export function legend(labels: LossLabels = DENSE_PRUNED): { text: string; swatches: { start: number; end: number; level: number }[] } {
  const swatches: { start: number; end: number; level: number }[] = [];
  let text = 'Loss change per token (nats): ';
  for (let level = LEVELS; level >= 1; level--) {
    const label = ` +${THRESHOLDS[level - 1]} `;
    swatches.push({ start: text.length, end: text.length + label.length, level });
    text += `${label} `;
  }
  text += ' ';
  for (let level = 1; level <= LEVELS; level++) {
    // ASCII minus: the editor flags U+2212 as a character easily confused with it.
    const label = ` -${THRESHOLDS[level - 1]} `;
    swatches.push({ start: text.length, end: text.length + label.length, level: -level });
    text += `${label} `;
  }
  const meaning =
    labels === DENSE_PRUNED
      ? 'Red: the pruned model is less sure of the token than the dense one; blue: more sure. Hover a token for both losses.'
      : `${labels.after} minus ${labels.before}. Red: the second run is less sure of the token; blue: more sure. Hover a token for both losses.`;
  return { text: `${text.trimEnd()}\n${meaning}\n\n`, swatches };
}

function probability(p: number): string {
  return p >= 0.001 ? p.toFixed(3) : p.toExponential(1);
}

function oneIn(x: number): string {
  return x < 10 ? x.toFixed(1) : x < 1e6 ? Math.round(x).toLocaleString('en-US') : x.toExponential(1);
}

/** Index of the first segment ending after `offset` (binary search; ends grow with starts). */
function firstEndingAfter(segments: LossSegments, offset: number): number {
  let lo = 0;
  let hi = segments.ends.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (segments.ends[mid]! <= offset) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
