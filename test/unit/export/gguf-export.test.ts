/**
 * GGUF export, read back by an independent parser (node-llama-cpp's GGUF reader) and by hand from the
 * file's bytes, and checked in llama.cpp itself: token ids of the evaluation text, and perplexity of
 * the embedded model and of small random checkpoints of every family against PruneLens's own.
 * The slow, full check over pruned models is `npm run test:llama`.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Llama } from 'node-llama-cpp';
import { f16ToF32 } from '../../../src/engine/io/dtype';
import { PruneLensError } from '../../../src/engine/errors';
import { evaluateModel } from '../../../src/engine/evaluate/evaluate-model';
import { exportGguf } from '../../../src/engine/export/gguf/export-gguf';
import { preTokenizerName } from '../../../src/engine/export/gguf/tokenizer-metadata';
import { llama3RopeFactors } from '../../../src/engine/export/gguf/architectures';
import { Checkpoint } from '../../../src/engine/io/checkpoint';
import { TextTokenizer } from '../../../src/engine/text/tokenizer';
import { llamaPerplexity, llamaTokenize, loadGguf, loadLlama } from '../../../src/engine/llamacpp/llama-client';
import { copyOfFixture, editJson, FIXTURE_MODEL, tempDir } from '../../helpers/fixtures';
import { assertLlamaCppPerplexityAgrees } from '../../helpers/llama-agreement';

const TEXT = path.resolve('data', 'tinystories', 'eval.txt');

async function readInfo(file: string) {
  const { readGgufFileInfo } = await import('node-llama-cpp');
  return readGgufFileInfo(file, { logWarnings: false });
}

/** A tensor's bytes as the file holds them, located by the independent parser's offsets. */
function tensorBytes(file: string, fileOffset: number | bigint, byteLength: number): Buffer {
  const fd = fs.openSync(file, 'r');
  try {
    const bytes = Buffer.alloc(byteLength);
    fs.readSync(fd, bytes, 0, byteLength, Number(fileOffset));
    return bytes;
  } finally {
    fs.closeSync(fd);
  }
}

/** Hugging Face q/k rows in llama.cpp's order, written independently of the exporter: pairs (j, j + d/2) become rows (2j, 2j + 1). */
function expectedRow(row: number, headDim: number): number {
  const head = Math.floor(row / headDim);
  const within = row % headDim;
  return head * headDim + (within % 2 === 0 ? within / 2 : headDim / 2 + (within - 1) / 2);
}

describe('GGUF export', () => {
  const dir = tempDir();
  const source = new Map<string, Float32Array>();
  before(async () => {
    const checkpoint = await Checkpoint.open(FIXTURE_MODEL);
    for (const name of ['model.embed_tokens.weight', 'model.layers.0.self_attn.q_proj.weight', 'model.layers.0.self_attn.k_proj.weight', 'model.layers.1.mlp.down_proj.weight', 'model.norm.weight']) {
      source.set(name, await checkpoint.readF32(name));
    }
    await checkpoint.close();
  });

  it('writes a GGUF v3 file whose header, metadata and tensor table an independent reader parses', async () => {
    const file = path.join(dir, 'dense-f32.gguf');
    const result = await exportGguf({ model: FIXTURE_MODEL, type: 'f32', out: file });
    assert.equal(result.bytes, fs.statSync(file).size);
    const info = await readInfo(file);
    assert.equal(info.version, 3);
    assert.equal(Number(info.tensorCount), 47); // embeddings, 5 x 9 block tensors, final norm; the head is tied
    const m = info.metadata as unknown as Record<string, Record<string, unknown>>;
    assert.equal(m.general!.architecture, 'llama');
    assert.equal(m.general!.alignment, 32);
    assert.equal(m.general!.file_type, 0);
    const llama = m.llama as Record<string, unknown> & { attention: Record<string, unknown>; rope: Record<string, unknown> };
    assert.equal(llama.block_count, 5);
    assert.equal(llama.embedding_length, 64);
    assert.equal(llama.feed_forward_length, 172);
    assert.equal(llama.context_length, 512);
    assert.equal(llama.attention.head_count, 8);
    assert.equal(llama.attention.head_count_kv, 4);
    assert.ok(Math.abs((llama.attention.layer_norm_rms_epsilon as number) - 1e-5) < 1e-12);
    assert.equal(llama.rope.dimension_count, 8);
    assert.equal(llama.rope.freq_base, 10000);
    const tok = m.tokenizer!.ggml as Record<string, unknown>;
    assert.equal(tok.model, 'llama');
    assert.equal((tok.tokens as string[]).length, 512);
    assert.equal((tok.tokens as string[])[13], '<0x0A>');
    assert.equal((tok.token_type as number[])[13], 6); // byte
    assert.deepEqual((tok.token_type as number[]).slice(0, 3), [2, 3, 3]); // <unk>, <s>, </s>
    assert.equal(tok.bos_token_id, 1);
    assert.equal(tok.eos_token_id, 2);
    assert.equal(tok.add_bos_token, true);
    assert.equal(tok.add_space_prefix, true);

    const tensors = new Map(info.tensorInfo!.map((t) => [t.name, t]));
    assert.deepEqual(tensors.get('token_embd.weight')!.dimensions.map(Number), [64, 512]); // fastest dimension first
    assert.deepEqual(tensors.get('blk.1.ffn_down.weight')!.dimensions.map(Number), [172, 64]);
    assert.equal(tensors.has('output.weight'), false);
    for (const t of info.tensorInfo!) assert.equal(Number(t.offset) % 32, 0, `${t.name} is aligned`);

    const embd = tensors.get('token_embd.weight')!;
    assert.deepEqual(new Float32Array(new Uint8Array(tensorBytes(file, embd.fileOffset, 512 * 64 * 4)).buffer), source.get('model.embed_tokens.weight'));
    for (const [gguf, hf, heads] of [['blk.0.attn_q.weight', 'model.layers.0.self_attn.q_proj.weight', 8], ['blk.0.attn_k.weight', 'model.layers.0.self_attn.k_proj.weight', 4]] as const) {
      const rows = heads * 8;
      const written = new Float32Array(new Uint8Array(tensorBytes(file, tensors.get(gguf)!.fileOffset, rows * 64 * 4)).buffer);
      const original = source.get(hf)!;
      for (let r = 0; r < rows; r++) {
        assert.deepEqual(written.subarray(r * 64, (r + 1) * 64), original.subarray(expectedRow(r, 8) * 64, (expectedRow(r, 8) + 1) * 64), `${gguf} row ${r}`);
      }
    }
  });

  it('stores f16 as IEEE halves and q8_0 as ggml blocks (fp16 scale max|x|/127, rounded int8), norms in f32', async () => {
    const f16 = path.join(dir, 'dense-f16.gguf');
    await exportGguf({ model: FIXTURE_MODEL, type: 'f16', out: f16 });
    const q8 = path.join(dir, 'dense-q8_0.gguf');
    const result = await exportGguf({ model: FIXTURE_MODEL, type: 'q8_0', out: q8 });
    // down_proj rows are 172 long, not a multiple of 32: kept at f16 as llama.cpp's converter does.
    assert.deepEqual(result.fallbackToF16, [0, 1, 2, 3, 4].map((l) => `model.layers.${l}.mlp.down_proj.weight`));

    const embedding = source.get('model.embed_tokens.weight')!;
    const f16Info = new Map((await readInfo(f16)).tensorInfo!.map((t) => [t.name, t]));
    assert.equal(f16Info.get('token_embd.weight')!.ggmlType, 1);
    assert.equal(f16Info.get('output_norm.weight')!.ggmlType, 0);
    const halves = new Uint16Array(new Uint8Array(tensorBytes(f16, f16Info.get('token_embd.weight')!.fileOffset, embedding.length * 2)).buffer);
    for (let i = 0; i < embedding.length; i++) {
      assert.ok(Math.abs(f16ToF32(halves[i]!) - embedding[i]!) <= Math.abs(embedding[i]!) * 2 ** -11 + 2 ** -25, `f16 element ${i}`);
    }

    const q8Info = new Map((await readInfo(q8)).tensorInfo!.map((t) => [t.name, t]));
    assert.equal(q8Info.get('token_embd.weight')!.ggmlType, 8);
    assert.equal(q8Info.get('blk.0.ffn_down.weight')!.ggmlType, 1);
    const blocks = tensorBytes(q8, q8Info.get('token_embd.weight')!.fileOffset, (embedding.length / 32) * 34);
    for (let b = 0; b < embedding.length / 32; b++) {
      const x = embedding.subarray(b * 32, (b + 1) * 32);
      const amax = Math.max(...Array.from(x, Math.abs));
      const d = f16ToF32(blocks.readUInt16LE(b * 34));
      assert.ok(Math.abs(d - amax / 127) <= (amax / 127) * 2 ** -10, `block ${b} scale`);
      for (let j = 0; j < 32; j++) {
        const q = blocks.readInt8(b * 34 + 2 + j);
        assert.ok(Math.abs(q * d - x[j]!) <= d / 2 + amax * 2 ** -10, `block ${b} element ${j}`);
      }
    }
  });

  it('refuses an unknown type, a non-GGUF file in the way and a destination inside the source, writing nothing', async () => {
    await assert.rejects(exportGguf({ model: FIXTURE_MODEL, type: 'q4_k', out: path.join(dir, 'x.gguf') }), (e: PruneLensError) => e.kind === 'usage' && /one of f32, f16, bf16, q8_0; got "q4_k"/.test(e.message));
    const precious = path.join(dir, 'notes.gguf');
    fs.writeFileSync(precious, 'not a model');
    await assert.rejects(exportGguf({ model: FIXTURE_MODEL, type: 'f16', out: precious, overwrite: true }), /not a GGUF file/);
    assert.equal(fs.readFileSync(precious, 'utf8'), 'not a model');
    const copy = copyOfFixture();
    await assert.rejects(exportGguf({ model: copy, type: 'f16', out: path.join(copy, 'model.gguf') }), /inside the source checkpoint/);
    editJson(path.join(copy, 'tokenizer.json'), (t) => {
      (t.model as Record<string, unknown>).type = 'Unigram';
    });
    await assert.rejects(exportGguf({ model: copy, type: 'f16', out: path.join(dir, 'unigram.gguf') }), /tokenizer model "Unigram" cannot be written to GGUF; supported: BPE/);
    assert.deepEqual(fs.readdirSync(dir).filter((f) => f.startsWith('x.gguf') || f.startsWith('unigram')), []);
  });

  it('leaves no file behind when cancelled part-way', async () => {
    const abort = new AbortController();
    const out = path.join(dir, 'cancelled.gguf');
    await assert.rejects(
      exportGguf({ model: FIXTURE_MODEL, type: 'f16', out, signal: abort.signal, onProgress: (e) => e.type === 'stage' && e.done === 10 && abort.abort() }),
      (e: PruneLensError) => e.kind === 'cancelled',
    );
    assert.deepEqual(fs.readdirSync(dir).filter((f) => f.startsWith('cancelled')), []);
  });

  describe('in llama.cpp', () => {
    let llama: Llama;
    before(async () => {
      llama = await loadLlama();
    });
    after(async () => {
      await llama?.dispose();
    });

    it('tokenizes the evaluation text into PruneLens ids and scores its windows as PruneLens does', async () => {
      const text = fs.readFileSync(TEXT, 'utf8');
      const ids = Array.from((await TextTokenizer.load(FIXTURE_MODEL)).encode(text));
      const model = await loadGguf(llama, path.join(dir, 'dense-f32.gguf'));
      try {
        assert.deepEqual(llamaTokenize(model, text), ids);
        const ours = await evaluateModel({ model: FIXTURE_MODEL, textFile: TEXT, seqlen: 256, maxWindows: 4, runtime: { provider: 'cpu' } });
        const theirs = await llamaPerplexity(model, ids, 256, 4);
        assert.equal(theirs.targets, ours.targets);
        assert.ok(Math.abs(theirs.ppl / ours.ppl - 1) < 0.005, `llama.cpp ${theirs.ppl} vs PruneLens ${ours.ppl}`);
      } finally {
        await model.dispose();
      }
    });

    const FAMILIES: Record<string, Record<string, unknown>> = {
      // qwen2: q/k/v biases, NEOX rope (no row reordering), untied head, large rope_theta.
      qwen2: {
        model_type: 'qwen2', hidden_size: 48, intermediate_size: 64, num_hidden_layers: 2, num_attention_heads: 6,
        num_key_value_heads: 2, vocab_size: 512, rms_norm_eps: 1e-6, rope_theta: 1000000, tie_word_embeddings: false,
        max_position_embeddings: 128, hidden_act: 'silu',
      },
      mistral: {
        model_type: 'mistral', hidden_size: 32, intermediate_size: 64, num_hidden_layers: 2, num_attention_heads: 4,
        num_key_value_heads: 1, vocab_size: 512, rms_norm_eps: 1e-5, rope_theta: 10000, tie_word_embeddings: false,
        max_position_embeddings: 128, sliding_window: 4096, hidden_act: 'silu',
      },
      // llama with an explicit head_dim unlike hidden / heads and every linear biased (permuted q/k biases).
      'llama (head_dim, biases)': {
        model_type: 'llama', hidden_size: 32, intermediate_size: 64, num_hidden_layers: 2, num_attention_heads: 4,
        num_key_value_heads: 2, head_dim: 16, vocab_size: 512, rms_norm_eps: 1e-5, rope_theta: 500000,
        tie_word_embeddings: true, attention_bias: true, mlp_bias: true, max_position_embeddings: 128, hidden_act: 'silu',
      },
    };
    for (const [family, config] of Object.entries(FAMILIES)) {
      it(`${family}: llama.cpp's perplexity of the F32 export equals PruneLens's`, async () => {
        const folder = path.join(dir, family.replace(/\W+/g, '-'));
        await assertLlamaCppPerplexityAgrees(llama, folder, config, TEXT);
      });
    }
  });
});

describe('GGUF tokenizer metadata', () => {
  it('names the byte-level pre-tokenizers llama.cpp reproduces and refuses others with the list', () => {
    assert.equal(preTokenizerName({ type: 'ByteLevel', add_prefix_space: false, use_regex: true }, 'tokenizer.json'), 'gpt-2');
    assert.equal(preTokenizerName({ type: 'Sequence', pretokenizers: [{ type: 'Digits', individual_digits: true }, { type: 'ByteLevel', use_regex: true }] }, 'tokenizer.json'), 'smollm');
    assert.throws(
      () => preTokenizerName({ type: 'Sequence', pretokenizers: [{ type: 'Split', pattern: { Regex: '\\s+' } }, { type: 'ByteLevel', use_regex: false }] }, 'tokenizer.json'),
      /tokenizer.json: the byte-level pre-tokenizer \(split\?,bytes\) is not one llama.cpp reproduces; supported: GPT-2's ByteLevel/,
    );
  });
});

describe('Llama 3 rope scaling for llama.cpp', () => {
  it('gives Llama 3.1 8B\'s rope_freqs: 29 kept, 29 divided by 8, six blended (values from convert_hf_to_gguf.py\'s formula in numpy float32)', () => {
    const raw = { rope_scaling: { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 } };
    const factors = llama3RopeFactors(raw, 128, 500000);
    assert.equal(factors.length, 64);
    assert.deepEqual(Array.from(factors.subarray(0, 29)), new Array(29).fill(1));
    assert.deepEqual(Array.from(factors.subarray(35)), new Array(29).fill(8));
    const blended = [1.2074840068817139, 1.5534145832061768, 2.026313066482544, 2.6945300102233887, 3.684252977371216, 5.257326602935791];
    blended.forEach((v, i) => assert.ok(Math.abs(factors[29 + i]! - v) < 1e-5, `factor ${29 + i}: ${factors[29 + i]} vs ${v}`));
  });
});

describe('GGUF from the command line', () => {
  const cli = (...args: string[]) => spawnSync(process.execPath, [path.resolve('dist', 'cli.js'), ...args], { encoding: 'utf8' });

  it('export refuses an unknown --type or --format before any work, with what is supported', () => {
    const dir = tempDir();
    const badType = cli('export', '--format', 'gguf', '--type', 'q4_0', '--out', path.join(dir, 'm.gguf'), '--json');
    assert.equal(badType.status, 2);
    assert.match(badType.stdout, /--type must be one of f32, f16, bf16, q8_0; got \\"q4_0\\"/);
    const badFormat = cli('export', '--format', 'onnx', '--json');
    assert.equal(badFormat.status, 2);
    assert.match(badFormat.stdout, /--format must be gguf/);
    assert.deepEqual(fs.readdirSync(dir), []);
  });

  it('prune --format hf,gguf writes the pruned folder and its GGUF file beside it', async () => {
    const out = path.join(tempDir(), 'no-layer-4');
    const r = cli('prune', FIXTURE_MODEL, '--remove', 'L4', '--max-windows', '1', '--out', out, '--format', 'hf,gguf', '--json');
    assert.equal(r.status, 0, r.stdout + r.stderr);
    const result = JSON.parse(r.stdout) as { out: string; gguf: { out: string; bytes: number } };
    assert.equal(result.gguf.out, `${out}-f16.gguf`);
    assert.equal(fs.statSync(result.gguf.out).size, result.gguf.bytes);
    const info = await readInfo(result.gguf.out);
    assert.equal((info.metadata as unknown as { llama: { block_count: number } }).llama.block_count, 4);
    assert.equal((info.metadata as unknown as { general: { prunelens: { method: string } } }).general.prunelens.method, 'structured');
    const refused = cli('prune', FIXTURE_MODEL, '--remove', 'L4', '--format', 'gguf', '--out', path.join(tempDir(), 'x'), '--json');
    assert.equal(refused.status, 2);
    assert.match(refused.stdout, /--format takes hf or hf,gguf/);
  });
});
