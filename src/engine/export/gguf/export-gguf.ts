/**
 * Writes a checkpoint (dense or pruned, any family in GGUF_ARCHITECTURES) as one GGUF file for
 * llama.cpp and the tools built on it. Everything that could refuse the job (type, architecture,
 * tensor names, tokenizer, destination) is checked before the first byte is written; tensors then
 * stream one at a time from the checkpoint into their slots, and the file appears under its name only
 * when complete.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { version as PRUNELENS_VERSION } from '../../../../package.json';
import { PruneLensError } from '../../errors';
import { Checkpoint } from '../../io/checkpoint';
import type { ModelConfig } from '../../model/config';
import { throwIfCancelled, type RunControl } from '../../progress';
import { RECORD_FILE } from '../output-folder';
import { architectureMetadata, GGUF_ARCHITECTURES, GGUF_MODEL_TYPES, ggufTensors, interleaveRopeRows, type GgufArchitecture, type GgufTensorSource } from './architectures';
import { encodeGgml, FILE_TYPE_ID, GGUF_TYPES, isGgufType, Q8_0_BLOCK, type GgufType } from './ggml-types';
import { GgufWriter, type GgufTensorSpec, type GgufValue } from './gguf-writer';
import { tokenizerMetadata } from './tokenizer-metadata';

/** llama.cpp's router tensors, which convert_hf_to_gguf.py writes in f32 whatever the type asked. */
const ALWAYS_F32 = /\.ffn_gate_inp(_shexp)?\.weight$/;

export interface ExportGgufOptions extends RunControl {
  model: string;
  /** f32, f16, bf16 or q8_0 for the matrices; norms and biases stay f32 as llama.cpp expects. */
  type: string;
  /** Default: beside the model folder, `<folder>-<type>.gguf`. */
  out?: string;
  /** Replace an existing GGUF file at `out` (never any other file). */
  overwrite?: boolean;
}

export interface ExportGgufResult {
  out: string;
  type: GgufType;
  architecture: string;
  tensors: number;
  bytes: number;
  /** Matrices kept at f16 because q8_0 needs rows that are a multiple of 32 long (as convert_hf_to_gguf.py does). */
  fallbackToF16: string[];
  seconds: number;
}

export async function exportGguf(options: ExportGgufOptions): Promise<ExportGgufResult> {
  const started = performance.now();
  const type = options.type;
  if (!isGgufType(type)) throw new PruneLensError('usage', `--type must be one of ${GGUF_TYPES.join(', ')}; got "${type}"`);
  const checkpoint = await Checkpoint.open(options.model);
  try {
    const cfg = checkpoint.config;
    const { arch, scaling, tensors } = ggufMapping(cfg, checkpoint.dir);
    const out = path.resolve(options.out ?? `${checkpoint.dir}-${type}.gguf`);
    await checkDestination(checkpoint.dir, out, options.overwrite === true);

    const extra = scaling.tensors ?? [];
    const fallbackToF16: string[] = [];
    const specs: (GgufTensorSpec & { sources: string[]; convert?: (values: Float32Array) => Float32Array })[] = tensors.map(({ name, shape, sources }) => {
      const relayout = sources.length === 1 ? arch.relayout?.(cfg, sources[0]!, shape) : undefined;
      if (relayout) shape = relayout.shape;
      // Routers stay f32 at every type, as convert_hf_to_gguf.py keeps them.
      let tensorType: GgufType = shape.length === 1 || ALWAYS_F32.test(name) ? 'f32' : type;
      if (tensorType === 'q8_0' && shape[shape.length - 1]! % Q8_0_BLOCK !== 0) {
        tensorType = 'f16';
        fallbackToF16.push(sources[0]!);
      }
      return { name, shape, type: tensorType, sources, convert: relayout?.convert };
    });
    const table: GgufTensorSpec[] = [...specs, ...extra.map((t) => ({ name: t.name, shape: [t.values.length], type: 'f32' as const }))];

    const metadata = new Map<string, GgufValue>([
      ...architectureMetadata(arch, cfg),
      ...(scaling.metadata ?? []),
      ['general.type', { type: 'string', value: 'model' }],
      ['general.name', { type: 'string', value: path.basename(checkpoint.dir) }],
      ['general.file_type', { type: 'u32', value: FILE_TYPE_ID[type] }],
      ...(type === 'q8_0' ? [['general.quantization_version', { type: 'u32', value: 2 }] as [string, GgufValue]] : []),
      ...(await provenance(checkpoint.dir)),
      ...(await tokenizerMetadata({ dir: checkpoint.dir, config: cfg.raw, vocabSize: cfg.vocabSize })),
    ]);

    const writer = await GgufWriter.create(out, metadata, table);
    // One checkpoint tensor in memory at a time: a stacked expert tensor is written expert by expert.
    async function* encoded(spec: (typeof specs)[number]): AsyncGenerator<Uint8Array> {
      for (const source of spec.sources) {
        throwIfCancelled(options.signal);
        let values = await checkpoint.readF32(source);
        if (spec.convert) values = spec.convert(values);
        if (arch.interleavedRope && /\.self_attn\.[qk]_proj\.(weight|bias)$/.test(source)) {
          const heads = source.includes('.q_proj.') ? cfg.numHeads : cfg.numKvHeads;
          values = interleaveRopeRows(values, heads, cfg.headDim);
        }
        if (arch.convert) values = arch.convert(cfg, source, values);
        yield encodeGgml(spec.type, values);
      }
    }
    try {
      for (const [i, spec] of specs.entries()) {
        await writer.writeTensor(spec.name, encoded(spec));
        options.onProgress?.({ type: 'stage', stage: 'export gguf', done: i + 1, total: specs.length, detail: spec.name });
      }
      for (const t of extra) await writer.writeTensor(t.name, encodeGgml('f32', t.values));
      throwIfCancelled(options.signal);
      await writer.commit();
    } catch (err) {
      await writer.abort();
      throw err;
    }
    return { out, type, architecture: arch.name, tensors: table.length, bytes: writer.totalBytes, fallbackToF16, seconds: (performance.now() - started) / 1000 };
  } finally {
    await checkpoint.close();
  }
}

/**
 * The llama.cpp architecture a checkpoint maps onto and what its rope_scaling adds, or the refusal:
 * a family without one, a feature its architecture cannot compute, a tensor without a name there.
 */
function ggufMapping(cfg: ModelConfig, dir: string): { arch: GgufArchitecture; scaling: ReturnType<typeof ropeScaling>; tensors: GgufTensorSource[] } {
  const where = path.join(dir, 'config.json');
  const arch = GGUF_ARCHITECTURES[cfg.modelType];
  if (!arch) throw new PruneLensError('architecture', `model_type "${cfg.modelType}" cannot be exported to GGUF yet; supported: ${GGUF_MODEL_TYPES.join(', ')}`, where);
  arch.check?.(cfg, where);
  const scaling = ropeScaling(arch, cfg, where);
  const { tensors, unnamed } = ggufTensors(arch, cfg);
  if (unnamed.length > 0) throw new PruneLensError('architecture', `tensor "${unnamed[0]}" has no llama.cpp name for architecture ${arch.name}`, dir);
  return { arch, scaling, tensors };
}

/**
 * For `prune --format hf,gguf`: refuses, before the prune, a source whose family, features or
 * tensors cannot be written to GGUF (its pruned output keeps them), and, when the prune removes
 * heads, a family whose llama.cpp architecture cannot take fewer (structured pruning removes whole
 * KV groups, so the check runs on the source with one group less).
 */
export async function checkGgufExportable(model: string, removesHeads: boolean): Promise<void> {
  const checkpoint = await Checkpoint.open(model);
  try {
    const cfg = checkpoint.config;
    const { arch } = ggufMapping(cfg, checkpoint.dir);
    if (removesHeads && cfg.numKvHeads > 1) {
      const group = cfg.numHeads / cfg.numKvHeads;
      arch.check?.({ ...cfg, numHeads: cfg.numHeads - group, numKvHeads: cfg.numKvHeads - 1 }, path.join(checkpoint.dir, 'config.json'));
    }
  } finally {
    await checkpoint.close();
  }
}

/** What a config's rope_scaling adds to the file in llama.cpp; a rope_scaling this family cannot carry is refused. */
function ropeScaling(arch: GgufArchitecture, cfg: ModelConfig, where: string): ReturnType<NonNullable<GgufArchitecture['ropeScaling']>[string]> {
  const scaling = cfg.raw.rope_scaling;
  if (scaling === undefined || scaling === null) return {};
  const ropeType = String((scaling as Record<string, unknown>).rope_type ?? (scaling as Record<string, unknown>).type);
  const make = arch.ropeScaling?.[ropeType];
  if (!make) {
    const supported = Object.entries(GGUF_ARCHITECTURES).flatMap(([modelType, a]) => Object.keys(a.ropeScaling ?? {}).map((t) => `${t} (${modelType})`));
    throw new PruneLensError('architecture', `rope_scaling of type "${ropeType}" cannot be written to GGUF for ${cfg.modelType}; supported: ${supported.join(', ')}`, where);
  }
  return make(cfg, where);
}

async function checkDestination(source: string, out: string, overwrite: boolean): Promise<void> {
  const relative = path.relative(source, out);
  if (!relative.startsWith('..') && !path.isAbsolute(relative)) {
    throw new PruneLensError('output', 'the GGUF file must not be written inside the source checkpoint; the source is never modified', out);
  }
  const existing = await fs.open(out, 'r').catch(() => undefined);
  if (!existing) return;
  const magic = Buffer.alloc(4);
  await existing.read(magic, 0, 4, 0).finally(() => existing.close());
  const isGguf = magic.toString('latin1') === 'GGUF';
  if (!overwrite || !isGguf) {
    throw new PruneLensError('output', isGguf ? 'already exists; pass --overwrite to replace it, or choose another file' : 'already exists and is not a GGUF file; choose another file', out);
  }
}

/** general.* keys saying where the weights came from and what PruneLens did to them (from prunelens.json). */
async function provenance(dir: string): Promise<[string, GgufValue][]> {
  const entries: [string, GgufValue][] = [['general.prunelens.version', { type: 'string', value: PRUNELENS_VERSION }]];
  const text = await fs.readFile(path.join(dir, RECORD_FILE), 'utf8').catch(() => undefined);
  if (text === undefined) return entries;
  let record: Record<string, unknown>;
  try {
    record = JSON.parse(text) as Record<string, unknown>;
  } catch (err) {
    throw new PruneLensError('checkpoint', `invalid JSON: ${(err as Error).message}`, path.join(dir, RECORD_FILE));
  }
  const source = (record.source as { path?: unknown } | undefined)?.path;
  if (typeof source === 'string') {
    entries.push(['general.base_model.count', { type: 'u32', value: 1 }], ['general.base_model.0.name', { type: 'string', value: path.basename(source) }]);
  }
  const structured = record.kind === 'structured';
  const method = structured ? 'structured' : record.method;
  const sparsity = structured
    ? (record.parameters as { removedFraction?: unknown } | undefined)?.removedFraction
    : (record.measured as { sparsity?: unknown } | undefined)?.sparsity;
  if (typeof method === 'string') entries.push(['general.prunelens.method', { type: 'string', value: method }]);
  if (typeof sparsity === 'number') entries.push(['general.prunelens.sparsity', { type: 'f32', value: sparsity }]);
  if (typeof method === 'string' && typeof sparsity === 'number') {
    const experts = record.experts as { count?: unknown; countBefore?: unknown; target?: { metric?: unknown } } | undefined;
    const removedExperts = experts && typeof experts.count === 'number' && typeof experts.countBefore === 'number' ? `${experts.countBefore - experts.count} of ${experts.countBefore} experts per layer removed by ${String(experts.target?.metric)}, ` : '';
    const what = structured ? `${removedExperts}${(sparsity * 100).toFixed(1)}% of parameters removed (structured)` : `${method}, ${(sparsity * 100).toFixed(1)}% of linear weights zero`;
    entries.push(['general.description', { type: 'string', value: `Pruned with PruneLens ${PRUNELENS_VERSION}: ${what}` }]);
  }
  return entries;
}
