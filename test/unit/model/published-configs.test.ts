/**
 * The published config.json of real checkpoints (test/fixtures/configs/, written from their public
 * values) open and describe with the parameter counts their model cards give. The weights are a
 * sparse safetensors file: a real header with every tensor at its real shape and offsets, and a hole
 * where the data would be, so `info`'s whole path (header validation against the config included)
 * runs at full size without gigabytes on disk.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { Checkpoint } from '../../../src/engine/io/checkpoint';
import { expectedTensorShapes, parseModelConfig } from '../../../src/engine/model/config';
import { embeddingScale } from '../../../src/engine/model/decoder-runner';
import { describeModel } from '../../../src/engine/model/describe';
import { attentionScaling } from '../../../src/engine/model/families/rope';
import { FULL_DEPTH, MODEL_SHAPES } from '../../../scripts/model-shapes';
import { tempDir } from '../../helpers/fixtures';

const CONFIGS = path.resolve('test', 'fixtures', 'configs');

/** Parameter counts as their model cards and safetensors indexes give them. */
const PUBLISHED: Record<string, number> = {
  'Llama-3.2-1B': 1_235_814_400,
  'Llama-3.1-8B': 8_030_261_248,
  'Qwen3-0.6B': 596_049_920,
  'Qwen3-8B': 8_190_735_360,
  // The safetensors indexes' total_size / 2: 61,064,245,248 and 93,405,585,408 bytes of bf16.
  'Qwen3-30B-A3B': 30_532_122_624,
  'Mixtral-8x7B-v0.1': 46_702_792_704,
  'Gemma-2-2B': 2_614_341_888,
  'Gemma-3-1B': 999_885_952,
  'Phi-3-mini-4k-instruct': 3_821_079_552,
  'Phi-4-mini-instruct': 3_836_021_760,
  // 50257·768 + 1024·768 (wpe) + 12 blocks of 7,087,872 + ln_f 1536; the head is tied to wte.
  'GPT-2': 124_439_808,
  // 50272·768 + 2050·768 (positions, offset 2) + 12 × 7,087,872 + the final LayerNorm; tied head.
  'OPT-125m': 125_239_296,
  // Pythia's model card: 162,322,944 in total, 85,056,000 outside embed_in and embed_out (50304·768 each).
  'Pythia-160m': 162_322_944,
};

/** Per-block buffers the published checkpoints carry beside the weights (causal-mask caches, rotary tables). */
const BUFFERS: Record<string, Record<string, number[]>> = {
  'GPT-2': { 'h.0.attn.bias': [1, 1, 1024, 1024] },
  'Pythia-160m': { 'gpt_neox.layers.0.attention.bias': [1, 1, 2048, 2048], 'gpt_neox.layers.0.attention.masked_bias': [], 'gpt_neox.layers.0.attention.rotary_emb.inv_freq': [8] },
};

function readConfig(name: string): Record<string, unknown> {
  return JSON.parse(fs.readFileSync(path.join(CONFIGS, `${name}.json`), 'utf8')) as Record<string, unknown>;
}

/** A checkpoint folder whose model.safetensors has a full header and a sparse hole for the data. */
function sparseCheckpoint(config: Record<string, unknown>, buffers: Record<string, number[]> = {}): string {
  const dir = path.join(tempDir(), 'model');
  fs.mkdirSync(dir);
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(config));
  const header: Record<string, unknown> = { __metadata__: { format: 'pt' } };
  let offset = 0;
  for (const [name, shape] of [...expectedTensorShapes(parseModelConfig(config, dir)), ...Object.entries(buffers)]) {
    const bytes = shape.reduce((a, b) => a * b, 1) * 2;
    header[name] = { dtype: 'BF16', shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (json.length % 8)) % 8);
  const file = path.join(dir, 'model.safetensors');
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(BigInt(json.length));
  fs.writeFileSync(file, Buffer.concat([prefix, Buffer.from(json)]));
  fs.truncateSync(file, 8 + json.length + offset);
  return dir;
}

describe('published configs', () => {
  for (const [name, parameters] of Object.entries(PUBLISHED)) {
    it(`${name}: opens and describes with ${parameters} parameters`, async () => {
      const checkpoint = await Checkpoint.open(sparseCheckpoint(readConfig(name), BUFFERS[name]));
      try {
        const summary = describeModel(checkpoint);
        assert.equal(summary.parameters, parameters);
        assert.equal(summary.dtype, 'BF16');
      } finally {
        await checkpoint.close();
      }
    });
  }

  it('reads each family feature from the real fields', () => {
    const llama = parseModelConfig(readConfig('Llama-3.2-1B'), 'Llama-3.2-1B');
    assert.deepEqual(llama.arch.layers[0]!.rope, { type: 'llama3', theta: 500000, factor: 32, lowFreqFactor: 1, highFreqFactor: 4, originalMax: 8192 });
    assert.equal(llama.tieWordEmbeddings, true);

    const qwen = parseModelConfig(readConfig('Qwen3-0.6B'), 'Qwen3-0.6B');
    assert.equal(qwen.headDim, 128);
    assert.equal(qwen.arch.qkNorm, true);
    assert.ok(qwen.arch.layers.every((l) => l.window === undefined), 'use_sliding_window is false');

    // Gemma 2: even layers local (window 4096), odd ones global; caps 50 and 30; scale 256^-½.
    const gemma2 = parseModelConfig(readConfig('Gemma-2-2B'), 'Gemma-2-2B');
    assert.deepEqual(gemma2.arch.layers.slice(0, 3).map((l) => l.window), [4096, undefined, 4096]);
    assert.equal(gemma2.arch.attnSoftcap, 50);
    assert.equal(gemma2.arch.finalSoftcap, 30);
    assert.equal(gemma2.arch.queryScale, 1 / 16);
    assert.equal(gemma2.tieWordEmbeddings, true, 'Gemma2Config ties by default');
    assert.equal(embeddingScale(gemma2, 'F32'), 48);
    // Fields left out take Gemma2Config's defaults; null switches a cap off.
    const bare = readConfig('Gemma-2-2B');
    for (const key of ['attn_logit_softcapping', 'final_logit_softcapping', 'sliding_window', 'query_pre_attn_scalar']) delete bare[key];
    const defaults = parseModelConfig(bare, 'bare Gemma 2').arch;
    assert.deepEqual([defaults.attnSoftcap, defaults.finalSoftcap, defaults.layers[0]!.window, defaults.queryScale], [50, 30, 4096, 1 / 16]);
    assert.equal(parseModelConfig({ ...bare, final_logit_softcapping: null }, 'no final cap').arch.finalSoftcap, undefined);

    // Gemma 3: five local layers (window 512, base 10000) then a global one (base 1e6).
    const gemma3 = parseModelConfig(readConfig('Gemma-3-1B'), 'Gemma-3-1B');
    assert.deepEqual(gemma3.arch.layers.slice(0, 7).map((l) => l.window), [512, 512, 512, 512, 512, undefined, 512]);
    assert.deepEqual(gemma3.arch.layers[0]!.rope, { type: 'default', theta: 10000 });
    assert.deepEqual(gemma3.arch.layers[5]!.rope, { type: 'default', theta: 1000000 });
    // √1152 = 33.94 is 34 in bfloat16, the factor transformers multiplies a bf16 model's embeddings by.
    assert.equal(embeddingScale(gemma3, 'BF16'), 34);
    assert.equal(embeddingScale(gemma3, 'F32'), Math.fround(Math.sqrt(1152)));

    const phi3 = parseModelConfig(readConfig('Phi-3-mini-4k-instruct'), 'Phi-3-mini-4k');
    assert.equal(phi3.arch.fused, true);
    assert.ok(phi3.arch.layers.every((l) => l.window === 2047));
    assert.deepEqual(expectedTensorShapes(phi3).get('model.layers.0.self_attn.qkv_proj.weight'), [9216, 3072]);
    assert.deepEqual(expectedTensorShapes(phi3).get('model.layers.0.mlp.gate_up_proj.weight'), [16384, 3072]);

    const phi4 = parseModelConfig(readConfig('Phi-4-mini-instruct'), 'Phi-4-mini');
    assert.equal(phi4.arch.rotaryDim, 96);
    assert.equal(attentionScaling(phi4.arch.layers[0]!.rope), Math.sqrt(1 + Math.log(32) / Math.log(4096)));
    assert.deepEqual(expectedTensorShapes(phi4).get('model.layers.0.self_attn.qkv_proj.weight'), [5120, 3072]);

    // GPT-2: n_inner null is 4 × n_embd; Conv1D c_attn stored [in, out]; learned positions; gelu_new; tied.
    const gpt2 = parseModelConfig(readConfig('GPT-2'), 'GPT-2');
    assert.deepEqual([gpt2.hiddenSize, gpt2.numHeads, gpt2.numLayers, gpt2.intermediateSize, gpt2.maxPositionEmbeddings], [768, 12, 12, 3072, 1024]);
    assert.deepEqual([gpt2.arch.activation, gpt2.arch.gated, gpt2.arch.norm, gpt2.arch.positionOffset, gpt2.arch.rotaryDim, gpt2.tieWordEmbeddings], ['gelu_tanh', false, 'layer', 0, 0, true]);
    assert.deepEqual(expectedTensorShapes(gpt2).get('h.0.attn.c_attn.weight'), [768, 2304]);
    assert.deepEqual(expectedTensorShapes(gpt2).get('h.0.mlp.c_proj.weight'), [3072, 768]);
    assert.equal(gpt2.rmsNormEps, 1e-5);

    // OPT-125m: ReLU, positions offset 2, pre-norm with a final LayerNorm, no projection.
    const opt = parseModelConfig(readConfig('OPT-125m'), 'OPT-125m');
    assert.deepEqual([opt.intermediateSize, opt.arch.activation, opt.arch.positionOffset, opt.arch.residual, opt.arch.finalNorm, opt.arch.projection], [3072, 'relu', 2, 'pre', true, undefined]);
    assert.deepEqual(expectedTensorShapes(opt).get('model.decoder.embed_positions.weight'), [2050, 768]);
    // OPT-350m's published differences: embeddings 512 wide projected to 1024, post-norm, no final LayerNorm.
    const opt350 = parseModelConfig({ ...readConfig('OPT-125m'), hidden_size: 1024, ffn_dim: 4096, num_hidden_layers: 24, num_attention_heads: 16, word_embed_proj_dim: 512, do_layer_norm_before: false }, 'OPT-350m');
    assert.deepEqual([opt350.arch.projection, opt350.arch.residual, opt350.arch.finalNorm], [512, 'post', false]);
    assert.deepEqual(expectedTensorShapes(opt350).get('model.decoder.project_in.weight'), [1024, 512]);
    assert.equal(expectedTensorShapes(opt350).has('model.decoder.final_layer_norm.weight'), false);
    // 50272·512 + 2050·1024 + two 1024×512 projections + 24 blocks of 12,596,224 = 331,196,416 (OPT-350m's 331M).
    assert.equal([...expectedTensorShapes(opt350).values()].reduce((n, s) => n + s.reduce((a, b) => a * b, 1), 0), 331_196_416);

    // Pythia-160m: head size 64, rotary on 16 dimensions, parallel residual, exact GELU, untied embed_out.
    const pythia = parseModelConfig(readConfig('Pythia-160m'), 'Pythia-160m');
    assert.deepEqual([pythia.headDim, pythia.arch.rotaryDim, pythia.arch.residual, pythia.arch.activation, pythia.tieWordEmbeddings], [64, 16, 'parallel', 'gelu', false]);
    assert.deepEqual(pythia.arch.layers[0]!.rope, { type: 'default', theta: 10000 });
    assert.deepEqual(expectedTensorShapes(pythia).get('gpt_neox.layers.0.attention.query_key_value.weight'), [2304, 768]);
    assert.deepEqual(expectedTensorShapes(pythia).get('embed_out.weight'), [50304, 768]);
  });

  it("the bench's Llama-3.2-1B, Llama-3.1-8B and Qwen3-0.6B shapes are the published configs", () => {
    assert.deepEqual(MODEL_SHAPES['llama-3.2-1b'], readConfig('Llama-3.2-1B'));
    assert.deepEqual(MODEL_SHAPES['qwen3-0.6b'], readConfig('Qwen3-0.6B'));
    assert.deepEqual(MODEL_SHAPES['llama-3.1-8b'], readConfig('Llama-3.1-8B'));
  });

  it("the bench's mixture-of-experts stand-ins are the published configs cut to their first layers", () => {
    const cases = [
      ['qwen3-30b-a3b-4l', 'Qwen3-30B-A3B', 4],
      ['mixtral-8x7b-2l', 'Mixtral-8x7B-v0.1', 2],
    ] as const;
    for (const [shape, published, layers] of cases) {
      assert.deepEqual(FULL_DEPTH[shape], readConfig(published));
      assert.deepEqual(MODEL_SHAPES[shape], { ...readConfig(published), num_hidden_layers: layers });
    }
    const qwen = parseModelConfig(readConfig('Qwen3-30B-A3B'), 'Qwen3-30B-A3B').arch.moe!;
    assert.deepEqual([qwen.experts, qwen.topK, qwen.expertWidth, qwen.normTopK, qwen.sparse.every(Boolean)], [128, 8, 768, true, true]);
    const mixtral = parseModelConfig(readConfig('Mixtral-8x7B-v0.1'), 'Mixtral-8x7B').arch.moe!;
    assert.deepEqual([mixtral.experts, mixtral.topK, mixtral.expertWidth, mixtral.normTopK], [8, 2, 14336, true]);
  });
});
