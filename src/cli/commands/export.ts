import { exportGguf, type ExportGgufResult } from '../../engine/export/gguf/export-gguf';
import { PruneLensError } from '../../engine/errors';
import { parse, print, singlePositional, table, withProgress, type Command } from '../command';
import { bytes } from '../format';

export const exportModel: Command = {
  usage: 'prunelens export [MODEL] --format gguf [--type f32|f16|bf16|q8_0] [--out FILE] [--overwrite] [--json]',
  async run(args, ctx) {
    const { values, positionals } = parse(args, { format: { type: 'string' }, type: { type: 'string' }, out: { type: 'string' }, overwrite: { type: 'boolean' } });
    if (values.format !== 'gguf') throw new PruneLensError('usage', `--format must be gguf (the one export format besides the Hugging Face folder prune writes); got ${values.format === undefined ? 'none' : `"${values.format}"`}`);
    const options = { model: singlePositional(positionals, 'MODEL'), type: values.type ?? 'f16', out: values.out, overwrite: values.overwrite === true };
    const result = await withProgress(ctx, (control) => exportGguf({ ...options, ...control }));
    print(ctx, exportJson(result), formatExport(result));
  },
};

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
