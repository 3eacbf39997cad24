/**
 * GGUF export of qwen3, gemma, gemma2, gemma3 and phi3: the metadata and tensors llama.cpp reads, read
 * back by an independent parser (node-llama-cpp's) and from the file's bytes against the checkpoint's
 * values; what llama.cpp cannot compute refused before any file appears; and each family's dense F32
 * export scored in llama.cpp as PruneLens scores it. The per-token check of pruned and structured
 * outputs at F32 and F16 is `npm run test:llama` (test/llama/gguf-families.llama.ts).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Llama } from 'node-llama-cpp';
import { PruneLensError } from '../../../src/engine/errors';
import { exportGguf } from '../../../src/engine/export/gguf/export-gguf';
import { loadLlama } from '../../../src/engine/llamacpp/llama-client';
import { FAMILY_CASES } from '../../helpers/family-configs';
import { EVAL_TEXT, tempDir } from '../../helpers/fixtures';
import { assertLlamaCppPerplexityAgrees } from '../../helpers/llama-agreement';
import { writeTinyCheckpoint } from '../../helpers/tiny-checkpoint';

type Info = Awaited<ReturnType<typeof import('node-llama-cpp').readGgufFileInfo>>;

async function readInfo(file: string): Promise<Info> {
  const { readGgufFileInfo } = await import('node-llama-cpp');
  return readGgufFileInfo(file, { logWarnings: false });
}

/** An f32 tensor as the file holds it, located by the independent parser's offsets. */
function f32Tensor(file: string, info: Info, name: string): Float32Array {
  const t = info.tensorInfo!.find((x) => x.name === name);
  assert.ok(t, `${name} is in the file`);
  assert.equal(t.ggmlType, 0, `${name} is f32`);
  const n = t.dimensions.reduce((a: number, b) => a * Number(b), 1);
  const bytes = Buffer.alloc(n * 4);
  const fd = fs.openSync(file, 'r');
  fs.readSync(fd, bytes, 0, bytes.length, Number(t.fileOffset));
  fs.closeSync(fd);
  return new Float32Array(bytes.buffer, bytes.byteOffset, n);
}

function close(actual: ArrayLike<number>, expected: ArrayLike<number>, what: string): void {
  assert.equal(actual.length, expected.length, what);
  for (let i = 0; i < actual.length; i++) assert.ok(Math.abs(actual[i]! - expected[i]!) <= 1e-6 * Math.max(1, Math.abs(expected[i]!)), `${what}[${i}]: ${actual[i]} vs ${expected[i]}`);
}

const meta = (info: Info, key: string): unknown => key.split('.').reduce<unknown>((o, k) => (o as Record<string, unknown> | undefined)?.[k], info.metadata);

const config = (name: string, extra: Record<string, unknown> = {}) => ({ ...FAMILY_CASES[name]!.config, vocab_size: 512, ...extra });

describe('GGUF export of the families beyond Llama', () => {
  const dir = tempDir();

  async function exported(name: string, cfg: Record<string, unknown>): Promise<{ file: string; info: Info; weights: Map<string, Float32Array> }> {
    const folder = path.join(dir, name);
    const weights = await writeTinyCheckpoint(folder, cfg, 7);
    const file = `${folder}.gguf`;
    await exportGguf({ model: folder, type: 'f32', out: file });
    return { file, info: await readInfo(file), weights };
  }

  it('gemma2: sandwich norms as 1 + w, query_pre_attn_scalar folded into q, soft caps, window and its period', async () => {
    const { file, info, weights } = await exported('gemma2', config('gemma2'));
    assert.equal(meta(info, 'general.architecture'), 'gemma2');
    assert.equal(meta(info, 'gemma2.attention.sliding_window'), 16);
    assert.equal(meta(info, 'gemma2.attention.sliding_window_pattern'), 2); // layers 0 and 2 local, 1 global
    assert.equal(meta(info, 'gemma2.attn_logit_softcapping'), 2);
    assert.equal(meta(info, 'gemma2.final_logit_softcapping'), 3);
    assert.equal(meta(info, 'gemma2.attention.key_length'), 32);
    const plusOne = (name: string) => weights.get(name)!.map((w) => w + 1);
    close(f32Tensor(file, info, 'blk.1.attn_norm.weight'), plusOne('model.layers.1.input_layernorm.weight'), 'attn_norm');
    close(f32Tensor(file, info, 'blk.1.post_attention_norm.weight'), plusOne('model.layers.1.post_attention_layernorm.weight'), 'post_attention_norm');
    close(f32Tensor(file, info, 'blk.1.ffn_norm.weight'), plusOne('model.layers.1.pre_feedforward_layernorm.weight'), 'ffn_norm');
    close(f32Tensor(file, info, 'blk.1.post_ffw_norm.weight'), plusOne('model.layers.1.post_feedforward_layernorm.weight'), 'post_ffw_norm');
    close(f32Tensor(file, info, 'output_norm.weight'), plusOne('model.norm.weight'), 'output_norm');
    // llama.cpp scales queries by 1/√32; the config asks for 1/√24.
    close(f32Tensor(file, info, 'blk.0.attn_q.weight'), weights.get('model.layers.0.self_attn.q_proj.weight')!.map((w) => w * Math.sqrt(32 / 24)), 'attn_q');
    close(f32Tensor(file, info, 'blk.0.attn_k.weight'), weights.get('model.layers.0.self_attn.k_proj.weight')!, 'attn_k');
    assert.equal(info.tensorInfo!.some((t) => t.name === 'output.weight'), false);
  });

  it('gemma3: q/k norms (the query scale folded into q_norm), local rope base, linear scaling of global layers, period 6', async () => {
    const { file, info, weights } = await exported('gemma3', config('gemma3_text', { attn_logit_softcapping: null }));
    assert.equal(meta(info, 'general.architecture'), 'gemma3');
    assert.equal(meta(info, 'gemma3.rope.freq_base'), 1000000);
    assert.equal(meta(info, 'gemma3.rope.freq_base_swa'), 10000);
    assert.equal(meta(info, 'gemma3.rope.scaling.type'), 'linear');
    assert.equal(meta(info, 'gemma3.rope.scaling.factor'), 8);
    assert.equal(meta(info, 'gemma3.attention.sliding_window_pattern'), 6);
    assert.equal(meta(info, 'gemma3.final_logit_softcapping'), 3);
    assert.equal(meta(info, 'gemma3.attn_logit_softcapping'), undefined);
    close(f32Tensor(file, info, 'blk.5.attn_q_norm.weight'), weights.get('model.layers.5.self_attn.q_norm.weight')!.map((w) => (w + 1) * Math.sqrt(32 / 24)), 'attn_q_norm');
    close(f32Tensor(file, info, 'blk.5.attn_k_norm.weight'), weights.get('model.layers.5.self_attn.k_norm.weight')!.map((w) => w + 1), 'attn_k_norm');
    close(f32Tensor(file, info, 'blk.5.attn_q.weight'), weights.get('model.layers.5.self_attn.q_proj.weight')!, 'attn_q');
  });

  it('phi3: fused projections kept fused, partial rotary width, longrope factors as tensors with their attention factor', async () => {
    const { file, info, weights } = await exported('phi3', config('phi3 (longrope, partial rotary, GQA)'));
    assert.equal(meta(info, 'general.architecture'), 'phi3');
    assert.equal(meta(info, 'phi3.rope.dimension_count'), 12); // head_dim 16 × 0.75
    assert.equal(meta(info, 'phi3.rope.scaling.original_context_length'), 64);
    assert.equal(meta(info, 'phi3.attention.sliding_window'), 0);
    const attn = meta(info, 'phi3.rope.scaling.attn_factor') as number;
    assert.ok(Math.abs(attn - Math.sqrt(1 + Math.log(1024 / 64) / Math.log(64))) < 1e-6, `attn_factor ${attn}`);
    close(f32Tensor(file, info, 'rope_factors_long.weight'), [1, 1.5, 3, 6, 12, 24], 'rope_factors_long');
    close(f32Tensor(file, info, 'rope_factors_short.weight'), [1, 1.02, 1.1, 1.3, 1.7, 2.2], 'rope_factors_short');
    close(f32Tensor(file, info, 'blk.1.attn_qkv.weight'), weights.get('model.layers.1.self_attn.qkv_proj.weight')!, 'attn_qkv');
    const tensors = new Map(info.tensorInfo!.map((t) => [t.name, t.dimensions.map(Number)]));
    assert.deepEqual(tensors.get('blk.1.attn_qkv.weight'), [64, 64 + 2 * 2 * 16]);
    assert.deepEqual(tensors.get('blk.1.ffn_up.weight'), [64, 2 * 96]);
  });

  it('qwen3: q/k norms as they are, YaRN as llama.cpp reads it', async () => {
    const cfg = config('qwen3 (biases, yarn, sliding window)', { use_sliding_window: false, attention_bias: false });
    const { file, info, weights } = await exported('qwen3', cfg);
    assert.equal(meta(info, 'general.architecture'), 'qwen3');
    assert.equal(meta(info, 'qwen3.rope.scaling.type'), 'yarn');
    assert.equal(meta(info, 'qwen3.rope.scaling.factor'), 4);
    assert.equal(meta(info, 'qwen3.rope.scaling.original_context_length'), 128);
    assert.equal(meta(info, 'qwen3.attention.key_length'), 32);
    close(f32Tensor(file, info, 'blk.2.attn_q_norm.weight'), weights.get('model.layers.2.self_attn.q_norm.weight')!, 'attn_q_norm');
  });

  it('refuses, before writing anything, what llama.cpp would compute differently, saying why', async () => {
    const cases: [string, Record<string, unknown>, RegExp][] = [
      ['qwen3-sliding', config('qwen3 (biases, yarn, sliding window)', { attention_bias: false }), /qwen3 has no sliding-window attention/],
      ['qwen3-o-bias', config('qwen3 (biases, yarn, sliding window)', { use_sliding_window: false }), /self_attn\.o_proj\.bias" has no llama\.cpp name for architecture qwen3/],
      ['gemma-untied', config('gemma', { tie_word_embeddings: false }), /gemma takes the output head from the embeddings/],
      ['gemma2-no-cap', config('gemma2', { attn_logit_softcapping: null }), /gemma2 always applies attn_logit_softcapping and final_logit_softcapping/],
      ['gemma2-irregular', config('gemma2', { layer_types: ['full_attention', 'sliding_attention', 'full_attention'] }), /follow none/],
      ['gemma2-scaled', config('gemma2', { rope_scaling: { rope_type: 'linear', factor: 2 } }), /rope_scaling of type "linear" cannot be written to GGUF for gemma2; supported: llama3 \(llama\), yarn \(qwen3\), linear \(gemma3_text\), longrope \(phi3\), su \(phi3\)/],
      ['gemma3-attn-cap', config('gemma3_text'), /gemma3 has no attention-logit soft cap/],
      ['phi3-heads', config('phi3', { head_dim: 8 }), /phi3 sizes attention by hidden_size: heads × head_dim must equal 64, here 4 × 8/],
    ];
    for (const [name, cfg, message] of cases) {
      const folder = path.join(dir, name);
      await writeTinyCheckpoint(folder, cfg, 3);
      const out = `${folder}.gguf`;
      await assert.rejects(exportGguf({ model: folder, type: 'f16', out }), (e: PruneLensError) => e instanceof PruneLensError && message.test(e.message), name);
      assert.equal(fs.readdirSync(dir).some((f) => f.startsWith(`${name}.gguf`)), false, `${name}: nothing written`);
    }
  });

  it('prune --format hf,gguf refuses such a source before pruning', async () => {
    const folder = path.join(dir, 'qwen3-sliding-source');
    await writeTinyCheckpoint(folder, config('qwen3 (biases, yarn, sliding window)', { attention_bias: false }), 3);
    const out = path.join(dir, 'qwen3-sliding-pruned');
    const r = spawnSync(process.execPath, [path.resolve('dist', 'cli.js'), 'prune', folder, '--method', 'magnitude', '--format', 'hf,gguf', '--out', out, '--json'], { encoding: 'utf8' });
    assert.notEqual(r.status, 0);
    assert.match(r.stdout, /qwen3 has no sliding-window attention/);
    assert.equal(fs.existsSync(out), false);

    // phi3 takes fewer heads nowhere in llama.cpp: a structured prune of heads is refused up front, of channels not.
    const phi3 = path.join(dir, 'phi-source');
    await writeTinyCheckpoint(phi3, config('phi3 (longrope, partial rotary, GQA)'), 3);
    const heads = spawnSync(process.execPath, [path.resolve('dist', 'cli.js'), 'prune', phi3, '--structured', 'heads', '--ratio', '0.1', '--format', 'hf,gguf', '--out', out, '--json'], { encoding: 'utf8' });
    assert.notEqual(heads.status, 0);
    assert.match(heads.stdout, /phi3 sizes attention by hidden_size: heads × head_dim must equal 64, here 2 × 16/);
    assert.equal(fs.existsSync(out), false);
  });

  describe('in llama.cpp', () => {
    let llama: Llama;
    before(async () => {
      llama = await loadLlama();
    });
    after(async () => {
      await llama?.dispose();
    });

    const FAMILIES: Record<string, Record<string, unknown>> = {
      qwen3: config('qwen3 (biases, yarn, sliding window)', { use_sliding_window: false, attention_bias: false }),
      gemma: config('gemma'),
      gemma2: config('gemma2'),
      gemma3: config('gemma3_text', { attn_logit_softcapping: null, rope_local_base_freq: 20000 }),
      phi3: config('phi3 (longrope, partial rotary, GQA)'),
    };
    for (const [family, cfg] of Object.entries(FAMILIES)) {
      it(`${family}: llama.cpp's perplexity of the F32 export equals PruneLens's`, async () => {
        // Not "phi3": llama.cpp gives a model of that general.name Phi-3's special tokens, which the fixture vocabulary lacks.
        const folder = path.join(dir, `llama-${family.replace('phi3', 'phi')}`);
        await assertLlamaCppPerplexityAgrees(llama, folder, cfg, EVAL_TEXT);
      });
    }
  });
});
