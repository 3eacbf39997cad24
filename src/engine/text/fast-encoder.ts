import type { Tokenizer } from '@huggingface/tokenizers';
import { BpeModel, IdSink, type BpeModelConfig } from './bpe';

export interface EncodeHooks {
  /** Called before a step that runs a tokenizer.json pattern over the text, with what and where. */
  phase?(label: string): void;
  /** Code units of the input text done so far, out of its length; called every few milliseconds. */
  progress?(done: number, total: number): void;
}

type Json = Record<string, unknown>;
interface Callable {
  normalize?(text: string): string;
  pre_tokenize?(text: string[], options: { section_index: number }): string[];
}
/** The parts of the reference's Tokenizer this mirrors; public at run time, partly private in its types. */
interface ReferenceInternals {
  normalizer: (Callable & { normalizers?: (Callable | null)[] }) | null;
  pre_tokenizer: (Callable & { tokenizers?: (Callable | null)[] }) | null;
  post_processor: ((tokens: string[], pair: null, addSpecial: boolean) => { tokens: string[] }) | null;
  added_tokens: { content: string; id: number; lstrip: boolean; rstrip: boolean; normalized: boolean }[];
  added_tokens_map: Map<string, { id: number; lstrip: boolean; rstrip: boolean }>;
  model: { tokens_to_ids: Map<string, number>; fuse_unk: boolean };
}

const SENTINEL = '\u0000prunelens\uffff';
const GPT2_PATTERN = /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu;
const PROGRESS_EVERY_MS = 100;

interface Step {
  label: string;
  run(texts: string[], sectionIndex: number): string[];
}

/**
 * Encoding as @huggingface/tokenizers encodes (the same ids for every text), fast: the reference's own
 * normalizer and pre-tokenizer objects run unchanged (native regular expressions over the whole
 * text), the steps around them are mirrored line by line (added tokens split out before and after
 * normalizing, lstrip/rstrip, the post-processor's special tokens), and the BPE model is bpe.ts. The
 * byte-level pre-tokenizer (GPT-2, Llama 3, Qwen2) is mirrored too, so that its per-word UTF-8
 * mapping is done once per distinct word.
 *
 * Covered: BPE models without word suffixes, any normalizer and pre-tokenizer the reference builds,
 * any post-processor that puts the text once between fixed special tokens. `create` returns the
 * reason otherwise, and the caller encodes with the reference.
 */
export class FastEncoder {
  private readonly addedMap: ReferenceInternals['added_tokens_map'];
  private readonly unnormalized: Splitter;
  private readonly normalized: Splitter;
  private readonly normalizers: Step[];
  private readonly preTokenizers: Step[];
  /** The last pre-tokenizer is ByteLevel, mirrored here: its add_prefix_space and regex split. */
  private readonly byteLevel?: { addPrefixSpace: boolean; useRegex: boolean };
  private readonly prefix: number[];
  private readonly suffix: number[];
  private readonly idOf: (token: string) => number | undefined;

  private constructor(
    reference: ReferenceInternals,
    private readonly config: Json,
    private readonly bpe: BpeModel,
    private readonly fuseUnk: boolean,
    specials: { prefix: string[]; suffix: string[] },
    steps: { normalizers: Step[]; preTokenizers: Step[]; byteLevel?: { addPrefixSpace: boolean; useRegex: boolean } },
  ) {
    this.addedMap = reference.added_tokens_map;
    this.idOf = idLookup(reference);
    // As the reference: tokens marked `normalized` are looked for in the normalized text, the others in the raw text.
    const normalizer = reference.normalizer;
    this.unnormalized = new Splitter(reference.added_tokens.filter((t) => !(t.normalized && normalizer)).map((t) => t.content));
    this.normalized = new Splitter(normalizer ? reference.added_tokens.filter((t) => t.normalized).map((t) => normalizer.normalize!(t.content)) : []);
    this.normalizers = steps.normalizers;
    this.preTokenizers = steps.preTokenizers;
    this.byteLevel = steps.byteLevel;
    const id = (t: string): number => this.idOf(t) ?? this.bpe.unkId ?? 0;
    this.prefix = specials.prefix.map(id);
    this.suffix = specials.suffix.map(id);
  }

  /** An encoder for `reference` built from `json` (its tokenizer.json), or why this tokenizer is not covered. */
  static create(reference: Tokenizer, json: Json, config: Json): FastEncoder | string {
    const ref = reference as unknown as ReferenceInternals;
    const model = (json['model'] ?? {}) as Json;
    if (model['type'] !== 'BPE') return `a ${String(model['type'])} model`;
    if (model['end_of_word_suffix'] || model['continuing_subword_suffix']) return 'a BPE model with word suffixes';
    if (typeof model['vocab'] !== 'object' || model['vocab'] === null || !Array.isArray(model['merges'])) return 'a BPE model without vocab and merges';
    const unk = model['unk_token'];
    if (unk != null && (typeof unk !== 'string' || !Object.hasOwn(model['vocab'] as Json, unk))) return 'an unknown token missing from the vocabulary';
    const specials = specialTokens(ref);
    if (typeof specials === 'string') return specials;
    const steps = pipelineSteps(ref, json);
    if (typeof steps === 'string') return steps;
    const bpe = new BpeModel(model as unknown as BpeModelConfig, ref.model.tokens_to_ids, idLookup(ref));
    if (bpe.overflowed) return 'a vocabulary too large for the fast encoder';
    return new FastEncoder(ref, config, bpe, ref.model.fuse_unk, specials, steps);
  }

  /** Token ids of `text`, with the post-processor's special tokens: what the reference's encode(text).ids gives. */
  encode(text: string, hooks: EncodeHooks = {}): Int32Array {
    const out = new IdSink(this.fuseUnk, this.bpe.unkId, text.length >> 2);
    for (const id of this.prefix) out.pushSpecial(id);
    const progress = new Progress(text.length, hooks);
    const sections = this.unnormalized.split(text);
    stripAround(sections, this.addedMap);
    let offset = 0;
    for (let i = 0; i < sections.length; i++) {
      let section = sections[i]!;
      const sectionStart = offset;
      offset += section.length;
      if (section.length === 0) continue;
      const added = this.addedMap.get(section);
      if (added) {
        out.pushSpecial(added.id);
        continue;
      }
      if (this.config['remove_space'] === true) section = section.trim().split(/\s+/).join(' ');
      if (this.config['do_lowercase_and_remove_accent']) section = section.toLowerCase().replace(/\p{M}/gu, '');
      for (const step of this.normalizers) {
        hooks.phase?.(step.label);
        section = step.run([section], i)[0]!;
      }
      hooks.phase?.('BPE');
      if (section.length === 0) continue;
      const subsections = this.normalized.split(section);
      stripAround(subsections, this.addedMap);
      // Progress is reported in input code units; a normalizer may change the length, so scale.
      const scale = (offset - sectionStart) / section.length;
      let at = 0;
      for (const sub of subsections) {
        const subStart = at;
        at += sub.length;
        if (sub.length === 0) continue;
        const addedSub = this.addedMap.get(sub);
        if (addedSub) {
          out.pushSpecial(addedSub.id);
          continue;
        }
        this.encodeSubsection(sub, i, out, hooks, (done) => progress.report(sectionStart + (subStart + done) * scale));
        out.endSection();
      }
    }
    for (const id of this.suffix) out.pushSpecial(id);
    return out.ids();
  }

  private encodeSubsection(text: string, sectionIndex: number, out: IdSink, hooks: EncodeHooks, report: (done: number) => void): void {
    let pieces = [text];
    for (const step of this.preTokenizers) {
      hooks.phase?.(step.label);
      pieces = step.run(pieces, sectionIndex);
    }
    if (this.preTokenizers.length > 0) hooks.phase?.('BPE');
    let done = 0;
    for (let p = 0; p < pieces.length; p++) {
      const piece = pieces[p]!;
      if (!this.byteLevel) this.bpe.encode(piece, out);
      else {
        const q = this.byteLevel.addPrefixSpace && !piece.startsWith(' ') ? ` ${piece}` : piece;
        if (!this.byteLevel.useRegex) this.bpe.encode(byteLevelSpelling(q), out);
        else {
          GPT2_PATTERN.lastIndex = 0;
          for (let m = GPT2_PATTERN.exec(q); m !== null; m = GPT2_PATTERN.exec(q)) {
            this.bpe.encode(byteLevelSpelling(m[0]), out);
          }
        }
      }
      done += piece.length;
      if ((p & 255) === 255) report(Math.min(done, text.length));
    }
    report(text.length);
  }
}

/** The id the reference gives a token string: added tokens first, then the model's map (which holds the added contents too). */
function idLookup(ref: ReferenceInternals): (token: string) => number | undefined {
  return (token) => ref.added_tokens_map.get(token)?.id ?? ref.model.tokens_to_ids.get(token);
}

/** The tokens the post-processor puts before and after the text, found by passing it a sentinel. */
function specialTokens(ref: ReferenceInternals): { prefix: string[]; suffix: string[] } | string {
  if (!ref.post_processor) return { prefix: [], suffix: [] };
  let tokens: string[];
  try {
    tokens = ref.post_processor([SENTINEL], null, true).tokens;
  } catch (err) {
    return `a post-processor that fails on a probe (${(err as Error).message})`;
  }
  const at = tokens.indexOf(SENTINEL);
  if (at < 0 || tokens.lastIndexOf(SENTINEL) !== at) return 'a post-processor that does not keep the text once';
  return { prefix: tokens.slice(0, at), suffix: tokens.slice(at + 1) };
}

/** The normalizer's and pre-tokenizer's members as steps, each labelled with what tokenizer.json says and where. */
function pipelineSteps(ref: ReferenceInternals, json: Json): { normalizers: Step[]; preTokenizers: Step[]; byteLevel?: { addPrefixSpace: boolean; useRegex: boolean } } | string {
  const normalizers: Step[] = [];
  const n = ref.normalizer;
  const nJson = json['normalizer'] as Json | null;
  if (n && nJson) {
    const members = nJson['type'] === 'Sequence' && Array.isArray(n.normalizers) ? n.normalizers : [n];
    const configs = nJson['type'] === 'Sequence' ? ((nJson['normalizers'] as Json[]) ?? []) : [nJson];
    members.forEach((m, k) => {
      if (!m) return;
      const where = nJson['type'] === 'Sequence' ? `normalizer.normalizers[${k}]` : 'normalizer';
      normalizers.push({ label: describe(where, configs[k]), run: literalReplace(configs[k]) ?? ((texts) => [m.normalize!(texts[0]!)]) });
    });
  }
  const preTokenizers: Step[] = [];
  let byteLevel: { addPrefixSpace: boolean; useRegex: boolean } | undefined;
  const p = ref.pre_tokenizer;
  const pJson = json['pre_tokenizer'] as Json | null;
  if (p && pJson) {
    const sequence = pJson['type'] === 'Sequence' && Array.isArray(p.tokenizers);
    const members = sequence ? p.tokenizers! : [p];
    const configs = sequence ? ((pJson['pretokenizers'] as Json[]) ?? []) : [pJson];
    if (members.length !== configs.length) return 'a pre-tokenizer sequence that does not match tokenizer.json';
    for (let k = 0; k < members.length; k++) {
      const m = members[k];
      if (!m) continue;
      const c = configs[k] ?? {};
      if (c['type'] === 'ByteLevel' && k === members.length - 1) {
        byteLevel = { addPrefixSpace: c['add_prefix_space'] === true, useRegex: c['use_regex'] !== false };
        continue;
      }
      const where = sequence ? `pre_tokenizer.pretokenizers[${k}]` : 'pre_tokenizer';
      preTokenizers.push({ label: describe(where, c), run: (texts, sectionIndex) => m.pre_tokenize!(texts, { section_index: sectionIndex }) });
    }
  }
  return { normalizers, preTokenizers, byteLevel };
}

/**
 * A Replace of a literal string, done by String.replaceAll: the reference compiles the literal to a
 * global regular expression, which replaces the same occurrences (substitution patterns such as `$&`
 * mean the same in both), but several times slower on a whole text. Surrogates are left to the
 * reference, whose `u` flag never matches half of a pair.
 */
function literalReplace(config: Json | undefined): Step['run'] | undefined {
  const literal = (config?.['pattern'] as Json | undefined)?.['String'];
  const content = config?.['content'];
  if (config?.['type'] !== 'Replace' || typeof literal !== 'string' || typeof content !== 'string' || literal.length === 0 || /[\ud800-\udfff]/.test(literal)) return undefined;
  return (texts) => [texts[0]!.replaceAll(literal, content)];
}

/** `normalizer.normalizers[2] (Replace, Regex "^([a-z ]+)+$")`. */
function describe(where: string, config: Json | undefined): string {
  const type = String(config?.['type'] ?? 'unknown');
  const pattern = config?.['pattern'] as Json | undefined;
  const shown = pattern?.['Regex'] !== undefined ? `, Regex ${JSON.stringify(pattern['Regex'])}` : pattern?.['String'] !== undefined ? `, String ${JSON.stringify(pattern['String'])}` : '';
  return `${where} (${type}${shown})`;
}

/** The reference's lstrip/rstrip: an added token's neighbours lose their whitespace on that side. */
function stripAround(sections: string[], added: ReferenceInternals['added_tokens_map']): void {
  sections.forEach((section, i) => {
    const token = added.get(section);
    if (!token) return;
    if (token.lstrip && i > 0) sections[i - 1] = sections[i - 1]!.trimEnd();
    if (token.rstrip && i < sections.length - 1) sections[i + 1] = sections[i + 1]!.trimStart();
  });
}

/**
 * The reference's DictionarySplitter: at each position the longest added token that starts there
 * (code units, leftmost first) is cut out; the text between stays as it is.
 */
class Splitter {
  private readonly root = new Map<string, TrieNode>();
  /** Code units that start some token: the scan skips every other position with one table read. */
  private readonly starts = new Uint8Array(0x10000);

  constructor(words: string[]) {
    for (const word of words) {
      if (word.length > 0) this.starts[word.charCodeAt(0)] = 1;
      let level = this.root;
      let node: TrieNode | undefined;
      for (const ch of word.split('')) {
        node = level.get(ch);
        if (!node) level.set(ch, (node = { children: new Map() }));
        level = node.children;
      }
      if (node) node.end = word;
    }
  }

  split(text: string): string[] {
    if (this.root.size === 0) return [text];
    const result: string[] = [];
    const n = text.length;
    let start = 0;
    let i = 0;
    while (i < n) {
      if (this.starts[text.charCodeAt(i)] === 0) {
        i++;
        continue;
      }
      let level = this.root;
      let match: string | undefined;
      for (let j = i; j < n; j++) {
        const node = level.get(text[j]!);
        if (!node) break;
        if (node.end !== undefined) match = node.end;
        level = node.children;
      }
      if (match) {
        if (i > start) result.push(text.slice(start, i));
        result.push(match);
        i += match.length;
        start = i;
      } else i++;
    }
    if (start < n) result.push(text.slice(start));
    return result;
  }
}

interface TrieNode {
  end?: string;
  children: Map<string, TrieNode>;
}

/** GPT-2's bytes_to_unicode: byte -> the character that spells it in byte-level vocabularies. */
export const BYTE_CHARS: readonly string[] = (() => {
  const chars: string[] = [];
  let extra = 0;
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
    chars.push(String.fromCharCode(printable ? b : 256 + extra++));
  }
  return chars;
})();

/** A word's UTF-8 bytes spelled in the byte-level alphabet, as the ByteLevel pre-tokenizer spells them. */
export function byteLevelSpelling(word: string): string {
  let out = '';
  for (let i = 0; i < word.length; i++) {
    const c = word.charCodeAt(i);
    if (c >= 0x80) {
      out = '';
      for (const b of Buffer.from(word, 'utf8')) out += BYTE_CHARS[b];
      return out;
    }
    out += BYTE_CHARS[c];
  }
  return out;
}

class Progress {
  private last = performance.now();

  constructor(
    private readonly total: number,
    private readonly hooks: EncodeHooks,
  ) {}

  report(done: number): void {
    if (!this.hooks.progress) return;
    const now = performance.now();
    if (now - this.last < PROGRESS_EVERY_MS) return;
    this.last = now;
    this.hooks.progress(Math.min(Math.round(done), this.total), this.total);
  }
}
