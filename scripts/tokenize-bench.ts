/**
 * The tokenize table of `npm run bench`: for the embedded tokenizer and a GPT-2-style byte-level one,
 * on each of the project's texts, the speed of the path runs take (encodeText: a worker, then the
 * token cache) cold and cached, beside the library the engine used before, whose ids must be equal.
 */
import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import { encodeDocuments } from '../src/engine/text/encode-text';
import { TextTokenizer } from '../src/engine/text/tokenizer';
import { byteLevelTokenizerJson, trainByteLevelBpe } from './byte-level-tokenizer';

export interface TokenizeBenchResult {
  tokenizer: string;
  text: string;
  mb: number;
  documents: number;
  ids: number;
  encoder: string;
  librarySeconds: number;
  coldSeconds: number;
  cachedSeconds: number;
  /** CPU seconds of the whole process (the worker included): on a shared machine, closer to what a quiet one takes. */
  libraryCpuSeconds: number;
  coldCpuSeconds: number;
  identical: boolean;
}

interface BenchText {
  name: string;
  file: string;
  documents: string[];
}

/** Merges learned for the byte-level tokenizer: enough for words to merge deeply, quick to learn. */
const BYTE_LEVEL_MERGES = 1000;

export async function runTokenizeBench(shared: string, embedded: string, log: (m: string) => void): Promise<TokenizeBenchResult[]> {
  const texts = await benchTexts(shared);
  const work = await fsp.mkdtemp(path.join(os.tmpdir(), 'prunelens-tokenize-bench-'));
  try {
    const byteLevel = path.join(work, 'gpt2-style');
    await fsp.mkdir(byteLevel);
    log(`tokenize: learning ${BYTE_LEVEL_MERGES} byte-level BPE merges`);
    const calibration = texts.find((t) => t.name === 'calibration.txt')!.documents[0]!;
    const json = byteLevelTokenizerJson('gpt2', trainByteLevelBpe(calibration.slice(0, 100_000), BYTE_LEVEL_MERGES));
    await fsp.writeFile(path.join(byteLevel, 'tokenizer.json'), JSON.stringify(json));
    const results: TokenizeBenchResult[] = [];
    for (const [name, dir] of [
      ['stories260K (SentencePiece-style)', embedded],
      ['GPT-2-style byte-level', byteLevel],
    ] as const) {
      const tokenizer = await TextTokenizer.load(dir);
      const library = new Tokenizer(JSON.parse(tokenizer.files.json), tokenizer.files.config === undefined ? {} : JSON.parse(tokenizer.files.config));
      for (const text of texts) {
        log(`tokenize: ${name}, ${text.name}`);
        const cacheDir = path.join(work, 'cache');
        await fsp.rm(cacheDir, { recursive: true, force: true });
        const options = { source: text.file, cacheDir };
        let start = performance.now();
        let cpu = process.cpuUsage();
        const cold = await encodeDocuments(tokenizer, text.documents, options);
        const coldSeconds = (performance.now() - start) / 1000;
        const coldCpuSeconds = cpuSeconds(cpu);
        start = performance.now();
        await encodeDocuments(tokenizer, text.documents, options);
        const cachedSeconds = (performance.now() - start) / 1000;
        start = performance.now();
        cpu = process.cpuUsage();
        const reference = text.documents.map((d) => library.encode(d).ids);
        const librarySeconds = (performance.now() - start) / 1000;
        const libraryCpuSeconds = cpuSeconds(cpu);
        results.push({
          tokenizer: name,
          text: text.name,
          mb: text.documents.reduce((n, d) => n + Buffer.byteLength(d, 'utf8'), 0) / 1e6,
          documents: text.documents.length,
          ids: cold.reduce((n, d) => n + d.length, 0),
          encoder: tokenizer.encoderKind,
          librarySeconds,
          coldSeconds,
          cachedSeconds,
          libraryCpuSeconds,
          coldCpuSeconds,
          identical: reference.every((r, i) => r.length === cold[i]!.length && r.every((id, k) => id === cold[i]![k])),
        });
      }
    }
    return results;
  } finally {
    await fsp.rm(work, { recursive: true, force: true });
  }
}

function cpuSeconds(since: NodeJS.CpuUsage): number {
  const used = process.cpuUsage(since);
  return (used.user + used.system) / 1e6;
}

/** The texts runs tokenize: TinyStories, WikiText-2 test (whole files) and the C4 sample (one document per line, as calibration reads it). */
async function benchTexts(shared: string): Promise<BenchText[]> {
  const whole = async (name: string, file: string): Promise<BenchText> => ({ name, file, documents: [await fsp.readFile(file, 'utf8')] });
  const c4 = path.join(shared, 'c4', 'c4_en_train_first1000.jsonl');
  return [
    await whole('eval.txt', path.join(shared, 'tinystories', 'eval.txt')),
    await whole('calibration.txt', path.join(shared, 'tinystories', 'calibration.txt')),
    await whole('wikitext2 test_raw.txt', path.join(shared, 'wikitext2', 'test_raw.txt')),
    {
      name: 'c4 first 1000 (jsonl)',
      file: c4,
      documents: (await fsp.readFile(c4, 'utf8'))
        .split('\n')
        .filter((l) => l.trim() !== '')
        .map((l) => (JSON.parse(l) as { text: string }).text),
    },
  ];
}

export function tokenizeTable(results: TokenizeBenchResult[]): string {
  const lines = [
    '| tokenizer | text | MB | ids | library MB/s (before) | cold MB/s (no cache) | cached MB/s | library MB/CPU-s | cold MB/CPU-s | speed-up cold | ids equal the library |',
    '| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |',
  ];
  for (const r of results) {
    const cells = [
      r.tokenizer,
      r.documents > 1 ? `${r.text}, ${r.documents} documents` : r.text,
      r.mb.toFixed(2),
      String(r.ids),
      (r.mb / r.librarySeconds).toFixed(3),
      (r.mb / r.coldSeconds).toFixed(2),
      (r.mb / r.cachedSeconds).toFixed(1),
      (r.mb / r.libraryCpuSeconds).toFixed(3),
      (r.mb / r.coldCpuSeconds).toFixed(2),
      `${(r.librarySeconds / r.coldSeconds).toFixed(0)}x`,
      r.identical ? 'yes' : '**NO**',
    ];
    lines.push(`| ${cells.join(' | ')} |`);
  }
  return lines.join('\n') + '\n';
}
