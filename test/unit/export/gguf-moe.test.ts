/**
 * GGUF export of mixture-of-experts models (mixtral as llama.cpp's `llama`, qwen2moe, qwen3moe, olmoe):
 * metadata and stacked expert tensors read back by an independent parser (node-llama-cpp's) and from
 * the file's bytes against the checkpoint's values; routers f32 at every type; what llama.cpp cannot
 * compute refused before any file appears; `prune --structured experts --format hf,gguf`; and each
 * family's dense F32 export scored in llama.cpp as PruneLens scores it. The per-token check of pruned
 * outputs at F32 and F16 is `npm run test:llama` (test/llama/gguf-moe.llama.ts).
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
import { EVAL_TEXT, tempDir } from '../../helpers/fixtures';
import { assertLlamaCppPerplexityAgrees } from '../../helpers/llama-agreement';
import { MOE_CASES } from '../../helpers/moe-configs';
import { writeTinyCheckpoint } from '../../helpers/tiny-checkpoint';

type Info = Awaited<ReturnType<typeof import('node-llama-cpp').readGgufFileInfo>>;

const MOE_FIXTURE = path.resolve('models', 'tinystories-moe-379K');

async function readInfo(file: string): Promise<Info> {
  const { readGgufFileInfo } = await import('node-llama-cpp');
  return readGgufFileInfo(file, { logWarnings: false });
}

function tensorOf(info: Info, name: string): NonNullable<Info['tensorInfo']>[number] {
  const t = info.tensorInfo!.find((x) => x.name === name);
  assert.ok(t, `${name} is in the file`);
  return t;
}

/** An f32 tensor as the file holds it, located by the independent parser's offsets. */
function f32Tensor(file: string, info: Info, name: string): Float32Array {
  const t = tensorOf(info, name);
  assert.equal(t.ggmlType, 0, `${name} is f32`);
  const n = t.dimensions.reduce((a: number, b) => a * Number(b), 1);
  const bytes = Buffer.alloc(n * 4);
  const fd = fs.openSync(file, 'r');
  fs.readSync(fd, bytes, 0, bytes.length, Number(t.fileOffset));
  fs.closeSync(fd);
  return new Float32Array(bytes.buffer, bytes.byteOffset, n);
}

const meta = (info: Info, key: string): unknown => key.split('.').reduce<unknown>((o, k) => (o as Record<string, unknown> | undefined)?.[k], info.metadata);
const dims = (info: Info, name: string): number[] => tensorOf(info, name).dimensions.map(Number);

/** MOE_CASES as llama.cpp's architectures need them (see arch-moe.ts), vocabulary 512 for the fixture tokenizer. */
const CONFIGS: Record<string, Record<string, unknown>> = {
  mixtral: { ...MOE_CASES.mixtral, sliding_window: null, vocab_size: 512 },
  qwen2_moe: { ...MOE_CASES.qwen2_moe, mlp_only_layers: [], vocab_size: 512 },
  qwen3_moe: { ...MOE_CASES.qwen3_moe, vocab_size: 512 },
  olmoe: { ...MOE_CASES.olmoe, num_key_value_heads: 4, tie_word_embeddings: true, vocab_size: 512 },
};

describe('GGUF export of mixture-of-experts models', () => {
  const dir = tempDir();

  async function exported(name: string, cfg: Record<string, unknown>, type = 'f32'): Promise<{ file: string; info: Info; weights: Map<string, Float32Array> }> {
    const folder = path.join(dir, name);
    const weights = await writeTinyCheckpoint(folder, cfg, 7);
    const file = `${folder}-${type}.gguf`;
    await exportGguf({ model: folder, type, out: file });
    return { file, info: await readInfo(file), weights };
  }

  /** Expert j's matrix is the j-th slab of the stacked tensor, for every expert and linear of a layer. */
  function assertStacked(file: string, info: Info, weights: Map<string, Float32Array>, layer: number, experts: number, module: string, names: Record<string, string>): void {
    for (const [linear, hf] of Object.entries(names)) {
      const stacked = f32Tensor(file, info, `blk.${layer}.ffn_${linear}_exps.weight`);
      for (let j = 0; j < experts; j++) {
        const expected = weights.get(`model.layers.${layer}.${module}.experts.${j}.${hf}.weight`)!;
        assert.deepEqual(stacked.subarray(j * expected.length, (j + 1) * expected.length), expected, `layer ${layer} ${linear} expert ${j}`);
      }
    }
  }

  it('mixtral: llama with expert_count / expert_used_count, router as ffn_gate_inp, w1/w3/w2 stacked as gate/up/down', async () => {
    const { file, info, weights } = await exported('mixtral', CONFIGS.mixtral!);
    assert.equal(meta(info, 'general.architecture'), 'llama');
    assert.equal(meta(info, 'llama.expert_count'), 8);
    assert.equal(meta(info, 'llama.expert_used_count'), 2);
    assert.equal(meta(info, 'llama.feed_forward_length'), 48);
    // ggml's dimensions, fastest first: {n_embd, n_ff, n_expert} for gate/up, {n_ff, n_embd, n_expert} for down.
    assert.deepEqual(dims(info, 'blk.1.ffn_gate_exps.weight'), [64, 48, 8]);
    assert.deepEqual(dims(info, 'blk.1.ffn_up_exps.weight'), [64, 48, 8]);
    assert.deepEqual(dims(info, 'blk.1.ffn_down_exps.weight'), [48, 64, 8]);
    assert.deepEqual(dims(info, 'blk.1.ffn_gate_inp.weight'), [64, 8]);
    assert.deepEqual(f32Tensor(file, info, 'blk.1.ffn_gate_inp.weight'), weights.get('model.layers.1.block_sparse_moe.gate.weight'));
    assertStacked(file, info, weights, 1, 8, 'block_sparse_moe', { gate: 'w1', up: 'w3', down: 'w2' });
    assert.equal(info.tensorInfo!.some((t) => /experts|ffn_gate\.weight|ffn_up\.weight/.test(t.name)), false, 'no per-expert or dense MLP tensors');
  });

  it('qwen2_moe: expert and shared-expert widths, the shared expert and its gate, routers f32 in an f16 file', async () => {
    const { file, info, weights } = await exported('qwen2-moe', CONFIGS.qwen2_moe!, 'f16');
    assert.equal(meta(info, 'general.architecture'), 'qwen2moe');
    assert.equal(meta(info, 'qwen2moe.expert_count'), 6);
    assert.equal(meta(info, 'qwen2moe.expert_used_count'), 4);
    assert.equal(meta(info, 'qwen2moe.feed_forward_length'), 96);
    assert.equal(meta(info, 'qwen2moe.expert_feed_forward_length'), 32);
    assert.equal(meta(info, 'qwen2moe.expert_shared_feed_forward_length'), 80);
    assert.deepEqual(dims(info, 'blk.2.ffn_gate_exps.weight'), [64, 32, 6]);
    assert.deepEqual(dims(info, 'blk.2.ffn_down_shexp.weight'), [80, 64]);
    assert.deepEqual(dims(info, 'blk.2.ffn_gate_inp_shexp.weight'), [64, 1]);
    assert.equal(tensorOf(info, 'blk.2.ffn_up_exps.weight').ggmlType, 1, 'experts in f16');
    assert.deepEqual(f32Tensor(file, info, 'blk.2.ffn_gate_inp.weight'), weights.get('model.layers.2.mlp.gate.weight'));
    assert.deepEqual(f32Tensor(file, info, 'blk.2.ffn_gate_inp_shexp.weight'), weights.get('model.layers.2.mlp.shared_expert_gate.weight'));
    assert.equal(tensorOf(info, 'blk.0.attn_q.bias').ggmlType, 0);
  });

  it('qwen3_moe: per-head q/k norms and the expert width; olmoe: tied embeddings written again as output.weight', async () => {
    const qwen3 = await exported('qwen3-moe', CONFIGS.qwen3_moe!);
    assert.equal(meta(qwen3.info, 'general.architecture'), 'qwen3moe');
    assert.equal(meta(qwen3.info, 'qwen3moe.expert_feed_forward_length'), 32);
    assert.equal(meta(qwen3.info, 'qwen3moe.attention.key_length'), 32);
    assert.deepEqual(dims(qwen3.info, 'blk.0.attn_k_norm.weight'), [32]);
    assertStacked(qwen3.file, qwen3.info, qwen3.weights, 0, 8, 'mlp', { gate: 'gate_proj', up: 'up_proj', down: 'down_proj' });

    const olmoe = await exported('olmoe', CONFIGS.olmoe!);
    assert.equal(meta(olmoe.info, 'general.architecture'), 'olmoe');
    assert.deepEqual(dims(olmoe.info, 'blk.0.attn_k_norm.weight'), [64]);
    assert.deepEqual(f32Tensor(olmoe.file, olmoe.info, 'output.weight'), olmoe.weights.get('model.embed_tokens.weight'));
    assertStacked(olmoe.file, olmoe.info, olmoe.weights, 1, 8, 'mlp', { gate: 'gate_proj', up: 'up_proj', down: 'down_proj' });
  });

  it('refuses, before writing anything, what llama.cpp would compute differently, saying why', async () => {
    const cases: [string, Record<string, unknown>, RegExp][] = [
      ['mixtral-window', { ...CONFIGS.mixtral, sliding_window: 16 }, /llama\.cpp's llama has no sliding-window attention/],
      ['qwen2-dense-layer', { ...CONFIGS.qwen2_moe, mlp_only_layers: [1] }, /qwen2moe has a sparse MoE MLP in every layer; layer 1 is dense here/],
      ['qwen2-sparse-step', { ...CONFIGS.qwen2_moe, decoder_sparse_step: 2 }, /layers 0, 2 are dense here \(mlp_only_layers \/ decoder_sparse_step\)/],
      ['qwen2-renormalised', { ...CONFIGS.qwen2_moe, norm_topk_prob: true }, /qwen2moe never renormalises the top-k routing weights; this config has norm_topk_prob true/],
      ['qwen3-not-renormalised', { ...CONFIGS.qwen3_moe, norm_topk_prob: false }, /qwen3moe always renormalises the top-k routing weights to sum 1; this config has norm_topk_prob false/],
      ['qwen3-o-bias', { ...CONFIGS.qwen3_moe, attention_bias: true }, /self_attn\.o_proj\.bias" has no llama\.cpp name for architecture qwen3moe/],
      ['olmoe-gqa', { ...CONFIGS.olmoe, num_key_value_heads: 2 }, /olmoe normalises keys over hidden_size values: num_key_value_heads must equal num_attention_heads \(4\), here 2/],
      ['olmoe-renormalised', { ...CONFIGS.olmoe, norm_topk_prob: true }, /olmoe never renormalises/],
    ];
    for (const [name, cfg, message] of cases) {
      const folder = path.join(dir, name);
      await writeTinyCheckpoint(folder, cfg, 3);
      const out = `${folder}.gguf`;
      await assert.rejects(exportGguf({ model: folder, type: 'f16', out }), (e: PruneLensError) => e instanceof PruneLensError && message.test(e.message), name);
      assert.equal(fs.readdirSync(dir).some((f) => f.startsWith(`${name}.gguf`)), false, `${name}: nothing written`);
    }
  });

  it('prune --structured experts --format hf,gguf writes the smaller folder and its GGUF file with the new expert count; a source llama.cpp cannot run is refused before pruning', async () => {
    const out = path.join(dir, 'moe-reap25');
    const cli = (...args: string[]) => spawnSync(process.execPath, [path.resolve('dist', 'cli.js'), ...args], { encoding: 'utf8' });
    const r = cli('prune', MOE_FIXTURE, '--structured', 'experts', '--ratio', '0.25', '--nsamples', '8', '--max-windows', '1', '--out', out, '--format', 'hf,gguf', '--json');
    assert.equal(r.status, 0, r.stdout + r.stderr);
    const result = JSON.parse(r.stdout) as { out: string; gguf: { out: string; bytes: number; type: string } };
    assert.equal(result.gguf.out, `${out}-f16.gguf`);
    assert.equal(fs.statSync(result.gguf.out).size, result.gguf.bytes);
    const info = await readInfo(result.gguf.out);
    assert.equal(meta(info, 'llama.expert_count'), 6);
    assert.equal(meta(info, 'llama.expert_used_count'), 2);
    assert.deepEqual(dims(info, 'blk.0.ffn_down_exps.weight'), [64, 64, 6]);
    assert.deepEqual(dims(info, 'blk.0.ffn_gate_inp.weight'), [64, 6]);
    assert.match(String(meta(info, 'general.description')), /2 of 8 experts per layer removed by reap, 19\.6% of parameters removed/);

    const source = path.join(dir, 'qwen2-dense-layer-source');
    await writeTinyCheckpoint(source, { ...CONFIGS.qwen2_moe, mlp_only_layers: [1] }, 3);
    const refusedOut = path.join(dir, 'qwen2-dense-layer-pruned');
    const refused = cli('prune', source, '--structured', 'experts', '--ratio', '0.25', '--metric', 'random', '--format', 'hf,gguf', '--out', refusedOut, '--json');
    assert.notEqual(refused.status, 0);
    assert.match(refused.stdout, /qwen2moe has a sparse MoE MLP in every layer; layer 1 is dense here/);
    assert.equal(fs.existsSync(refusedOut), false);
  });

  describe('in llama.cpp', () => {
    let llama: Llama;
    before(async () => {
      llama = await loadLlama();
    });
    after(async () => {
      await llama?.dispose();
    });

    for (const [family, cfg] of Object.entries(CONFIGS)) {
      it(`${family}: llama.cpp's perplexity of the F32 export equals PruneLens's`, async () => {
        await assertLlamaCppPerplexityAgrees(llama, path.join(dir, `llama-${family}`), cfg, EVAL_TEXT);
      });
    }
  });
});
