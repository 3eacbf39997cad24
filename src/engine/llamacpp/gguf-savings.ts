/**
 * What structured pruning saves where people run models, measured in llama.cpp: the dense and the
 * pruned GGUF file's size, the resident memory loading each adds, and prompt and generation tokens/s.
 * Dense and pruned alternate, best of ROUNDS each, so a busy spell on a shared machine hits both alike.
 * Each measurement loads its model afresh in this process (llama.cpp maps the file and unmaps it on
 * dispose), so the load figure is the memory that model added, not what the process held before.
 */
import { promises as fs } from 'node:fs';
import type { GgufType } from '../export/gguf/ggml-types';
import { throwIfCancelled, type RunControl } from '../progress';
import type { Llama } from 'node-llama-cpp';
import { bestSpeed, llamaRuntime, llamaSpeed, type LlamaSpeed } from './llama-client';

const ROUNDS = 2;
const PROMPT_TOKENS = 128;
const GENERATE_TOKENS = 32;

export interface GgufSide extends LlamaSpeed {
  file: string;
  bytes: number;
}

export interface GgufSavings {
  type: GgufType;
  measured: string;
  /** What ran the models (llamaRuntime). */
  runtime: string;
  promptTokens: number;
  generateTokens: number;
  dense: GgufSide;
  pruned: GgufSide;
}

export async function measureSavings(llama: Llama, files: { dense: string; pruned: string }, type: GgufType, text: string, control: RunControl = {}): Promise<GgufSavings> {
  const sides = ['dense', 'pruned'] as const;
  const best: Partial<Record<(typeof sides)[number], LlamaSpeed>> = {};
  for (let round = 0; round < ROUNDS; round++) {
    for (const [i, side] of sides.entries()) {
      throwIfCancelled(control.signal);
      const m = await llamaSpeed(llama, files[side], { text, promptTokens: PROMPT_TOKENS, generateTokens: GENERATE_TOKENS, repeats: 1, signal: control.signal });
      const b = best[side];
      best[side] = b ? bestSpeed(b, m) : m;
      control.onProgress?.({ type: 'stage', stage: 'measure in llama.cpp', done: round * sides.length + i + 1, total: ROUNDS * sides.length, detail: side });
    }
  }
  const side = async (s: (typeof sides)[number]): Promise<GgufSide> => ({ file: files[s], bytes: (await fs.stat(files[s])).size, ...best[s]! });
  return {
    type,
    measured: new Date().toISOString(),
    runtime: await llamaRuntime(llama),
    promptTokens: PROMPT_TOKENS,
    generateTokens: GENERATE_TOKENS,
    dense: await side('dense'),
    pruned: await side('pruned'),
  };
}

const mib = (bytes: number): string => `${(bytes / 2 ** 20).toFixed(1)} MiB`;
const change = (dense: number, pruned: number): string => `${pruned >= dense ? '+' : '−'}${Math.abs(100 * (pruned / dense - 1)).toFixed(0)}%`;

/** The savings as Markdown rows (a table with dense, pruned and the change), for the report and the runs comparison. */
export function savingsTable(s: GgufSavings): string[] {
  const rows: [string, (x: GgufSide) => number, (v: number) => string][] = [
    ['GGUF file', (x) => x.bytes, mib],
    ['memory added by loading', (x) => x.loadMiB * 2 ** 20, mib],
    [`prompt tokens/s (${s.promptTokens} tokens)`, (x) => x.promptTokensPerSecond, (v) => v.toFixed(0)],
    [`generation tokens/s (${s.generateTokens} tokens)`, (x) => x.generateTokensPerSecond, (v) => v.toFixed(1)],
  ];
  return [
    '| in llama.cpp | dense | pruned | change |',
    '|---|---:|---:|---:|',
    ...rows.map(([label, of, show]) => `| ${label} | ${show(of(s.dense))} | ${show(of(s.pruned))} | ${change(of(s.dense), of(s.pruned))} |`),
  ];
}

/** The report's section on the GGUF export and its savings; replaced, not repeated, by a later export. */
export function savingsSection(s: GgufSavings, out: string): string[] {
  return [
    SAVINGS_HEADING,
    '',
    `Exported to \`${out}\` (${s.type}) and measured with ${s.runtime} on ${s.measured}, dense and pruned alternating, best of ${ROUNDS}.`,
    '',
    ...savingsTable(s),
    '',
  ];
}

export const SAVINGS_HEADING = '## In llama.cpp (GGUF)';

