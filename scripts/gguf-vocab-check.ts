/**
 * Checks GPT-2-style (byte-level BPE) tokenizer export against llama.cpp's own test vocabularies
 * (models/ggml-vocab-{gpt-2,qwen2,llama-bpe}.gguf in a llama.cpp checkout, with their .inp texts and
 * the .out ids the real Hugging Face tokenizers give). For each: rebuild the tokenizer.json that the
 * vocabulary came from, put it in a tiny random checkpoint, export that with PruneLens, and compare
 * llama.cpp's ids on our GGUF with PruneLens's ids (Hugging Face tokenizers over the tokenizer.json)
 * and with the recorded .out ids, over every test text and the evaluation text.
 *
 *   npm run check:gguf-vocab -- LLAMA_CPP_DIR
 *
 * node-llama-cpp ships a llama.cpp checkout as node_modules/node-llama-cpp/llama/gitRelease.bundle
 * (`git clone` it to get the models/ folder).
 */
import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { exportGguf } from '../src/engine/export/gguf/export-gguf';
import { TextTokenizer } from '../src/engine/text/tokenizer';
import { loadGguf, loadLlama } from '../src/engine/llamacpp/llama-client';
import { writeRandomCheckpoint } from './random-checkpoint';

const ROOT = path.resolve(__dirname, '..');
const EVAL_TEXT = path.join(ROOT, 'data', 'tinystories', 'eval.txt');

const LLAMA3_REGEX = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const QWEN2_REGEX = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

/** The pre-tokenizer and model settings of each vocabulary's original tokenizer.json. */
const ORIGINALS: Record<string, { modelType: string; preTokenizer: unknown; ignoreMerges: boolean }> = {
  'gpt-2': { modelType: 'llama', preTokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true }, ignoreMerges: false },
  qwen2: {
    modelType: 'qwen2',
    preTokenizer: { type: 'Sequence', pretokenizers: [{ type: 'Split', pattern: { Regex: QWEN2_REGEX }, behavior: 'Isolated', invert: false }, { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: false }] },
    ignoreMerges: false,
  },
  'llama-bpe': {
    modelType: 'llama',
    preTokenizer: { type: 'Sequence', pretokenizers: [{ type: 'Split', pattern: { Regex: LLAMA3_REGEX }, behavior: 'Isolated', invert: false }, { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: false }] },
    ignoreMerges: true,
  },
};

async function check(vocabFile: string, llama: Awaited<ReturnType<typeof loadLlama>>): Promise<boolean> {
  const name = path.basename(vocabFile, '.gguf').replace('ggml-vocab-', '');
  const original = ORIGINALS[name];
  if (!original) throw new Error(`no tokenizer.json recipe for ${name}; known: ${Object.keys(ORIGINALS).join(', ')}`);
  const { readGgufFileInfo } = await import('node-llama-cpp');
  const info = await readGgufFileInfo(vocabFile, { readTensorInfo: false, logWarnings: false });
  const g = (info.metadata as unknown as { tokenizer: { ggml: Record<string, unknown> } }).tokenizer.ggml;
  const tokens = g.tokens as string[];
  const types = g.token_type as number[];
  const merges = g.merges as string[];
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), `prunelens-vocab-${name}-`));
  try {
    const tokenizerDir = path.join(dir, 'tokenizer');
    await fsp.mkdir(tokenizerDir);
    const vocab: Record<string, number> = {};
    const added: object[] = [];
    tokens.forEach((t, id) => {
      if (types[id] === 3 || types[id] === 4) added.push({ id, content: t, single_word: false, lstrip: false, rstrip: false, normalized: false, special: types[id] === 3 });
      else vocab[t] = id;
    });
    const bos = typeof g.bos_token_id === 'number' ? tokens[g.bos_token_id] : undefined;
    const addBos = name === 'llama-bpe';
    const tokenizerJson = {
      version: '1.0',
      truncation: null,
      padding: null,
      added_tokens: added,
      normalizer: null,
      pre_tokenizer: original.preTokenizer,
      post_processor: addBos
        ? { type: 'TemplateProcessing', single: [{ SpecialToken: { id: bos, type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }], pair: [], special_tokens: { [bos!]: { id: bos, ids: [g.bos_token_id], tokens: [bos] } } }
        : null,
      decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
      model: { type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: false, byte_fallback: false, ignore_merges: original.ignoreMerges, vocab, merges },
    };
    await fsp.writeFile(path.join(tokenizerDir, 'tokenizer.json'), JSON.stringify(tokenizerJson));
    await fsp.writeFile(path.join(tokenizerDir, 'tokenizer_config.json'), JSON.stringify({ bos_token: bos ?? null, add_bos_token: addBos }));
    const model = path.join(dir, 'model');
    const config = {
      model_type: original.modelType, hidden_size: 16, intermediate_size: 32, num_hidden_layers: 1, num_attention_heads: 2, num_key_value_heads: 2,
      vocab_size: tokens.length, rms_norm_eps: 1e-6, rope_theta: 10000, tie_word_embeddings: true, max_position_embeddings: 128, hidden_act: 'silu',
    };
    await writeRandomCheckpoint(model, config, { dtype: 'F32', seed: 1, tokenizerFrom: tokenizerDir });
    const file = path.join(dir, 'model.gguf');
    await exportGguf({ model, type: 'f32', out: file });
    const ours = await TextTokenizer.load(model);
    const gguf = await loadGguf(llama, file);
    const inputs = (await fsp.readFile(vocabFile + '.inp', 'utf8')).split('\n__ggml_vocab_test__\n');
    const expected = (await fsp.readFile(vocabFile + '.out', 'utf8')).split('\n').slice(0, inputs.length);
    let ok = true;
    let agreeWithRecorded = 0;
    const texts = [...inputs.map((t, i) => ({ text: t, label: `test text ${i}`, recorded: expected[i]?.trim() })), { text: await fsp.readFile(EVAL_TEXT, 'utf8'), label: 'eval.txt', recorded: undefined }];
    for (const { text, label, recorded } of texts) {
      const prunelens = Array.from(ours.encode(text)).slice(addBos ? 1 : 0);
      const llamaIds = gguf.tokenize(text).map(Number);
      if (prunelens.join(' ') !== llamaIds.join(' ')) {
        ok = false;
        console.log(`${name} ${label}: PruneLens ${prunelens.slice(0, 16).join(' ')}… llama.cpp ${llamaIds.slice(0, 16).join(' ')}…`);
      }
      if (recorded !== undefined && recorded === llamaIds.join(' ')) agreeWithRecorded++;
    }
    console.log(`${name}: pre ${JSON.stringify(name)}, ${tokens.length} tokens, ${merges.length} merges: ${ok ? 'same ids' : 'DIFFERENT ids'} on ${texts.length} texts (${texts[texts.length - 1]!.text.length} characters of eval.txt); llama.cpp matches the recorded Hugging Face ids on ${agreeWithRecorded} of ${inputs.length} test texts`);
    await gguf.dispose();
    return ok;
  } finally {
    await fsp.rm(dir, { recursive: true, force: true });
  }
}

async function main(args: string[]): Promise<void> {
  const llamaCpp = args[0];
  if (!llamaCpp) throw new Error('usage: gguf-vocab-check LLAMA_CPP_DIR');
  const llama = await loadLlama();
  let ok = true;
  for (const name of Object.keys(ORIGINALS)) ok = (await check(path.join(llamaCpp, 'models', `ggml-vocab-${name}.gguf`), llama)) && ok;
  await llama.dispose();
  process.exitCode = ok ? 0 : 1;
}

main(process.argv.slice(2)).catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
