/**
 * The BPE model of tokenizer.json, applied exactly as @huggingface/tokenizers (the engine's reference)
 * applies it, but on integer symbols instead of strings:
 *
 * - Merges are applied in rank order, the leftmost first among equal ranks (the reference's priority
 *   queue scores a pair by rank + position / length). A pair listed twice has its last rank (the
 *   reference's rank table is a Map filled in order). A merge's result is the concatenation of its two
 *   parts, whether or not the vocabulary has it; such a symbol may merge further.
 * - A final symbol missing from the vocabulary becomes its UTF-8 bytes as `<0xNN>` tokens when
 *   `byte_fallback` is set and all of them exist, else the unknown token (nothing when there is none).
 * - `ignore_merges`: a whole pre-token found in the vocabulary is emitted as is.
 *
 * Speed comes from two things the reference lacks: a cache of each distinct piece's ids, and cutting
 * long pre-tokens (a SentencePiece tokenizer has no pre-tokenizer, so the whole text is one) where no
 * merge can ever join the two characters: a merge that joins symbols across a boundary between x and y
 * has x as the last character of its left part and y as the first of its right part, so when no merge
 * has that junction, the pieces on either side are encoded independently and give the same result.
 */

export interface BpeModelConfig {
  vocab: Record<string, number>;
  merges: unknown[];
  unk_token?: string | null;
  byte_fallback?: boolean;
  ignore_merges?: boolean;
}

/** Symbols are packed as left * SYMBOL_LIMIT + right into one number key. */
const SYMBOL_LIMIT = 0x400000;
/** Pieces up to this many code units are encoded whole, without looking for cut points. */
const CUT_ABOVE = 64;
/** Above this many symbols the merge loop uses a heap instead of rescanning the pairs. */
const HEAP_ABOVE = 48;
const CACHE_LIMIT = 1 << 18;
const POSITION_SCALE = 2 ** 32;

export class BpeModel {
  private readonly symbols = new Map<string, number>();
  private readonly strings: string[] = [];
  /** pair key -> merge index (its rank). */
  private readonly pairs = new Map<number, number>();
  private readonly mergeResult: Int32Array;
  /**
   * Character pairs (x, y) some merge joins: x the last character of its left part, y the first of its
   * right part. Characters are numbered (as lefts and as rights apart) so that the keys stay small
   * integers; -1 for a character no merge joins on that side.
   */
  private readonly junctionKeys = new Set<number>();
  /** The same pairs as a bit matrix (left x right), when it is small enough: a bit test beats a hash lookup. */
  private junctionBits?: Uint32Array;
  private readonly leftIndex = new CharIndex();
  private readonly rightIndex = new CharIndex();
  /** Lazily filled: the ids a final symbol stands for. */
  private readonly outputs: (Int32Array | undefined)[] = [];
  private readonly cache = new Map<string, Int32Array>();
  /** piece() of each single code unit met, by its code. */
  private readonly units: (Int32Array | undefined)[] = new Array(0x10000);
  private readonly byteIds: (number | undefined)[] = [];
  readonly unkId: number | undefined;
  private readonly unkOutput: Int32Array;

  /**
   * @param vocab the model's vocabulary with the added tokens' contents (the reference adds them to
   *   the model's map, so a merge result equal to an added token is known)
   * @param idOf the id the reference finally gives a token string (added tokens first, then the vocabulary)
   */
  constructor(
    private readonly config: BpeModelConfig,
    private readonly vocab: ReadonlyMap<string, number>,
    private readonly idOf: (token: string) => number | undefined,
  ) {
    const unk = config.unk_token ?? undefined;
    this.unkId = unk === undefined ? undefined : vocab.get(unk);
    this.unkOutput = unk === undefined ? new Int32Array(0) : Int32Array.of(idOf(unk) ?? this.unkId ?? 0);
    for (let b = 0; b < 256; b++) this.byteIds.push(vocab.get(`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`));
    const merges = config.merges;
    this.mergeResult = new Int32Array(merges.length);
    for (let i = 0; i < merges.length; i++) {
      const m = merges[i];
      const parts = Array.isArray(m) ? m : typeof m === 'string' ? m.split(' ', 2) : [];
      if (parts.length < 2 || typeof parts[0] !== 'string' || typeof parts[1] !== 'string') {
        this.mergeResult[i] = -1;
        continue;
      }
      const [a, b] = parts as [string, string];
      const sa = this.symbol(a);
      const sb = this.symbol(b);
      this.mergeResult[i] = this.symbol(a + b);
      this.pairs.set(sa * SYMBOL_LIMIT + sb, i);
      if (a.length > 0 && b.length > 0) this.junctionKeys.add(this.leftIndex.add(lastCodePoint(a)) * SYMBOL_LIMIT + this.rightIndex.add(b.codePointAt(0)!));
    }
    const bits = this.leftIndex.size * this.rightIndex.size;
    if (bits <= 1 << 27) {
      this.junctionBits = new Uint32Array((bits >> 5) + 1);
      for (const key of this.junctionKeys) {
        const bit = Math.floor(key / SYMBOL_LIMIT) * this.rightIndex.size + (key % SYMBOL_LIMIT);
        this.junctionBits[bit >> 5]! |= 1 << (bit & 31);
      }
    }
  }

  /** Too many distinct strings for the packed pair keys: the caller must use the reference instead. */
  get overflowed(): boolean {
    return this.strings.length >= SYMBOL_LIMIT;
  }

  /** Appends the ids of one pre-token to `out`. */
  encode(token: string, out: IdSink): void {
    if (token.length === 0) return;
    if (this.config.ignore_merges) {
      const id = this.vocab.has(token) ? this.idOf(token) : undefined;
      if (id !== undefined) {
        out.push(id);
        return;
      }
    }
    if (token.length <= CUT_ABOVE) {
      out.pushAll(this.piece(token));
      return;
    }
    let start = 0;
    let cp = token.codePointAt(0)!;
    let left = this.leftIndex.get(cp);
    for (let i = cp > 0xffff ? 2 : 1; i < token.length; i += cp > 0xffff ? 2 : 1) {
      cp = token.codePointAt(i)!;
      const right = this.rightIndex.get(cp);
      if (left < 0 || right < 0 || !this.joins(left, right)) {
        out.pushAll(i - start === 1 ? this.unit(token.charCodeAt(start)) : this.piece(token.slice(start, i)));
        start = i;
      }
      left = this.leftIndex.get(cp);
    }
    out.pushAll(this.piece(token.slice(start)));
  }

  /**
   * The ids of a piece of one UTF-16 code unit, without slicing it out or hashing it: with few
   * merges most cuts leave single characters (the embedded model's 165 merges on WikiText-2).
   */
  private unit(code: number): Int32Array {
    return (this.units[code] ??= this.piece(String.fromCharCode(code)));
  }

  private joins(left: number, right: number): boolean {
    if (!this.junctionBits) return this.junctionKeys.has(left * SYMBOL_LIMIT + right);
    const bit = left * this.rightIndex.size + right;
    return (this.junctionBits[bit >> 5]! & (1 << (bit & 31))) !== 0;
  }

  private piece(text: string): Int32Array {
    const cached = this.cache.get(text);
    if (cached) return cached;
    const syms: number[] = [];
    for (const ch of text) syms.push(this.symbol(ch));
    const merged = syms.length > HEAP_ABOVE ? this.mergeWithHeap(syms) : this.mergeByScan(syms);
    let ids: Int32Array;
    if (merged.length === 1) ids = this.output(merged[0]!);
    else {
      const parts = merged.map((s) => this.output(s));
      ids = new Int32Array(parts.reduce((n, p) => n + p.length, 0));
      let at = 0;
      for (const p of parts) {
        ids.set(p, at);
        at += p.length;
      }
    }
    if (this.cache.size >= CACHE_LIMIT) this.cache.clear();
    if (text.length < 1024) this.cache.set(text, ids);
    return ids;
  }

  private rank(a: number, b: number): number {
    return this.pairs.get(a * SYMBOL_LIMIT + b) ?? Infinity;
  }

  private mergeByScan(syms: number[]): number[] {
    const ranks: number[] = [];
    for (let j = 0; j + 1 < syms.length; j++) ranks.push(this.rank(syms[j]!, syms[j + 1]!));
    for (;;) {
      let best = -1;
      let bestRank = Infinity;
      for (let j = 0; j < ranks.length; j++) {
        if (ranks[j]! < bestRank) {
          bestRank = ranks[j]!;
          best = j;
        }
      }
      if (best < 0) return syms;
      syms[best] = this.mergeResult[bestRank]!;
      syms.splice(best + 1, 1);
      ranks.splice(best, 1);
      if (best > 0) ranks[best - 1] = this.rank(syms[best - 1]!, syms[best]!);
      if (best < ranks.length) ranks[best] = this.rank(syms[best]!, syms[best + 1]!);
    }
  }

  /** The same merges as mergeByScan, in O(n log n): a heap of (rank, position of the left symbol). */
  private mergeWithHeap(syms: number[]): number[] {
    const n = syms.length;
    const next = new Int32Array(n);
    const prev = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      next[i] = i + 1 < n ? i + 1 : -1;
      prev[i] = i - 1;
    }
    const heap = new MinHeap();
    const push = (left: number): void => {
      const right = next[left]!;
      if (right < 0) return;
      const r = this.rank(syms[left]!, syms[right]!);
      if (r !== Infinity) heap.push(r * POSITION_SCALE + left);
    };
    for (let i = 0; i + 1 < n; i++) push(i);
    while (heap.size > 0) {
      const key = heap.pop();
      const r = Math.floor(key / POSITION_SCALE);
      const left = key - r * POSITION_SCALE;
      const right = next[left]!;
      // A stale entry: the symbol at `left` was merged away or changed since it was pushed.
      if (syms[left]! < 0 || right < 0 || this.rank(syms[left]!, syms[right]!) !== r) continue;
      syms[left] = this.mergeResult[r]!;
      syms[right] = -1;
      next[left] = next[right]!;
      if (next[right]! >= 0) prev[next[right]!] = left;
      if (prev[left]! >= 0) push(prev[left]!);
      push(left);
    }
    return syms.filter((s) => s >= 0);
  }

  private symbol(s: string): number {
    let id = this.symbols.get(s);
    if (id === undefined) {
      id = this.strings.length;
      this.symbols.set(s, id);
      this.strings.push(s);
    }
    return id;
  }

  private output(sym: number): Int32Array {
    let ids = this.outputs[sym];
    if (ids) return ids;
    const token = this.strings[sym]!;
    const id = this.vocab.has(token) ? this.idOf(token) : undefined;
    if (id !== undefined) ids = Int32Array.of(id);
    else if (this.config.byte_fallback) {
      const bytes = Buffer.from(token, 'utf8');
      const byteIds = Array.from(bytes, (b) => this.byteIds[b]);
      ids = byteIds.every((b) => b !== undefined) ? Int32Array.from(byteIds as number[]) : this.unkOutput;
    } else ids = this.unkOutput;
    this.outputs[sym] = ids;
    return ids;
  }
}

function lastCodePoint(s: string): number {
  const last = s.charCodeAt(s.length - 1);
  return last >= 0xdc00 && last <= 0xdfff && s.length > 1 ? s.codePointAt(s.length - 2)! : last;
}

/** Small numbers for the characters of one side of the junctions: a table for the BMP, a map beyond. */
class CharIndex {
  private readonly bmp = new Int32Array(0x10000).fill(-1);
  private readonly astral = new Map<number, number>();
  size = 0;

  add(cp: number): number {
    const known = this.get(cp);
    if (known >= 0) return known;
    if (cp <= 0xffff) this.bmp[cp] = this.size;
    else this.astral.set(cp, this.size);
    return this.size++;
  }

  get(cp: number): number {
    return cp <= 0xffff ? this.bmp[cp]! : (this.astral.get(cp) ?? -1);
  }
}

/** A growing list of ids; with `fuseUnk`, a run of unknown tokens becomes one, as the reference fuses them. */
export class IdSink {
  private buf: Int32Array;
  length = 0;
  private lastWasUnk = false;

  /** `expected`: a guess of the count (a quarter of the text's length is typical), to spare regrowing. */
  constructor(
    private readonly fuseUnk: boolean,
    private readonly unkId: number | undefined,
    expected = 1024,
  ) {
    this.buf = new Int32Array(Math.max(16, expected));
  }

  /** The reference fuses within one call of its model, i.e. within one section of text. */
  endSection(): void {
    this.lastWasUnk = false;
  }

  push(id: number): void {
    if (this.fuseUnk && id === this.unkId) {
      if (this.lastWasUnk) return;
      this.lastWasUnk = true;
    } else this.lastWasUnk = false;
    if (this.length === this.buf.length) this.grow(this.length + 1);
    this.buf[this.length++] = id;
  }

  pushAll(ids: Int32Array): void {
    if (this.fuseUnk) {
      for (let i = 0; i < ids.length; i++) this.push(ids[i]!);
      return;
    }
    if (this.length + ids.length > this.buf.length) this.grow(this.length + ids.length);
    this.buf.set(ids, this.length);
    this.length += ids.length;
  }

  /** A raw id outside any model section (added tokens, the post-processor's specials): never fused. */
  pushSpecial(id: number): void {
    this.lastWasUnk = false;
    if (this.length === this.buf.length) this.grow(this.length + 1);
    this.buf[this.length++] = id;
  }

  ids(): Int32Array {
    return this.buf.slice(0, this.length);
  }

  private grow(min: number): void {
    const bigger = new Int32Array(Math.max(min, this.buf.length * 2));
    bigger.set(this.buf.subarray(0, this.length));
    this.buf = bigger;
  }
}

/** A binary min-heap of numbers. */
class MinHeap {
  private readonly items: number[] = [];

  get size(): number {
    return this.items.length;
  }

  push(value: number): void {
    const a = this.items;
    let i = a.length;
    a.push(value);
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (a[parent]! <= value) break;
      a[i] = a[parent]!;
      i = parent;
    }
    a[i] = value;
  }

  pop(): number {
    const a = this.items;
    const top = a[0]!;
    const last = a.pop()!;
    if (a.length > 0) {
      let i = 0;
      const n = a.length;
      for (;;) {
        const l = 2 * i + 1;
        if (l >= n) break;
        const r = l + 1;
        const c = r < n && a[r]! < a[l]! ? r : l;
        if (a[c]! >= last) break;
        a[i] = a[c]!;
        i = c;
      }
      a[i] = last;
    }
    return top;
  }
}
