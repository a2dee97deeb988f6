// Tokenizer files through loadTokenizer: OpenAI merges (plain and gzip), Hugging Face vocab.json + merges.txt, and
// tokenizer.json, built from a small BPE vocabulary learnt here. Junk, repeated, reordered and non-byte merge lines,
// broken UTF-8, corrupt/truncated/bomb gzip, lying or missing ids, wrong field types; every tokenizer that loads then
// tokenizes a few texts.
import { gzipSync as nodeGzip } from "node:zlib";
import { gzipSync } from "fflate";
import { bytesToUnicode, loadTokenizer, TokenizerFormatError, type TokenizerSource } from "../../src/simple_tokenizer.js";
import type { FuzzTarget } from "../harness.js";
import { concat, havoc, mutateBytes, utf8 } from "../mutate.js";
import type { Rng } from "../rng.js";

export type TokenizerCase =
  | { kind: "bytes"; bytes: Uint8Array; maxMerges?: number }
  | { kind: "hf"; vocab: Uint8Array; merges: Uint8Array };

const WORDS = (
  "the of and to in is was that for on with as by at from his her they this which be an are or had not but " +
  "photo picture image dog cat bird car tree house person people city street water mountain food diagram " +
  "a an of running jumped happily beautiful colourful café naïve façade über straße 日本語 中文 한국어 привет мир " +
  "emoji 🙂 😀 tokenizer merges vocabulary encoder decoder clip contrastive language image pretraining"
).split(" ");

/** Byte-level BPE merges learnt from WORDS (each word weighted by its position), OpenAI style ("</w>" ends a word). */
function learnMerges(count: number): string[] {
  const enc = bytesToUnicode();
  const words = WORDS.map((w, i) => {
    const syms = [...utf8(w)].map((b) => enc.get(b)!);
    syms[syms.length - 1] += "</w>";
    return { syms, freq: WORDS.length - i };
  });
  const merges: string[] = [];
  for (let m = 0; m < count; m++) {
    const counts = new Map<string, number>();
    for (const { syms, freq } of words) for (let i = 0; i + 1 < syms.length; i++) counts.set(`${syms[i]} ${syms[i + 1]}`, (counts.get(`${syms[i]} ${syms[i + 1]}`) ?? 0) + freq);
    let best = "";
    let bestCount = 0;
    for (const [pair, c] of counts) if (c > bestCount || (c === bestCount && pair < best)) (best = pair), (bestCount = c);
    if (bestCount === 0) break;
    merges.push(best);
    const [a, b] = best.split(" ") as [string, string];
    for (const w of words) {
      const out: string[] = [];
      for (let i = 0; i < w.syms.length; i++) {
        if (i + 1 < w.syms.length && w.syms[i] === a && w.syms[i + 1] === b) out.push(a + b), i++;
        else out.push(w.syms[i]!);
      }
      w.syms = out;
    }
  }
  return merges;
}

interface Model {
  merges: string[];
  vocab: string[];
}

function openAiVocab(merges: readonly string[]): string[] {
  const symbols = [...bytesToUnicode().values()];
  return [...symbols, ...symbols.map((s) => s + "</w>"), ...merges.map((m) => m.replace(" ", "")), "<|startoftext|>", "<|endoftext|>"];
}

const TEXTS = ["a photo of a dog", "A PICTURE of 日本語 and émojis 🙂🙂", "x".repeat(500), "", "the the the &amp; &lt;3", "\u0000\u202e mixed\tspace\n"];

const JUNK_LINES = ["", "a", "a b c", "\t", "a\u00a0b", "a  b", " a b", "a b ", "日 本", "a\u3000b", "#version: 0.2", "a\rb", "\u2028", "x".repeat(100_000) + " y", "\u0100 \u0101", "Ġ t", "a</w> b</w>"];

function mutateLines(rng: Rng, lines: string[]): string {
  const out = lines.slice();
  const k = rng.range(1, 3);
  for (let e = 0; e < k; e++) {
    const i = rng.range(0, out.length);
    switch (rng.int(7)) {
      case 0:
        out.splice(i, 0, rng.pick(JUNK_LINES));
        break;
      case 1:
        out.splice(i, 0, out[rng.int(out.length)] ?? "");
        break;
      case 2: {
        const j = rng.int(out.length);
        [out[i], out[j]] = [out[j]!, out[i]!];
        break;
      }
      case 3:
        out.splice(i, 1);
        break;
      case 4:
        out[i] = (out[i] ?? "").replace(/./u, rng.pick(["日", "\u0000", "\ufffd", " ", "\ud800"]));
        break;
      case 5:
        for (let n = rng.pick([10, 1000, 60_000]); n > 0; n--) out.push(rng.chance(0.5) ? "a b" : `${rng.pick(out) ?? "a b"}`);
        break;
      default:
        out[0] = rng.pick(["", "#version", "# version: 0.2", "\ufeff#version: 0.2", "version: 0.2"]);
    }
  }
  return out.join(rng.chance(0.9) ? "\n" : "\r\n") + (rng.chance(0.8) ? "\n" : "");
}

let gzipBomb: Uint8Array | undefined;
/** 96 MiB of "a" without a newline, gzipped: decompression must stop at the 64 MiB text size limit. */
function bomb(): Uint8Array {
  gzipBomb ??= new Uint8Array(nodeGzip(new Uint8Array(96 * 2 ** 20).fill(0x61)));
  return gzipBomb;
}

function mutateVocab(rng: Rng, vocab: Record<string, unknown>): string {
  const keys = Object.keys(vocab);
  const key = rng.pick(keys);
  switch (rng.int(7)) {
    case 0:
      vocab[key] = rng.pick([-1, 1.5, 2 ** 53, keys.length, "3", null, [1], vocab[rng.pick(keys)]]);
      return `id of ${JSON.stringify(key)} = ${JSON.stringify(vocab[key])}`;
    case 1:
      delete vocab[key];
      return `drop ${JSON.stringify(key)}`;
    case 2: {
      const v = vocab[key];
      delete vocab[key];
      const to = rng.pick(["日本", "", "__proto__", "x".repeat(10_000), "a\u0000", "<|endoftext|>", "hasOwnProperty"]);
      Object.defineProperty(vocab, to, { value: v, enumerable: true, configurable: true, writable: true });
      return `rename ${JSON.stringify(key)} → ${JSON.stringify(to).slice(0, 30)}`;
    }
    case 3:
      Object.defineProperty(vocab, rng.pick(["zz", "__proto__", "日"]), { value: keys.length, enumerable: true, configurable: true, writable: true });
      return "extra token";
    default: {
      const n = rng.pick([2, 50]);
      for (let i = 0; i < n; i++) {
        const a = rng.pick(keys);
        const b = rng.pick(keys);
        [vocab[a], vocab[b]] = [vocab[b], vocab[a]];
      }
      return `${n} ids swapped`;
    }
  }
}

function mutateTokenizerJson(rng: Rng, root: { model: Record<string, unknown>; added_tokens: unknown }): string {
  const model = root.model;
  switch (rng.int(6)) {
    case 0:
      return mutateVocab(rng, model["vocab"] as Record<string, unknown>);
    case 1: {
      const merges = model["merges"] as unknown[];
      const i = rng.int(merges.length);
      merges[i] = rng.pick([["a"], ["a", "b", "c"], "a b c", "ab", 5, null, [1, 2], ["", "a"], "a  b", merges[rng.int(merges.length)], ["t", "h"]]);
      return `merges[${i}] = ${JSON.stringify(merges[i])}`;
    }
    case 2: {
      const field = rng.pick(["type", "end_of_word_suffix", "continuing_subword_prefix", "vocab", "merges"]);
      model[field] = rng.pick(["WordPiece", "##", "", null, 7, [], {}, "BPE", "</w>"]);
      return `model.${field} = ${JSON.stringify(model[field])}`;
    }
    case 3:
      root.added_tokens = rng.pick([null, {}, [{ id: 1 }], [{ content: "<|endoftext|>", id: -4 }], [{ content: "new", id: 10 ** 9 }], [7], [{ content: 5 }]]);
      return `added_tokens = ${JSON.stringify(root.added_tokens)}`;
    case 4: {
      const merges = model["merges"] as unknown[];
      merges.reverse();
      return "merges reversed";
    }
    default: {
      const merges = model["merges"] as unknown[];
      const n = rng.pick([10, 10_000]);
      for (let i = 0; i < n; i++) merges.push(merges[rng.int(merges.length)]);
      return `${n} merges repeated`;
    }
  }
}

export function tokenizerTarget(): FuzzTarget<TokenizerCase> {
  const merges = learnMerges(400);
  const model: Model = { merges, vocab: openAiVocab(merges) };
  const mergesTxt = ["#version: 0.2", ...model.merges];
  const vocabObject = (): Record<string, unknown> => Object.fromEntries(model.vocab.map((t, i) => [t, i]));
  const tokenizerJson = (pairs: boolean) => ({
    model: { type: "BPE", vocab: vocabObject(), merges: pairs ? model.merges.map((m) => m.split(" ")) : model.merges.slice(), end_of_word_suffix: "</w>" },
    added_tokens: [
      { id: model.vocab.length - 2, content: "<|startoftext|>" },
      { id: model.vocab.length - 1, content: "<|endoftext|>" },
    ],
  });
  return {
    name: "tokenizer",
    errorName: "TokenizerFormatError",
    isTyped: (e) => e instanceof TokenizerFormatError,
    async run(c) {
      const source: TokenizerSource = c.kind === "bytes" ? c.bytes : { vocabJson: c.vocab, mergesTxt: c.merges };
      const tok = await loadTokenizer(source, c.kind === "bytes" && c.maxMerges ? { maxMerges: c.maxMerges } : {});
      const rows = tok.tokenize(TEXTS, { truncate: true });
      if (rows.shape.join() !== `${TEXTS.length},77` || rows.data.some((id) => id < 0 || id >= tok.vocabSize)) {
        throw new Error(`oracle: tokenize gave shape [${rows.shape.join(", ")}] or ids outside the vocabulary`);
      }
      return tok.decode(rows.data.subarray(0, 77));
    },
    files: (c): Record<string, Uint8Array> => (c.kind === "bytes" ? { "case.tokenizer": c.bytes } : { "vocab.json": c.vocab, "merges.txt": c.merges }),
    generate(rng) {
      const mode = rng.weighted([30, 10, 10, 20, 20, 10]);
      if (mode === 0) {
        const text = mutateLines(rng, mergesTxt);
        const gz = rng.chance(0.3);
        const maxMerges = rng.chance(0.2) ? rng.pick([1, 5, 399, 400, 401]) : undefined;
        return { input: { kind: "bytes", bytes: gz ? gzipSync(utf8(text)) : utf8(text), maxMerges }, how: `merges lines edited${gz ? ", gzip" : ""}${maxMerges ? `, maxMerges ${maxMerges}` : ""}` };
      }
      if (mode === 1) {
        const gz = gzipSync(utf8(mergesTxt.join("\n") + "\n"));
        const r = rng.int(8); // the bomb (r = 2) costs 64 MiB of inflation: rarer than the cheap cases
        if (r === 0) return { input: { kind: "bytes", bytes: gz.subarray(0, rng.int(gz.length)) }, how: "gzip cut" };
        if (r === 1) return { input: { kind: "bytes", bytes: concat(gz, gz) }, how: "two gzip members" };
        if (r === 2) return { input: { kind: "bytes", bytes: bomb() }, how: "gzip bomb (96 MiB without a newline)" };
        const h = havoc(rng, gz, [0, 3, 10, gz.length - 8]);
        return { input: { kind: "bytes", bytes: h.bytes }, how: `gzip: ${h.how}` };
      }
      if (mode === 2) {
        const h = havoc(rng, utf8(mergesTxt.join("\n") + "\n"));
        return { input: { kind: "bytes", bytes: h.bytes }, how: `merges bytes: ${h.how}` };
      }
      if (mode === 3) {
        const vocab = vocabObject();
        const lines = mergesTxt.slice();
        let how: string;
        let mergesBytes: Uint8Array;
        if (rng.chance(0.5)) {
          how = mutateVocab(rng, vocab);
          mergesBytes = utf8(lines.join("\n"));
        } else {
          how = "merges.txt lines edited";
          mergesBytes = utf8(mutateLines(rng, lines));
        }
        return { input: { kind: "hf", vocab: utf8(JSON.stringify(vocab)), merges: mergesBytes }, how: `vocab.json + merges.txt: ${how}` };
      }
      if (mode === 4) {
        const root = tokenizerJson(rng.chance(0.5));
        const how = mutateTokenizerJson(rng, root);
        return { input: { kind: "bytes", bytes: utf8(JSON.stringify(root)) }, how: `tokenizer.json: ${how}` };
      }
      const json = utf8(JSON.stringify(tokenizerJson(false)));
      const r = rng.chance(0.5) ? mutateBytes(rng, json) : { bytes: concat(utf8("[".repeat(rng.pick([1000, 200_000]))), json), how: "deep nesting" };
      return { input: { kind: "bytes", bytes: r.bytes }, how: `tokenizer.json bytes: ${r.how}` };
    },
  };
}
