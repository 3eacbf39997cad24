/**
 * What works for Llama works for every family: Wanda, SparseGPT, magnitude and N:M pruning, an OWL
 * plan, structured removal of heads and channels, and of layers, each written out, reopened by the
 * engine and re-evaluated to the perplexity the job reported. Structured outputs are also run through
 * the family's float64 reference (written from the Hugging Face modeling code) on the *written*
 * config.json, which shows the config says what the family's own loader needs to read the weights.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { makePlan } from '../../../src/engine/allocate/make-plan';
import { evaluateModel } from '../../../src/engine/evaluate/evaluate-model';
import { Checkpoint } from '../../../src/engine/io/checkpoint';
import { DecoderRunner } from '../../../src/engine/model/decoder-runner';
import { pruneModel } from '../../../src/engine/prune/prune-model';
import type { PruneSpec } from '../../../src/engine/prune/spec';
import { structuredPrune } from '../../../src/engine/structured/structured-prune';
import type { StructuredTarget } from '../../../src/engine/structured/select';
import { loadF32Tensors } from '../../reference/safetensors-minimal';
import { FAMILY_CASES } from '../../helpers/family-configs';
import { EVAL_TEXT, SHARED_DATA, tempDir } from '../../helpers/fixtures';
import { writeTinyCheckpoint } from '../../helpers/tiny-checkpoint';

const calibration = { file: path.join(SHARED_DATA, 'tinystories', 'calibration.txt'), nsamples: 4, seqlen: 32, seed: 0 };
const evaluation = { file: EVAL_TEXT, seqlen: 32, maxWindows: 2 };
const runtime = { provider: 'cpu' as const };

/** One case per family, every feature on; the vocabulary widened to the fixture tokenizer's 512 ids. */
const FAMILIES = [
  'llama rope llama3',
  'qwen3 (biases, yarn, sliding window)',
  'gemma',
  'gemma2',
  'gemma3_text',
  'phi3 (longrope, partial rotary, GQA)',
  'gpt2 (transformer. prefix, exact gelu, 3 layers)',
  'opt (350m: post-norm, project_in/out)',
  'gpt_neox',
];

function spec(method: PruneSpec['method'], extra: Partial<PruneSpec> = {}): PruneSpec {
  return { method, sparsity: 0.5, include: [], exclude: [], blocksize: 128, percdamp: 0.01, ...extra };
}

function target(parts: Partial<StructuredTarget>): StructuredTarget {
  return { heads: false, channels: false, layers: false, ratio: 0.2, seed: 0, ...parts, metrics: { heads: 'output', channels: 'flap', layers: 'bi' } };
}

/** The output reopened by the engine and evaluated again gives the perplexity the job reported. */
async function reopenedPerplexity(out: string): Promise<number> {
  const result = await evaluateModel({ model: out, textFile: EVAL_TEXT, seqlen: evaluation.seqlen, maxWindows: evaluation.maxWindows, runtime });
  return result.ppl;
}

/** Max |engine − float64 reference| over the logits of one sequence, the reference reading the written config.json. */
async function referenceGap(dir: string, reference: (typeof FAMILY_CASES)[string]['reference'], ids: number[]): Promise<number> {
  const config = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
  const tensors = loadF32Tensors(path.join(dir, 'model.safetensors'));
  const expected = reference(config, (n) => tensors.get(n), ids);
  const checkpoint = await Checkpoint.open(dir);
  const runner = await DecoderRunner.create(checkpoint, runtime);
  try {
    const hidden = new Float32Array(ids.length * runner.config.hiddenSize);
    await runner.embed(ids, hidden, ids.length);
    let h: Float32Array = hidden;
    for (let layer = 0; layer < runner.config.numLayers; layer++) [h] = (await runner.block.run(runner.block.feeds(await checkpoint.readBlock(layer), layer), h, 1, ids.length)) as [Float32Array];
    const logits = await runner.logits(h, 1, ids.length);
    let gap = 0;
    for (let i = 0; i < logits.length; i++) gap = Math.max(gap, Math.abs(logits[i]! - expected[i]!));
    return gap;
  } finally {
    await runner.release();
    await checkpoint.close();
  }
}

/** One [out, in] matrix a stored linear holds, read through its layout. */
interface Matrix {
  label: string;
  rows: number;
  cols: number;
  at(r: number, c: number): number;
}

/**
 * The separate matrices of a stored block linear, or none for other tensors: q, k, v of Phi-3's
 * qkv_proj, gate and up of gate_up_proj, q, k, v of GPT-2's c_attn (Conv1D, stored [in, out], split
 * by columns) and of GPT-NeoX's query_key_value ([q_h, k_h, v_h] rows for each head h in turn).
 */
function matrices(name: string, t: { shape: number[]; data: ArrayLike<number> }, cfg: Record<string, number>): Matrix[] {
  if (t.shape.length !== 2 || !/(_proj|c_attn|c_proj|c_fc|fc1|fc2|query_key_value|dense|dense_h_to_4h|dense_4h_to_h)\.weight$/.test(name)) return [];
  const [r0, c0] = t.shape as [number, number];
  const whole = (label: string, rows: number, cols: number, at: (r: number, c: number) => number): Matrix => ({ label, rows, cols, at });
  if (/\.(attn|mlp)\.c_(attn|proj|fc)\.weight$/.test(name)) {
    // Conv1D [in, out]: logical row r is stored column r.
    const parts = name.endsWith('c_attn.weight') ? 3 : 1;
    const width = c0 / parts;
    return Array.from({ length: parts }, (_, p) => whole(`${name} part ${p}`, width, r0, (r, c) => t.data[c * c0 + p * width + r]!));
  }
  if (name.endsWith('query_key_value.weight')) {
    const heads = cfg.num_attention_heads!;
    const hd = r0 / 3 / heads;
    return [0, 1, 2].map((p) => whole(`${name} part ${p}`, heads * hd, c0, (r, c) => t.data[(Math.floor(r / hd) * 3 * hd + p * hd + (r % hd)) * c0 + c]!));
  }
  const ranges: [number, number][] = [[0, r0]];
  const hd = cfg.head_dim ?? cfg.hidden_size! / cfg.num_attention_heads!;
  if (name.endsWith('qkv_proj.weight')) {
    const q = cfg.num_attention_heads! * hd;
    const kv = (cfg.num_key_value_heads ?? cfg.num_attention_heads!) * hd;
    ranges.splice(0, 1, [0, q], [q, q + kv], [q + kv, r0]);
  }
  if (name.endsWith('gate_up_proj.weight')) ranges.splice(0, 1, [0, r0 / 2], [r0 / 2, r0]);
  return ranges.map(([from, to]) => whole(`${name} rows ${from}..${to}`, to - from, c0, (r, c) => t.data[(from + r) * c0 + c]!));
}

function zerosIn(m: Matrix, rowFrom = 0, rowTo = m.rows, colFrom = 0, colTo = m.cols): number {
  let n = 0;
  for (let r = rowFrom; r < rowTo; r++) for (let c = colFrom; c < colTo; c++) if (m.at(r, c) === 0) n++;
  return n;
}

/** Every matrix of every stored block linear of a written model; the test fails if there are none. */
function writtenMatrices(dir: string, cfg: Record<string, number>): Matrix[] {
  const all = [...loadF32Tensors(path.join(dir, 'model.safetensors'))].flatMap(([name, t]) => matrices(name, t, cfg));
  assert.ok(all.length > 0, 'the written model holds block linears');
  return all;
}

const ids = Array.from({ length: 40 }, (_, i) => (i * 37 + 11) % 512);

describe('every feature, for every family', () => {
  for (const family of FAMILIES) {
    const { config: base, reference, renameTensor } = FAMILY_CASES[family]!;
    const config = { ...base, vocab_size: 512 };
    const model = path.join(tempDir(), 'model');
    const ready = writeTinyCheckpoint(model, config, 3, renameTensor);
    const layers = (base.num_hidden_layers ?? base.n_layer) as number;
    const dims = config as Record<string, number>;
    // GPT-2, OPT and GPT-NeoX derive the head size from hidden_size / heads: head removal is refused for them.
    const headsRemovable = !['gpt2', 'opt', 'gpt_neox'].includes(base.model_type as string);

    it(`${family}: magnitude prunes each matrix (of a fused tensor too) at its own threshold`, async () => {
      await ready;
      const out = path.join(tempDir(), 'magnitude');
      await pruneModel({ model, out, spec: spec('magnitude'), runtime });
      for (const m of writtenMatrices(out, dims)) assert.equal(zerosIn(m), Math.floor((m.rows * m.cols) / 2), m.label);
    });

    it(`${family}: Wanda 50% prunes half of every row; reopened, the perplexity is the reported one`, async () => {
      await ready;
      const out = path.join(tempDir(), 'wanda');
      const record = await pruneModel({ model, out, spec: spec('wanda'), calibration, evaluation, runtime });
      assert.equal(record.measured.sparsity, 0.5);
      for (const m of writtenMatrices(out, dims)) for (let r = 0; r < m.rows; r++) assert.equal(zerosIn(m, r, r + 1), Math.floor(m.cols / 2), `${m.label} row ${r}`);
      assert.notEqual(record.perplexity.pruned, record.perplexity.dense);
      assert.equal(await reopenedPerplexity(out), record.perplexity.pruned);
      // Export keeps the family's tensor names (fusion, GPT-2's root and [in, out] layout), shapes and config.json.
      const shapesOf = (dir: string) => [...loadF32Tensors(path.join(dir, 'model.safetensors'))].map(([name, t]) => `${name} [${t.shape.join(', ')}]`).sort();
      assert.deepEqual(shapesOf(out), shapesOf(model));
      assert.deepEqual(JSON.parse(fs.readFileSync(path.join(out, 'config.json'), 'utf8')), config);
      // The report's table has a column per stored linear of the family, each filled for every block.
      const lines = fs.readFileSync(path.join(out, 'prunelens-report.md'), 'utf8').split('\n');
      const header = lines.findIndex((l) => l.startsWith('| layer |'));
      const table = lines.slice(header + 2, header + 2 + layers);
      assert.equal(table.length, layers);
      for (const row of table) {
        const cells = row.split('|').slice(2, -3);
        assert.ok(cells.length >= 4 && cells.every((cell) => /^ 50\.0% $/.test(cell)), row);
      }
    });

    it(`${family}: SparseGPT 50% and 2:4 (Wanda) give the exact counts`, async () => {
      await ready;
      const out = path.join(tempDir(), 'sparsegpt');
      const record = await pruneModel({ model, out, spec: spec('sparsegpt'), calibration, runtime });
      assert.equal(record.measured.sparsity, 0.5);
      // Each matrix of a fused tensor gets its own mask (per 128-column block over its rows).
      for (const m of writtenMatrices(out, dims)) assert.equal(zerosIn(m), (m.rows * m.cols) / 2, m.label);

      const nmOut = path.join(tempDir(), 'nm');
      await pruneModel({ model, out: nmOut, spec: spec('wanda', { nm: { n: 2, m: 4 } }), calibration, runtime });
      // Groups of 4 consecutive inputs of each output row, whatever the stored layout.
      for (const m of writtenMatrices(nmOut, dims)) {
        for (let r = 0; r < m.rows; r++) for (let c = 0; c < m.cols; c += 4) assert.equal(zerosIn(m, r, r + 1, c, c + 4), 2, `${m.label} row ${r} group at ${c}`);
      }
    });

    it(`${family}: an OWL plan keeps every block within the band around the target`, async () => {
      await ready;
      // M = 2: random weights have few scores above 5x their mean, and OWL needs outliers to tell blocks apart.
      const plan = await makePlan({ model, spec: spec('wanda'), allocation: { kind: 'owl', M: 2, lambda: 0.08 }, calibration, runtime });
      assert.equal(plan.blocks.length, layers);
      for (const block of plan.blocks) assert.ok(Math.abs(block.sparsity - 0.5) <= 0.08 + 1e-9, `layer ${block.layer}: ${block.sparsity}`);
      assert.ok(new Set(plan.blocks.map((b) => b.sparsity)).size > 1, 'the blocks get different ratios');
    });

    it(`${family}: structured heads and channels, then layers: the written config reads back and matches the reference`, async () => {
      await ready;
      const out = path.join(tempDir(), 'heads-channels');
      const both = target({ heads: true, channels: true });
      if (!headsRemovable) {
        await assert.rejects(structuredPrune({ model, out, target: both, calibration, evaluation, runtime }), (err: Error & { kind?: string }) => err.kind === 'usage' && /cannot lose attention heads: their config\.json has no head_dim/.test(err.message));
        assert.equal(fs.existsSync(out), false, 'a refused run writes nothing');
      }
      const record = await structuredPrune({ model, out, target: headsRemovable ? both : target({ channels: true }), calibration, evaluation, runtime });
      const channelsBefore = (base.intermediate_size ?? base.ffn_dim ?? base.n_inner) as number;
      assert.ok(record.config.numKvHeads < ((base.num_key_value_heads ?? base.num_attention_heads) as number) || record.config.intermediateSize < channelsBefore);
      assert.equal(await reopenedPerplexity(out), record.perplexity.pruned);
      const sourceNames = new Set(loadF32Tensors(path.join(model, 'model.safetensors')).keys());
      for (const name of loadF32Tensors(path.join(out, 'model.safetensors')).keys()) assert.ok(sourceNames.has(name), `${name} is a name the source uses`);
      const gap = await referenceGap(out, reference, ids);
      assert.ok(gap < 1e-4, `heads+channels output against the float64 reference: ${gap}`);

      const layersOut = path.join(tempDir(), 'layers');
      const removed = await structuredPrune({ model, out: layersOut, target: target({ layers: true }), calibration, evaluation, runtime });
      assert.ok(removed.removed.layers.length >= 1);
      assert.equal(removed.config.numLayers, layers - removed.removed.layers.length);
      assert.equal(await reopenedPerplexity(layersOut), removed.perplexity.pruned);
      const layerGap = await referenceGap(layersOut, reference, ids);
      assert.ok(layerGap < 1e-4, `layer-removed output against the float64 reference: ${layerGap}`);
    });
  }
});
