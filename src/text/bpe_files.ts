// Readers for the files a CLIP BPE tokenizer comes in: OpenAI's merges list (`bpe_simple_vocab_16e6.txt[.gz]`),
// Hugging Face's `vocab.json` + `merges.txt`, and Hugging Face's `tokenizer.json`. Each yields a BpeModel; the
// SimpleTokenizer constructor checks that its merges and vocabulary fit together.

import { Gunzip } from "fflate";

import { pySplit } from "./charclass.js";
import { TokenizerFormatError } from "./errors.js";

/** A byte-level BPE model: the merges in rank order and the vocabulary (id -> token). */
export interface BpeModel {
  /** Absent: OpenAI's layout, built from the merges (byte symbols, the same ending a word, merges, specials). */
  readonly vocab?: readonly string[];
  readonly merges: ReadonlyArray<readonly [string, string]>;
  /** Where merge `rank` was read from, for error messages. */
  readonly mergeOrigin: (rank: number) => string;
}

/** How many merges clip/simple_tokenizer.py reads from OpenAI's file: a 49152-entry vocabulary less 256 bytes and 2 specials. */
export const OPENAI_MERGES = 49152 - 256 - 2;
/** Largest vocabulary (and merges list) accepted. */
export const MAX_VOCAB = 1 << 20;
/** Largest (decompressed) text accepted: 20 times the largest CLIP tokenizer file, OpenAI's 3.2 MB merges list. */
const MAX_TEXT_BYTES = 1 << 26;
/** Compressed bytes fed to the inflater at a time: bounds what one step can expand to. */
const GZIP_STEP = 1 << 16;

export const START_OF_TEXT = "<|startoftext|>";
export const END_OF_TEXT = "<|endoftext|>";
export const END_OF_WORD = "</w>";

export type TextInput = Uint8Array | string;

function preview(text: string): string {
  return JSON.stringify(text.length > 60 ? text.slice(0, 60) + "…" : text);
}

function isGzip(bytes: Uint8Array): boolean {
  return bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b;
}

/** Decompresses gzip data, stopping once `maxLines` lines are complete (the rest of the file is not needed). */
function gunzipLines(bytes: Uint8Array, maxLines: number, what: string): Uint8Array {
  const chunks: Uint8Array[] = [];
  let total = 0;
  let lines = 0;
  let done = false;
  const inflater = new Gunzip((chunk) => {
    if (done) return;
    let take = chunk.length;
    for (let at = chunk.indexOf(0x0a); at >= 0; at = chunk.indexOf(0x0a, at + 1)) {
      if (++lines >= maxLines) {
        take = at + 1;
        done = true;
        break;
      }
    }
    total += take;
    if (total > MAX_TEXT_BYTES) throw new TokenizerFormatError(`${what}: decompresses to more than ${MAX_TEXT_BYTES} bytes`);
    chunks.push(chunk.subarray(0, take));
  });
  try {
    for (let pos = 0; pos < bytes.length && !done; pos += GZIP_STEP) {
      inflater.push(bytes.subarray(pos, pos + GZIP_STEP), pos + GZIP_STEP >= bytes.length);
    }
  } catch (error) {
    if (error instanceof TokenizerFormatError) throw error;
    throw new TokenizerFormatError(`${what}: corrupt gzip data (${(error as Error).message})`);
  }
  const out = new Uint8Array(total);
  let offset = 0;
  for (const chunk of chunks) {
    out.set(chunk, offset);
    offset += chunk.length;
  }
  return out;
}

/** UTF-8 text of a file (gunzipped first when it is gzip), at most its first `maxLines` lines. */
function readText(input: TextInput, what: string, maxLines = Infinity): string {
  if (typeof input === "string") return input;
  const bytes = isGzip(input) ? gunzipLines(input, maxLines, what) : input;
  if (bytes.length > MAX_TEXT_BYTES) throw new TokenizerFormatError(`${what}: larger than ${MAX_TEXT_BYTES} bytes`);
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    throw new TokenizerFormatError(`${what}: not valid UTF-8`);
  }
}

/** The first `maxLines` lines of a text (split on "\n"; a final empty line after the last "\n" is dropped). */
function splitLines(text: string, maxLines: number): string[] {
  const lines: string[] = [];
  let pos = 0;
  while (lines.length < maxLines && pos <= text.length) {
    const newline = text.indexOf("\n", pos);
    if (newline < 0) {
      if (pos < text.length) lines.push(text.slice(pos));
      break;
    }
    lines.push(text.slice(pos, newline));
    pos = newline + 1;
  }
  return lines;
}

function parseMergeLine(line: string, where: string): [string, string] {
  const parts = pySplit(line);
  if (parts.length !== 2) {
    throw new TokenizerFormatError(`${where}: expected two symbols separated by a space, found ${parts.length} in ${preview(line)}`);
  }
  return [parts[0]!, parts[1]!];
}

function checkCount(count: number, what: string): void {
  if (!Number.isInteger(count) || count < 1 || count > MAX_VOCAB) {
    throw new RangeError(`${what} must be an integer in [1, ${MAX_VOCAB}], got ${count}`);
  }
}

/**
 * OpenAI's merges file: line 1 a header (it must mention "#version"), then one merge per line. Like the reference,
 * only the first `maxMerges` merges are read (OpenAI's file holds 262144; the model uses 48894); a shorter file
 * uses all of its lines.
 */
export function parseOpenAiMerges(input: TextInput, maxMerges = OPENAI_MERGES): BpeModel {
  checkCount(maxMerges, "maxMerges");
  const what = "merges file";
  const lines = splitLines(readText(input, what, maxMerges + 1), maxMerges + 1);
  if (lines.length === 0) throw new TokenizerFormatError(`${what}: empty`);
  if (!lines[0]!.includes("#version")) {
    throw new TokenizerFormatError(`${what} line 1: expected a "#version" header, found ${preview(lines[0]!)}`);
  }
  if (lines.length === 1) throw new TokenizerFormatError(`${what}: no merges after the header`);
  const merges = lines.slice(1).map((line, i) => parseMergeLine(line, `${what} line ${i + 2}`));
  return { merges, mergeOrigin: (rank) => `${what} line ${rank + 2}` };
}

function parseJson(input: TextInput | object, what: string): unknown {
  if (typeof input === "object" && !(input instanceof Uint8Array)) return input;
  const text = readText(input, what);
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new TokenizerFormatError(`${what}: invalid JSON (${(error as Error).message})`);
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value) && !(value instanceof Uint8Array);
}

/** id -> token from token -> id pairs; the ids must be exactly 0..n-1. */
function vocabFromEntries(entries: ReadonlyArray<readonly [string, unknown]>, what: string): string[] {
  const n = entries.length;
  if (n === 0) throw new TokenizerFormatError(`${what}: empty vocabulary`);
  if (n > MAX_VOCAB) throw new TokenizerFormatError(`${what}: ${n} entries, more than the limit ${MAX_VOCAB}`);
  const vocab = new Array<string | undefined>(n).fill(undefined);
  for (const [token, id] of entries) {
    if (typeof id !== "number" || !Number.isInteger(id) || id < 0 || id >= n) {
      throw new TokenizerFormatError(`${what}: the id of ${preview(token)} must be an integer in [0, ${n}), found ${JSON.stringify(id)}`);
    }
    const other = vocab[id];
    if (other !== undefined) throw new TokenizerFormatError(`${what}: id ${id} is given to both ${preview(other)} and ${preview(token)}`);
    vocab[id] = token;
  }
  return vocab as string[];
}

/** Hugging Face `vocab.json` (token -> id) and `merges.txt` (optional "#version" header, then one merge a line). */
export function parseHfVocabMerges(vocabJson: TextInput | object, mergesTxt: TextInput): BpeModel {
  const parsed = parseJson(vocabJson, "vocab.json");
  if (!isRecord(parsed)) throw new TokenizerFormatError("vocab.json: expected an object mapping tokens to ids");
  const vocab = vocabFromEntries(Object.entries(parsed), "vocab.json");
  const lines = splitLines(readText(mergesTxt, "merges.txt"), MAX_VOCAB + 2);
  const first = lines[0]?.startsWith("#version") ? 1 : 0;
  if (lines.length - first > MAX_VOCAB) throw new TokenizerFormatError(`merges.txt: more than ${MAX_VOCAB} merges`);
  const merges = lines.slice(first).map((line, i) => parseMergeLine(line, `merges.txt line ${i + first + 1}`));
  if (merges.length === 0) throw new TokenizerFormatError("merges.txt: no merges");
  return { vocab, merges, mergeOrigin: (rank) => `merges.txt line ${rank + first + 1}` };
}

/** Hugging Face `tokenizer.json` with a BPE model (`model.vocab`, `model.merges`) and optional `added_tokens`. */
export function parseTokenizerJson(json: TextInput | object): BpeModel {
  const what = "tokenizer.json";
  const root = parseJson(json, what);
  if (!isRecord(root)) throw new TokenizerFormatError(`${what}: expected a JSON object`);
  const model = root["model"];
  if (!isRecord(model)) throw new TokenizerFormatError(`${what}: "model" must be an object`);
  if (model["type"] !== undefined && model["type"] !== "BPE") {
    throw new TokenizerFormatError(`${what}: model.type must be "BPE", found ${JSON.stringify(model["type"])}`);
  }
  const suffix = model["end_of_word_suffix"];
  if (suffix !== undefined && suffix !== null && suffix !== END_OF_WORD) {
    throw new TokenizerFormatError(`${what}: model.end_of_word_suffix must be "${END_OF_WORD}", found ${JSON.stringify(suffix)}`);
  }
  const prefix = model["continuing_subword_prefix"];
  if (prefix !== undefined && prefix !== null && prefix !== "") {
    throw new TokenizerFormatError(`${what}: model.continuing_subword_prefix is not supported (found ${JSON.stringify(prefix)})`);
  }
  const vocabObject = model["vocab"];
  if (!isRecord(vocabObject)) throw new TokenizerFormatError(`${what}: model.vocab must be an object mapping tokens to ids`);
  const entries = new Map<string, unknown>(Object.entries(vocabObject));
  const added = root["added_tokens"] ?? [];
  if (!Array.isArray(added)) throw new TokenizerFormatError(`${what}: added_tokens must be an array`);
  added.forEach((token: unknown, i) => {
    if (!isRecord(token) || typeof token["content"] !== "string") {
      throw new TokenizerFormatError(`${what}: added_tokens[${i}] must be an object with a string "content"`);
    }
    const content = token["content"];
    const known = entries.get(content);
    if (known === undefined) entries.set(content, token["id"]);
    else if (known !== token["id"]) {
      throw new TokenizerFormatError(`${what}: added_tokens[${i}] gives ${preview(content)} id ${JSON.stringify(token["id"])}, model.vocab gives ${JSON.stringify(known)}`);
    }
  });
  const vocab = vocabFromEntries([...entries], `${what} model.vocab`);
  const rawMerges = model["merges"];
  if (!Array.isArray(rawMerges)) throw new TokenizerFormatError(`${what}: model.merges must be an array`);
  if (rawMerges.length > MAX_VOCAB) throw new TokenizerFormatError(`${what}: more than ${MAX_VOCAB} merges`);
  if (rawMerges.length === 0) throw new TokenizerFormatError(`${what}: model.merges is empty`);
  const merges = rawMerges.map((merge: unknown, i): [string, string] => {
    const where = `${what} model.merges[${i}]`;
    if (typeof merge === "string") {
      const parts = merge.split(" ");
      if (parts.length === 2 && parts[0] !== "" && parts[1] !== "") return [parts[0]!, parts[1]!];
    } else if (Array.isArray(merge) && merge.length === 2 && typeof merge[0] === "string" && typeof merge[1] === "string") {
      if (merge[0] !== "" && merge[1] !== "") return [merge[0], merge[1]];
    }
    throw new TokenizerFormatError(`${where}: expected "a b" or ["a", "b"], found ${preview(JSON.stringify(merge) ?? String(merge))}`);
  });
  return { vocab, merges, mergeOrigin: (rank) => `${what} model.merges[${rank}]` };
}
