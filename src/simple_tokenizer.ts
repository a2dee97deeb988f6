// clip/simple_tokenizer.py of openai/CLIP (byte-level BPE over text cleaned with ftfy and html.unescape), and
// clip.tokenize of clip/clip.py as SimpleTokenizer.tokenize. No Node APIs here, so it also runs in a browser; only
// loadTokenizer with a path imports the file reader.

import {
  END_OF_TEXT,
  END_OF_WORD,
  MAX_VOCAB,
  OPENAI_MERGES,
  parseHfVocabMerges,
  parseOpenAiMerges,
  parseTokenizerJson,
  START_OF_TEXT,
  type BpeModel,
  type TextInput,
} from "./text/bpe_files.js";
import { charClass, classBody, pointsToRanges, pyStrip, REGEX_SPACE } from "./text/charclass.js";
import { ContextLengthError, TokenizerFormatError } from "./text/errors.js";
import { fixText } from "./text/ftfy.js";
import { htmlUnescape } from "./text/html_unescape.js";
import { CASE_VARIANTS, LETTER_RANGES, NUMBER_RANGES, REGEX_WHITESPACE, UNMATCHED_CODEPOINTS } from "./text/unicode_tables.js";

export { ContextLengthError, TokenizerFormatError } from "./text/errors.js";
export { parseHfVocabMerges, parseOpenAiMerges, parseTokenizerJson, OPENAI_MERGES, type BpeModel } from "./text/bpe_files.js";

let byteSymbols: ReadonlyMap<number, string> | undefined;

/**
 * Byte -> the character that stands for it in BPE symbols. Printable Latin-1 bytes stand for themselves; the
 * others (controls, space, 0x7F..0xA0, 0xAD) get U+0100 onwards in byte order, so no symbol holds whitespace.
 * Iteration order is the reference's: the printable bytes first.
 */
export function bytesToUnicode(): ReadonlyMap<number, string> {
  if (byteSymbols !== undefined) return byteSymbols;
  const printable = (b: number) => (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  const table = new Map<number, string>();
  for (let b = 0; b < 256; b++) if (printable(b)) table.set(b, String.fromCharCode(b));
  let next = 256;
  for (let b = 0; b < 256; b++) if (!printable(b)) table.set(b, String.fromCharCode(next++));
  byteSymbols = table;
  return table;
}

/** The distinct pairs of adjacent symbols of a word, in order of first appearance. */
export function getPairs(word: readonly string[]): Array<readonly [string, string]> {
  const seen = new Set<string>();
  const pairs: Array<readonly [string, string]> = [];
  for (let i = 1; i < word.length; i++) {
    // symbols never contain a space (bytesToUnicode maps it away), so the key is unambiguous
    const key = word[i - 1] + " " + word[i];
    if (seen.has(key)) continue;
    seen.add(key);
    pairs.push([word[i - 1]!, word[i]!]);
  }
  return pairs;
}

/** ftfy.fix_text, then html.unescape twice, then strip. */
export function basicClean(text: string): string {
  return pyStrip(htmlUnescape(htmlUnescape(fixText(text))));
}

const SPACE_RUN = new RegExp(`${REGEX_SPACE}+`, "gu");

/** Whitespace runs (the `regex` module's \s) -> one space, then strip. */
export function whitespaceClean(text: string): string {
  return pyStrip(text.replace(SPACE_RUN, " "));
}

/**
 * The reference's pre-tokenisation pattern, evaluated as the `regex` module does under IGNORECASE, from tables
 * generated with it (so the result does not depend on the engine's Unicode version): special tokens,
 * contractions, letter runs, single digits, runs of anything else but whitespace.
 */
function tokenPattern(): RegExp {
  const literal = (word: string) =>
    [...word]
      .map((ch) => (CASE_VARIANTS[ch] !== undefined ? charClass(CASE_VARIANTS[ch]) : ch.replace(/[|\\^$.*+?()[\]{}/]/, "\\$&")))
      .join("");
  const letters = classBody(LETTER_RANGES);
  const numbers = classBody(NUMBER_RANGES);
  const space = classBody(pointsToRanges(REGEX_WHITESPACE));
  const unmatched = classBody(pointsToRanges(UNMATCHED_CODEPOINTS));
  const alternatives = [
    ...[START_OF_TEXT, END_OF_TEXT, "'s", "'t", "'re", "'ve", "'m", "'ll", "'d"].map(literal),
    `[${letters}]+`,
    `[${numbers}]`,
    `[^${space}${letters}${numbers}${unmatched}]+`,
  ];
  return new RegExp(alternatives.join("|"), "gu");
}

const TOKEN_PATTERN = tokenPattern();

export interface TokenizeOptions {
  /** Tokens per row, start and end included (77 for every CLIP model). */
  contextLength?: number;
  /** Cut texts that do not fit (keeping the end token last) instead of throwing a ContextLengthError. */
  truncate?: boolean;
}

/** Token ids, one zero-padded row per text. */
export interface TokenizedTexts {
  data: Int32Array;
  shape: [number, number];
}

export interface TokenizerOptions {
  /** Words whose BPE result is kept (the reference keeps all); the oldest are dropped beyond this. */
  cacheSize?: number;
}

const MAX_CONTEXT = 1 << 20;
const utf8 = new TextEncoder();

function preview(text: string): string {
  return JSON.stringify(text.length > 100 ? text.slice(0, 100) + "…" : text);
}

/** Binary min-heap of numbers. */
class NumberHeap {
  private readonly items: number[] = [];

  get size(): number {
    return this.items.length;
  }

  push(value: number): void {
    const items = this.items;
    let i = items.push(value) - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (items[parent]! <= value) break;
      items[i] = items[parent]!;
      i = parent;
    }
    items[i] = value;
  }

  pop(): number {
    const items = this.items;
    const top = items[0]!;
    const last = items.pop()!;
    if (items.length === 0) return top;
    let i = 0;
    for (;;) {
      let child = 2 * i + 1;
      if (child >= items.length) break;
      if (child + 1 < items.length && items[child + 1]! < items[child]!) child++;
      if (items[child]! >= last) break;
      items[i] = items[child]!;
      i = child;
    }
    items[i] = last;
    return top;
  }
}

/** (left id, right id) -> rank by open addressing: a Map keyed by left * vocabSize + right (beyond 2^30) is slow. */
class PairRanks {
  private readonly lefts: Int32Array;
  private readonly rights: Int32Array;
  private readonly ranks: Int32Array;
  private readonly mask: number;

  constructor(count: number) {
    let capacity = 16;
    while (capacity < 2 * count) capacity *= 2;
    this.lefts = new Int32Array(capacity).fill(-1);
    this.rights = new Int32Array(capacity);
    this.ranks = new Int32Array(capacity);
    this.mask = capacity - 1;
  }

  private slot(left: number, right: number): number {
    let i = (Math.imul(left, 0x9e3779b1) ^ Math.imul(right, 0x85ebca77)) & this.mask;
    while (this.lefts[i] !== -1 && (this.lefts[i] !== left || this.rights[i] !== right)) i = (i + 1) & this.mask;
    return i;
  }

  /** The rank of a pair, or -1. */
  get(left: number, right: number): number {
    const i = this.slot(left, right);
    return this.lefts[i] === -1 ? -1 : this.ranks[i]!;
  }

  /** Stores a pair's rank unless the pair is already there; returns the rank it had, or -1. */
  add(left: number, right: number, rank: number): number {
    const i = this.slot(left, right);
    if (this.lefts[i] !== -1) return this.ranks[i]!;
    this.lefts[i] = left;
    this.rights[i] = right;
    this.ranks[i] = rank;
    return -1;
  }
}

/** Heap keys order pairs by rank, then by position; positions stay below 2^31 (string length limit). */
const POSITION_SPAN = 2 ** 31;

export class SimpleTokenizer {
  readonly byteEncoder: ReadonlyMap<number, string>;
  /** Token -> id (for a token listed twice, the later id, as the reference's dict). */
  readonly encoder: ReadonlyMap<string, number>;
  /** Id -> token. */
  readonly decoder: readonly string[];
  readonly sotToken: number;
  readonly eotToken: number;
  readonly vocabSize: number;

  /** Byte -> id of its symbol inside a word, and at a word's end. */
  private readonly byteIds = new Int32Array(256);
  private readonly byteEndIds = new Int32Array(256);
  /** Character code of a byte symbol -> byte (-1 for other characters). */
  private readonly symbolBytes: Int16Array;
  private readonly pairRanks: PairRanks;
  /** Rank -> id of the merged symbol. */
  private readonly mergedIds: Int32Array;
  private readonly cache = new Map<string, readonly number[]>();
  private readonly cacheSize: number;

  constructor(model: BpeModel, options: TokenizerOptions = {}) {
    const { merges, mergeOrigin } = model;
    this.cacheSize = options.cacheSize ?? 10_000;
    if (!Number.isInteger(this.cacheSize) || this.cacheSize < 0) throw new RangeError(`cacheSize must be a non-negative integer, got ${this.cacheSize}`);
    if (merges.length > MAX_VOCAB) throw new TokenizerFormatError(`${merges.length} merges are more than the limit ${MAX_VOCAB}`);
    this.byteEncoder = bytesToUnicode();
    const symbols = [...this.byteEncoder.values()];
    const vocab = model.vocab ?? [
      ...symbols,
      ...symbols.map((s) => s + END_OF_WORD),
      ...merges.map(([a, b]) => a + b),
      START_OF_TEXT,
      END_OF_TEXT,
    ];
    if (vocab.length > MAX_VOCAB) throw new TokenizerFormatError(`vocabulary of ${vocab.length} tokens is larger than the limit ${MAX_VOCAB}`);
    this.decoder = vocab;
    this.vocabSize = vocab.length;

    this.symbolBytes = new Int16Array(256 + 256).fill(-1);
    for (const [byte, symbol] of this.byteEncoder) this.symbolBytes[symbol.charCodeAt(0)] = byte;
    const encoder = new Map<string, number>();
    // A given vocabulary may hold anything; a derived one only joins byte symbols (the merges are checked below).
    const checkSymbols = model.vocab !== undefined;
    vocab.forEach((token, id) => {
      for (let i = 0; checkSymbols && i < token.length; i++) {
        const c = token.charCodeAt(i);
        if (c >= this.symbolBytes.length || this.symbolBytes[c]! < 0) {
          throw new TokenizerFormatError(`vocabulary entry ${id} ${preview(token)} holds ${preview(token[i]!)}, which stands for no byte`);
        }
      }
      encoder.set(token, id);
    });
    this.encoder = encoder;

    const required = (token: string, why: string): number => {
      const id = encoder.get(token);
      if (id === undefined) throw new TokenizerFormatError(`the vocabulary has no ${preview(token)} (${why})`);
      return id;
    };
    const made = new Uint8Array(vocab.length);
    for (const [byte, symbol] of this.byteEncoder) {
      made[(this.byteIds[byte] = required(symbol, `symbol of byte 0x${byte.toString(16)}`))] = 1;
      made[(this.byteEndIds[byte] = required(symbol + END_OF_WORD, `symbol of byte 0x${byte.toString(16)} ending a word`))] = 1;
    }
    this.sotToken = required(START_OF_TEXT, "start token");
    this.eotToken = required(END_OF_TEXT, "end token");

    // Each merge must combine symbols that exist by then; this also makes ranks grow along every chain of merges,
    // which the heap-ordered bpe relies on.
    this.mergedIds = new Int32Array(merges.length);
    this.pairRanks = new PairRanks(merges.length);
    const part = (symbol: string, rank: number) => {
      const id = encoder.get(symbol);
      if (id === undefined || !made[id]) {
        throw new TokenizerFormatError(`${mergeOrigin(rank)}: symbol ${preview(symbol)} is neither a byte symbol nor made by an earlier merge`);
      }
      return id;
    };
    for (let rank = 0; rank < merges.length; rank++) {
      const [a, b] = merges[rank]!;
      const merged = encoder.get(a + b);
      if (merged === undefined) throw new TokenizerFormatError(`${mergeOrigin(rank)}: merged symbol ${preview(a + b)} is not in the vocabulary`);
      const earlier = this.pairRanks.add(part(a, rank), part(b, rank), rank);
      if (earlier >= 0) throw new TokenizerFormatError(`${mergeOrigin(rank)}: merge "${a} ${b}" repeats ${mergeOrigin(earlier)}`);
      this.mergedIds[rank] = merged;
      made[merged] = 1;
    }
  }

  /** Rank of merging two symbols, or -1. */
  private rank(left: number, right: number): number {
    return this.pairRanks.get(left, right);
  }

  /**
   * The reference's bpe(): byte symbols of `token` (already mapped through bytesToUnicode) merged by rank, the
   * lowest-ranked pair everywhere first; returns the symbols joined by spaces. encode() uses an equivalent faster
   * form.
   */
  bpe(token: string): string {
    if (token === START_OF_TEXT || token === END_OF_TEXT) return token;
    const chars = [...token];
    let word = [...chars.slice(0, -1), chars[chars.length - 1] + END_OF_WORD];
    let pairs = getPairs(word);
    if (pairs.length === 0) return token + END_OF_WORD;
    const rankOf = ([a, b]: readonly [string, string]) => {
      const left = this.encoder.get(a);
      const right = this.encoder.get(b);
      const r = left === undefined || right === undefined ? -1 : this.rank(left, right);
      return r < 0 ? Infinity : r;
    };
    for (;;) {
      let best: readonly [string, string] | undefined;
      let bestRank = Infinity;
      for (const pair of pairs) {
        const r = rankOf(pair);
        if (r < bestRank) [best, bestRank] = [pair, r];
      }
      if (best === undefined) break;
      const [first, second] = best;
      const merged: string[] = [];
      for (let i = 0; i < word.length; i++) {
        if (word[i] === first && i + 1 < word.length && word[i + 1] === second) {
          merged.push(first + second);
          i++;
        } else {
          merged.push(word[i]!);
        }
      }
      word = merged;
      if (word.length === 1) break;
      pairs = getPairs(word);
    }
    return word.join(" ");
  }

  /**
   * bpe() on ids with a heap of (rank, position): merging one pair only creates pairs of higher rank (see the
   * constructor), so popping in (rank, position) order applies the same merges as the reference's passes.
   */
  private mergeSymbols(symbols: Int32Array): number[] {
    const n = symbols.length;
    const next = new Int32Array(n);
    const prev = new Int32Array(n);
    const heap = new NumberHeap();
    for (let i = 0; i < n; i++) {
      next[i] = i + 1 < n ? i + 1 : -1;
      prev[i] = i - 1;
      const r = i + 1 < n ? this.rank(symbols[i]!, symbols[i + 1]!) : -1;
      if (r >= 0) heap.push(r * POSITION_SPAN + i);
    }
    const pushPair = (i: number) => {
      const j = next[i]!;
      if (i < 0 || j < 0) return;
      const r = this.rank(symbols[i]!, symbols[j]!);
      if (r >= 0) heap.push(r * POSITION_SPAN + i);
    };
    while (heap.size > 0) {
      const key = heap.pop();
      const r = Math.floor(key / POSITION_SPAN);
      const i = key - r * POSITION_SPAN;
      const j = next[i]!;
      // entries go stale when a neighbour merged first; -1 marks a symbol absorbed into its left neighbour
      if (symbols[i]! < 0 || j < 0 || this.rank(symbols[i]!, symbols[j]!) !== r) continue;
      symbols[i] = this.mergedIds[r]!;
      symbols[j] = -1;
      next[i] = next[j]!;
      if (next[i]! >= 0) prev[next[i]!] = i;
      pushPair(prev[i]!);
      pushPair(i);
    }
    const out: number[] = [];
    for (let i = 0; i >= 0; i = next[i]!) out.push(symbols[i]!);
    return out;
  }

  private tokenIds(token: string): readonly number[] {
    if (token === START_OF_TEXT) return [this.sotToken];
    if (token === END_OF_TEXT) return [this.eotToken];
    const cached = this.cache.get(token);
    if (cached !== undefined) return cached;
    const bytes = utf8.encode(token);
    const symbols = new Int32Array(bytes.length);
    for (let i = 0; i < bytes.length; i++) symbols[i] = (i + 1 < bytes.length ? this.byteIds : this.byteEndIds)[bytes[i]!]!;
    const ids = this.mergeSymbols(symbols);
    if (this.cacheSize > 0) {
      if (this.cache.size >= this.cacheSize) this.cache.delete(this.cache.keys().next().value!);
      this.cache.set(token, ids);
    }
    return ids;
  }

  /** Token ids of a text, without start and end tokens. */
  encode(text: string): number[] {
    if (typeof text !== "string") throw new TypeError(`encode: expected a string, got ${typeof text}`);
    const cleaned = whitespaceClean(basicClean(text)).toLowerCase();
    const ids: number[] = [];
    // exec on the shared pattern: matchAll would clone it, and V8 recompiles a clone this large every time
    TOKEN_PATTERN.lastIndex = 0;
    for (let match = TOKEN_PATTERN.exec(cleaned); match !== null; match = TOKEN_PATTERN.exec(cleaned)) {
      for (const id of this.tokenIds(match[0])) ids.push(id);
    }
    return ids;
  }

  /** Text of token ids: their bytes decoded as UTF-8 (invalid sequences -> U+FFFD), word ends -> spaces. */
  decode(tokens: ArrayLike<number>): string {
    const bytes: number[] = [];
    for (let k = 0; k < tokens.length; k++) {
      const id = tokens[k]!;
      const token = Number.isInteger(id) && id >= 0 ? this.decoder[id] : undefined;
      if (token === undefined) throw new RangeError(`decode: token ${k} is ${id}, not an id in [0, ${this.vocabSize})`);
      for (let i = 0; i < token.length; i++) bytes.push(this.symbolBytes[token.charCodeAt(i)]!);
    }
    return new TextDecoder("utf-8", { ignoreBOM: true }).decode(Uint8Array.from(bytes)).replaceAll(END_OF_WORD, " ");
  }

  /** clip.tokenize: start token, ids, end token, zero padding; one row of `contextLength` per text. */
  tokenize(texts: string | readonly string[], options: TokenizeOptions = {}): TokenizedTexts {
    const { contextLength = 77, truncate = false } = options;
    if (!Number.isInteger(contextLength) || contextLength < 1 || contextLength > MAX_CONTEXT) {
      throw new RangeError(`contextLength must be an integer in [1, ${MAX_CONTEXT}], got ${contextLength}`);
    }
    const list = typeof texts === "string" ? [texts] : texts;
    const data = new Int32Array(list.length * contextLength);
    list.forEach((text, row) => {
      const tokens = [this.sotToken, ...this.encode(text), this.eotToken];
      if (tokens.length > contextLength) {
        if (!truncate) {
          throw new ContextLengthError(
            `text ${row} ${preview(text)} needs ${tokens.length} tokens with start and end, more than the context length ${contextLength} (pass truncate: true to cut it)`,
          );
        }
        tokens.length = contextLength;
        tokens[contextLength - 1] = this.eotToken;
      }
      data.set(tokens, row * contextLength);
    });
    return { data, shape: [list.length, contextLength] };
  }
}

/**
 * Where a tokenizer comes from:
 * - a path (Node only): OpenAI's merges file (.txt or .txt.gz), a Hugging Face tokenizer.json, or a directory with
 *   vocab.json + merges.txt (or tokenizer.json);
 * - bytes of a merges file (plain or gzip) or of a tokenizer.json;
 * - `{ merges }`, `{ vocabJson, mergesTxt }` or `{ tokenizerJson }` (bytes, text, or for JSON an already parsed value).
 */
export type TokenizerSource =
  | string
  | Uint8Array
  | { merges: TextInput }
  | { vocabJson: TextInput | object; mergesTxt: TextInput }
  | { tokenizerJson: TextInput | object };

export interface LoadTokenizerOptions extends TokenizerOptions {
  /** Merges read from an OpenAI-format file (default 48894, as the reference; a shorter file uses all its lines). */
  maxMerges?: number;
}

function looksLikeJson(bytes: Uint8Array): boolean {
  for (const b of bytes) {
    if (b === 0x20 || b === 0x09 || b === 0x0a || b === 0x0d || b === 0xef || b === 0xbb || b === 0xbf) continue;
    return b === 0x7b;
  }
  return false;
}

function modelFromBytes(bytes: Uint8Array, maxMerges: number, name: string): BpeModel {
  if (!looksLikeJson(bytes)) return parseOpenAiMerges(bytes, maxMerges);
  try {
    return parseTokenizerJson(bytes);
  } catch (error) {
    if (error instanceof TokenizerFormatError && /"model" must be an object/.test(error.message)) {
      throw new TokenizerFormatError(`${name}: a JSON file without "model" (a vocab.json?) needs its merges.txt: pass { vocabJson, mergesTxt } or their directory`);
    }
    throw error;
  }
}

/** A SimpleTokenizer from a file, a directory, or bytes (see TokenizerSource). */
export async function loadTokenizer(source: TokenizerSource, options: LoadTokenizerOptions = {}): Promise<SimpleTokenizer> {
  const maxMerges = options.maxMerges ?? OPENAI_MERGES;
  let model: BpeModel;
  if (typeof source === "string") {
    const { readPath } = await import("./text/node_files.js");
    const found = await readPath(source, ["vocab.json", "merges.txt", "tokenizer.json"]);
    if ("bytes" in found) {
      model = modelFromBytes(found.bytes, maxMerges, source);
    } else {
      const vocabJson = found.files.get("vocab.json");
      const mergesTxt = found.files.get("merges.txt");
      const tokenizerJson = found.files.get("tokenizer.json");
      if (vocabJson !== undefined && mergesTxt !== undefined) model = parseHfVocabMerges(vocabJson, mergesTxt);
      else if (tokenizerJson !== undefined) model = parseTokenizerJson(tokenizerJson);
      else throw new TokenizerFormatError(`${source}: the directory holds neither vocab.json with merges.txt nor tokenizer.json`);
    }
  } else if (source instanceof Uint8Array) {
    model = modelFromBytes(source, maxMerges, "tokenizer bytes");
  } else if ("merges" in source) {
    model = parseOpenAiMerges(source.merges, maxMerges);
  } else if ("vocabJson" in source) {
    model = parseHfVocabMerges(source.vocabJson, source.mergesTxt);
  } else {
    model = parseTokenizerJson(source.tokenizerJson);
  }
  return new SimpleTokenizer(model, options);
}
