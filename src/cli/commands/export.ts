import { exportGguf, type ExportGgufResult } from '../../engine/export/gguf/export-gguf';
import { savingsTable } from '../../engine/llamacpp/gguf-savings';
import { exportRunGguf } from '../../engine/llamacpp/export-run-gguf';
import { PruneLensError } from '../../engine/errors';
import { defineCommand, print, singlePositional, table, withProgress, type CliContext } from '../command';
import { bytes } from '../format';

export const exportModel = defineCommand({
  synopsis: ['[MODEL] --format gguf [--type f32|f16|bf16|q8_0] [--out FILE] [--overwrite] [--measure [--text FILE]] [--json]'],
  summary: 'Export a checkpoint (dense or pruned) as a GGUF file for llama.cpp, Ollama and LM Studio.',
  details: `The file is written under a temporary name and renamed into place when complete. Types: f32,
f16 and bf16 keep every weight (pruned zeros included); q8_0 quantises 2-D weights whose rows are a
multiple of 32 and keeps the rest at f16. --measure (MODEL a PruneLens run, llama.cpp's optional
node-llama-cpp installed) also exports the dense model the run came from into the cache and measures
both in llama.cpp: file size, memory added by loading, prompt and generation tokens/s; the savings go
into the run's prunelens.json and report.`,
  options: {
    format: { type: 'string', arg: 'gguf', help: 'the export format (gguf)' },
    type: { type: 'string', arg: 'f32|f16|bf16|q8_0', default: 'f16', help: 'the tensor type written' },
    out: { type: 'string', arg: 'FILE', defaultText: 'beside the model, <folder>-<type>.gguf', help: 'the GGUF file' },
    overwrite: { type: 'boolean', help: 'replace an earlier file at --out' },
    measure: { type: 'boolean', help: 'measure dense and pruned in llama.cpp and record the savings in the run' },
    text: { type: 'string', arg: 'FILE', defaultText: 'the bundled evaluation text', help: 'text whose tokens make the timed prompt (--measure)' },
  },
  async run({ values, positionals }, ctx) {
    if (values.format !== 'gguf') throw new PruneLensError('usage', `--format must be gguf (the one export format besides the Hugging Face folder prune writes); got ${values.format === undefined ? 'none' : `"${values.format}"`}`);
    if (values.text !== undefined && !values.measure) throw new PruneLensError('usage', '--text is the prompt text of --measure; add --measure or drop --text');
    const options = { model: singlePositional(positionals, 'MODEL'), type: values.type, out: values.out, overwrite: values.overwrite, measure: values.measure, textFile: values.text };
    const { export: result, savings } = await withProgress(ctx, (control) => exportRunGguf({ ...options, ...control }));
    print(ctx, { ...exportJson(result), ...(savings ? { savings } : {}) }, formatExport(result) + (savings ? `\n\n${savingsTable(savings).join('\n')}\n(${savings.runtime})` : ''));
  },
});

function exportJson(r: ExportGgufResult): Record<string, unknown> {
  return { out: r.out, format: 'gguf', type: r.type, architecture: r.architecture, tensors: r.tensors, bytes: r.bytes, fallback_to_f16: r.fallbackToF16, seconds: r.seconds };
}

function formatExport(r: ExportGgufResult): string {
  return table([
    ['wrote', r.out],
    ['format', `GGUF v3, ${r.type} (architecture ${r.architecture})`],
    ['tensors', `${r.tensors}${r.fallbackToF16.length > 0 ? `, ${r.fallbackToF16.length} kept at f16 (rows not a multiple of 32)` : ''}`],
    ['size', bytes(r.bytes)],
    ['time', `${r.seconds.toFixed(2)} s`],
  ]);
}

/**
 * `prune --format hf,gguf`: the formats a prune writes, checked before any work. The Hugging Face
 * folder is always written (the GGUF file is made from it); gguf adds `<folder>-f16.gguf` beside it,
 * replacing an earlier GGUF file there only with --overwrite.
 */
export function pruneFormats(value: string | undefined, overwrite: boolean | undefined): { gguf: boolean; overwrite: boolean } {
  const formats = (value ?? 'hf').split(',').map((f) => f.trim());
  const unknown = formats.filter((f) => f !== 'hf' && f !== 'gguf');
  if (unknown.length > 0 || !formats.includes('hf')) throw new PruneLensError('usage', `--format takes hf or hf,gguf; got "${value}"`);
  return { gguf: formats.includes('gguf'), overwrite: overwrite === true };
}

/** After a prune: the GGUF export of its output when asked for, as extra `--json` fields and a line for people. */
export async function exportAfterPrune(formats: ReturnType<typeof pruneFormats>, folder: string, ctx: CliContext): Promise<{ json: Record<string, unknown>; human: string }> {
  if (!formats.gguf) return { json: {}, human: '' };
  const r = await withProgress(ctx, (control) => exportGguf({ model: folder, type: 'f16', out: `${folder}-f16.gguf`, overwrite: formats.overwrite, ...control }));
  return { json: { gguf: exportJson(r) }, human: `\n${table([['gguf', `${r.out} (${bytes(r.bytes)}, f16)`]])}` };
}
