import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

import fc from "fast-check";
import { gunzipSync, gzipSync } from "fflate";
import { beforeAll, describe, expect, test } from "vitest";

import {
  bytesToUnicode,
  ContextLengthError,
  getPairs,
  loadTokenizer,
  parseOpenAiMerges,
  SimpleTokenizer,
  TokenizerFormatError,
} from "../src/simple_tokenizer.js";
import { openaiVocabPath } from "../src/assets.js";

const GOLDEN = fileURLToPath(new URL("golden/tokenizer/", import.meta.url));
const FIXTURES = fileURLToPath(new URL("../tools/fixtures/", import.meta.url));
/** OpenAI's vocab as the package ships it. */
const MERGES_GZ = await openaiVocabPath();

interface ReferenceCase {
  text: string;
  ids: number[];
  tokenized: number[];
}
interface ExtraCase {
  text: string;
  ids: number[];
}

const readJsonl = <T>(path: string): T[] =>
  readFileSync(path, "utf8")
    .split("\n")
    .filter((line) => line !== "")
    .map((line) => JSON.parse(line) as T);

/** The first `count` merge lines of OpenAI's file (without header). */
function openAiMergeLines(count: number): string[] {
  const text = new TextDecoder().decode(gunzipSync(readFileSync(MERGES_GZ)));
  return text.split("\n").slice(1, count + 1);
}

/** OpenAI's vocabulary layout for the given merge lines. */
function openAiVocab(lines: readonly string[]): string[] {
  const symbols = [...bytesToUnicode().values()];
  return [
    ...symbols,
    ...symbols.map((s) => s + "</w>"),
    ...lines.map((line) => line.split(" ").join("")),
    "<|startoftext|>",
    "<|endoftext|>",
  ];
}

const utf8 = (text: string) => new TextEncoder().encode(text);

describe("OpenAI's vocab in the package", () => {
  test("openaiVocabPath(): weights/openai/, OpenAI's bytes, its MIT notice beside it, shipped by package.json files", async () => {
    const repo = fileURLToPath(new URL("../", import.meta.url));
    expect(MERGES_GZ).toBe(join(repo, "weights/openai/bpe_simple_vocab_16e6.txt.gz"));
    expect(createHash("sha256").update(readFileSync(MERGES_GZ)).digest("hex"))
      .toBe("924691ac288e54409236115652ad4aa250f48203de50a9e4722a6ecd48d6804a");
    const notice = readFileSync(join(repo, "weights/openai/LICENSE"), "utf8");
    expect(notice).toMatch(/^MIT License\n\nCopyright \(c\) 2021 OpenAI\n/);
    expect(notice).toContain("The above copyright notice and this permission notice shall be included in all");
    expect((JSON.parse(readFileSync(join(repo, "package.json"), "utf8")) as { files: string[] }).files).toContain("weights");
    // the built module (dist/src/assets.js, two levels below the package root) finds the same file
    const built = (await import(join(repo, "dist/src/assets.js"))) as { openaiVocabPath(): Promise<string> };
    expect(await built.openaiVocabPath()).toBe(MERGES_GZ);
  });
});

describe("against the reference (openai/CLIP with ftfy 6.3.1)", () => {
  let tokenizer: SimpleTokenizer;
  let loadMs = 0;
  const cases = readJsonl<ReferenceCase>(join(GOLDEN, "tokenizer_cases.jsonl"));
  const extra = readJsonl<ExtraCase>(join(FIXTURES, "tokenizer_extra_cases.jsonl"));

  beforeAll(async () => {
    const start = performance.now();
    tokenizer = await loadTokenizer(MERGES_GZ);
    loadMs = performance.now() - start;
    console.log(`loaded the 48894-merge vocabulary in ${loadMs.toFixed(0)} ms`);
  });

  test("vocabulary layout: 49408 tokens, start 49406, end 49407", () => {
    expect(tokenizer.vocabSize).toBe(49408);
    expect(tokenizer.sotToken).toBe(49406);
    expect(tokenizer.eotToken).toBe(49407);
    expect(tokenizer.decoder[256]).toBe("!</w>");
    expect(tokenizer.decoder[512]).toBe("in");
    expect(loadMs).toBeLessThan(2000);
  });

  test("all 400 reference cases: encode ids and tokenize rows equal", () => {
    expect(cases).toHaveLength(400);
    const start = performance.now();
    let ids = 0;
    let rows = 0;
    const failures: string[] = [];
    for (const c of cases) {
      const got = tokenizer.encode(c.text);
      if (JSON.stringify(got) === JSON.stringify(c.ids)) ids++;
      else failures.push(`ids ${JSON.stringify(c.text)}: ${JSON.stringify(got)}`);
      const row = tokenizer.tokenize(c.text, { truncate: true });
      expect(row.shape).toEqual([1, 77]);
      if (JSON.stringify([...row.data]) === JSON.stringify(c.tokenized)) rows++;
      else failures.push(`row ${JSON.stringify(c.text)}`);
    }
    const ms = performance.now() - start;
    console.log(`reference cases: ids ${ids}/${cases.length}, tokenized rows ${rows}/${cases.length}, ${ms.toFixed(0)} ms for encode + tokenize`);
    expect(failures).toEqual([]);
    expect(ms).toBeLessThan(1000);
  });

  test("1401 extra cases (mojibake, entities, control characters, case folding): ids equal", () => {
    const failures = extra.filter((c) => JSON.stringify(tokenizer.encode(c.text)) !== JSON.stringify(c.ids));
    console.log(`extra cases: ids ${extra.length - failures.length}/${extra.length}`);
    expect(failures.map((c) => c.text)).toEqual([]);
  });

  test("batch tokenize stacks the rows", () => {
    const texts = cases.slice(0, 5).map((c) => c.text);
    const batch = tokenizer.tokenize(texts, { truncate: true });
    expect(batch.shape).toEqual([5, 77]);
    expect(batch.data).toBeInstanceOf(Int32Array);
    expect([...batch.data]).toEqual(cases.slice(0, 5).flatMap((c) => c.tokenized));
  });

  test("an over-long text throws a ContextLengthError naming it, or is truncated keeping the end token", () => {
    const text = "word ".repeat(80).trim();
    expect(() => tokenizer.tokenize(["fine", text])).toThrow(ContextLengthError);
    expect(() => tokenizer.tokenize(text)).toThrow(/"word word word.*82 tokens.*context length 77/);
    const row = tokenizer.tokenize(text, { truncate: true }).data;
    expect(row[0]).toBe(49406);
    expect(row[76]).toBe(49407);
    expect([...row.slice(1, 76)]).toEqual(tokenizer.encode(text).slice(0, 75));
    // 75 ids + start + end fit exactly
    const exact = "word ".repeat(75).trim();
    expect(tokenizer.tokenize(exact).data[76]).toBe(49407);
    expect(() => tokenizer.tokenize("word ".repeat(76))).toThrow(ContextLengthError);
  });

  test("context length: other sizes, and bad values", () => {
    const short = tokenizer.tokenize("a photo of a dog", { contextLength: 4, truncate: true });
    expect(short.shape).toEqual([1, 4]);
    expect([...short.data]).toEqual([49406, ...tokenizer.encode("a photo").slice(0, 2), 49407]);
    expect(tokenizer.tokenize("x", { contextLength: 1, truncate: true }).data).toEqual(new Int32Array([49407]));
    const wide = tokenizer.tokenize("a dog", { contextLength: 10 });
    expect([...wide.data]).toEqual([49406, 320, 1929, 49407, 0, 0, 0, 0, 0, 0]);
    for (const contextLength of [0, -1, 2.5, NaN]) {
      expect(() => tokenizer.tokenize("a", { contextLength })).toThrow(RangeError);
    }
    expect(tokenizer.tokenize([]).shape).toEqual([0, 77]);
  });

  test("decode: Python's decode of random ids (invalid UTF-8 -> U+FFFD, </w> -> space)", () => {
    const decodeCases = readJsonl<{ ids: number[]; text: string }>(join(FIXTURES, "tokenizer_decode_cases.jsonl"));
    for (const c of decodeCases) expect(tokenizer.decode(c.ids)).toBe(c.text);
    expect(tokenizer.decode([49406, 320, 1929, 49407])).toBe("<|startoftext|>a dog <|endoftext|>");
    expect(() => tokenizer.decode([49408])).toThrow(/token 0 is 49408/);
    expect(() => tokenizer.decode([1, -1])).toThrow(RangeError);
    expect(() => tokenizer.decode([1.5])).toThrow(RangeError);
  });

  test("decode(encode(text)) gives the words back, each followed by a space", () => {
    const word = fc.stringMatching(/^[a-z]{1,12}$/);
    fc.assert(
      fc.property(fc.array(word, { minLength: 1, maxLength: 8 }), (words) => {
        expect(tokenizer.decode(tokenizer.encode(words.join(" ")))).toBe(words.join(" ") + " ");
      }),
    );
    expect(tokenizer.decode(tokenizer.encode("It's 3.14 café!"))).toBe("it 's 3 . 1 4 café ! ");
  });

  test("the heap-ordered BPE of encode equals the reference's pass-by-pass bpe()", () => {
    const encoder = bytesToUnicode();
    const letter = fc.constantFrom(..."abcdefghijklmnopqrstuvwxyzéßüñçø日本語中文한국абв");
    fc.assert(
      fc.property(fc.array(letter, { minLength: 1, maxLength: 200 }), (letters) => {
        const word = letters.join("");
        const symbols = [...new TextEncoder().encode(word)].map((b) => encoder.get(b)!).join("");
        expect(tokenizer.encode(word).map((id) => tokenizer.decoder[id]).join(" ")).toBe(tokenizer.bpe(symbols));
      }),
      { numRuns: 300 },
    );
    expect(tokenizer.bpe("hello")).toBe("hello</w>");
    expect(tokenizer.bpe("<|endoftext|>")).toBe("<|endoftext|>");
  });

  test("a Hugging Face vocab.json + merges.txt made from OpenAI's merges tokenizes identically", async () => {
    const lines = openAiMergeLines(48894);
    const vocab = openAiVocab(lines);
    const vocabJson = JSON.stringify(Object.fromEntries(vocab.map((token, id) => [token, id])));
    const mergesTxt = "#version: 0.2\n" + lines.join("\n") + "\n";
    const hf = await loadTokenizer({ vocabJson, mergesTxt });
    expect(hf.vocabSize).toBe(49408);
    for (const c of cases) expect(hf.encode(c.text)).toEqual(c.ids);
    // a directory with both files is read the same way
    const dir = mkdtempSync(join(tmpdir(), "clip-tokenizer-"));
    writeFileSync(join(dir, "vocab.json"), vocabJson);
    writeFileSync(join(dir, "merges.txt"), mergesTxt);
    const fromDir = await loadTokenizer(dir);
    expect(fromDir.encode(cases[8]!.text)).toEqual(cases[8]!.ids);
  });
});

describe("smaller vocabularies in every format", () => {
  const count = 3000;
  let lines: string[] = [];
  let reference: SimpleTokenizer;
  const texts = readJsonl<ExtraCase>(join(FIXTURES, "tokenizer_extra_cases.jsonl"))
    .map((c) => c.text)
    .slice(0, 300);

  beforeAll(() => {
    lines = openAiMergeLines(count);
    reference = new SimpleTokenizer(parseOpenAiMerges("#version: 0.2\n" + lines.join("\n")));
  });

  test("an OpenAI-format file shorter than 48894 merges uses all its lines", () => {
    expect(reference.vocabSize).toBe(512 + lines.length + 2);
    expect(reference.sotToken).toBe(512 + lines.length);
    expect(reference.eotToken).toBe(513 + lines.length);
    const gz = gzipSync(utf8("#version: 0.2\n" + lines.join("\n") + "\n"));
    const fromGz = new SimpleTokenizer(parseOpenAiMerges(gz));
    const limited = new SimpleTokenizer(parseOpenAiMerges(gz, 100));
    expect(limited.vocabSize).toBe(512 + 100 + 2);
    for (const text of texts) expect(fromGz.encode(text)).toEqual(reference.encode(text));
  });

  test("vocab.json with shuffled ids + merges.txt: same tokens, ids through the permutation", async () => {
    const vocab = openAiVocab(lines);
    const permutation = vocab.map((_, i) => i);
    const random = fc.sample(fc.integer(), { numRuns: vocab.length, seed: 7 });
    for (let i = permutation.length - 1; i > 0; i--) {
      const j = Math.abs(random[i]!) % (i + 1);
      [permutation[i], permutation[j]] = [permutation[j]!, permutation[i]!];
    }
    const vocabJson = utf8(JSON.stringify(Object.fromEntries(vocab.map((token, id) => [token, permutation[id]]))));
    const hf = await loadTokenizer({ vocabJson, mergesTxt: utf8("#version: 0.2\n" + lines.join("\n")) });
    expect(hf.sotToken).toBe(permutation[reference.sotToken]);
    for (const text of texts) expect(hf.encode(text)).toEqual(reference.encode(text).map((id) => permutation[id]));
    expect(hf.decode(hf.encode("a photo of a dog"))).toBe(reference.decode(reference.encode("a photo of a dog")));
  });

  test("tokenizer.json (merges as strings or pairs, specials as added_tokens) tokenizes identically", async () => {
    const vocab = openAiVocab(lines);
    const specials = vocab.slice(-2);
    const model = (pairs: boolean) => ({
      version: "1.0",
      added_tokens: specials.map((content, i) => ({ id: vocab.length - 2 + i, content, special: true })),
      model: {
        type: "BPE",
        end_of_word_suffix: "</w>",
        vocab: Object.fromEntries(vocab.slice(0, -2).map((token, id) => [token, id])),
        merges: pairs ? lines.map((line) => line.split(" ")) : lines,
      },
    });
    for (const pairs of [false, true]) {
      const json = model(pairs);
      const fromObject = await loadTokenizer({ tokenizerJson: json });
      const fromBytes = await loadTokenizer(utf8(JSON.stringify(json)));
      expect(fromObject.vocabSize).toBe(vocab.length);
      for (const text of texts) {
        expect(fromObject.encode(text)).toEqual(reference.encode(text));
        expect(fromBytes.encode(text)).toEqual(reference.encode(text));
      }
    }
    const dir = mkdtempSync(join(tmpdir(), "clip-tokenizer-"));
    writeFileSync(join(dir, "tokenizer.json"), JSON.stringify(model(false)));
    expect((await loadTokenizer(dir)).encode("a photo")).toEqual(reference.encode("a photo"));
    expect((await loadTokenizer(join(dir, "tokenizer.json"))).encode("a photo")).toEqual(reference.encode("a photo"));
  });

  test("special-token text maps to the special ids; other spellings are ordinary text", () => {
    const [sot, eot] = [reference.sotToken, reference.eotToken];
    expect(reference.encode("<|startoftext|>x<|ENDOFTEXT|>")).toEqual([sot, ...reference.encode("x"), eot]);
    expect(reference.encode("<|ſtartoftext|>")).not.toContain(sot);
  });

  test("the BPE cache is bounded and does not change results", () => {
    const uncached = new SimpleTokenizer(parseOpenAiMerges("#version: 0.2\n" + lines.join("\n")), { cacheSize: 0 });
    const tiny = new SimpleTokenizer(parseOpenAiMerges("#version: 0.2\n" + lines.join("\n")), { cacheSize: 3 });
    for (const text of texts) {
      expect(uncached.encode(text)).toEqual(reference.encode(text));
      expect(tiny.encode(text)).toEqual(reference.encode(text));
    }
    expect((tiny as unknown as { cache: Map<string, unknown> }).cache.size).toBeLessThanOrEqual(3);
    expect(() => new SimpleTokenizer(parseOpenAiMerges("#version: 0.2\na b"), { cacheSize: -1 })).toThrow(RangeError);
  });
});

describe("helpers mirroring simple_tokenizer.py", () => {
  test("bytesToUnicode: printable bytes first, the rest from U+0100 on", () => {
    const table = bytesToUnicode();
    expect(table.size).toBe(256);
    expect([...table.keys()].slice(0, 3)).toEqual([33, 34, 35]);
    expect(table.get(0x41)).toBe("A");
    expect(table.get(0)).toBe("\u0100");
    expect(table.get(0x20)).toBe("\u0120");
    expect(table.get(0xad)).toBe("\u0143");
    expect(new Set(table.values()).size).toBe(256);
  });

  test("getPairs: distinct adjacent pairs", () => {
    expect(getPairs(["a", "b", "a", "b"])).toEqual([
      ["a", "b"],
      ["b", "a"],
    ]);
    expect(getPairs(["x</w>"])).toEqual([]);
  });
});

describe("malformed tokenizer files", () => {
  const header = "#version: 0.2";
  const good = [header, "a b", "ab c", "t h", "th e</w>"];
  const parse = (text: string) => new SimpleTokenizer(parseOpenAiMerges(text));

  test("a good small file works", () => {
    const tokenizer = parse(good.join("\n") + "\n");
    expect(tokenizer.vocabSize).toBe(512 + 4 + 2);
    // "ab" is merge 0 (id 512); "c" ends the word, so "ab c" does not apply; "the</w>" is merge 3
    expect(tokenizer.encode("abc the")).toEqual([512, 256 + 0x63 - 0x21, 515]);
    expect(() => parse([header, "a</w> b"].join("\n"))).not.toThrow();
  });

  test("clear errors naming the line", () => {
    const cases: Array<[string, RegExp]> = [
      ["", /merges file: empty/],
      [header, /no merges after the header/],
      ["a b\nc d", /line 1: expected a "#version" header/],
      [[header, "a b", "", "c d"].join("\n"), /line 3: expected two symbols.*found 0/],
      [[header, "a b", "abc"].join("\n"), /line 3: expected two symbols.*found 1/],
      [[header, "a b c"].join("\n"), /line 2: expected two symbols.*found 3/],
      [[header, "a b", "x yz"].join("\n"), /line 3: symbol "yz" is neither a byte symbol nor made by an earlier merge/],
      [[header, "ab c", "a b"].join("\n"), /line 2: symbol "ab"/],
      [[header, "a b", "a b"].join("\n"), /line 3: merge "a b" repeats merges file line 2/],
      [[header, "a b", "a\u0000 b"].join("\n"), /line 3: symbol "a\\u0000"/],
    ];
    for (const [text, message] of cases) {
      expect(() => parse(text)).toThrow(TokenizerFormatError);
      expect(() => parse(text)).toThrow(message);
    }
    expect(() => parseOpenAiMerges(good.join("\n"), 0)).toThrow(RangeError);
  });

  test("bytes: bad UTF-8, corrupt or truncated gzip", () => {
    expect(() => parseOpenAiMerges(new Uint8Array([0x23, 0x76, 0xff, 0x0a]))).toThrow(/not valid UTF-8/);
    const gz = gzipSync(utf8(good.join("\n")));
    const corrupt = gz.slice();
    corrupt.fill(0xff, 10, 20);
    expect(() => parseOpenAiMerges(corrupt)).toThrow(TokenizerFormatError);
    expect(() => parseOpenAiMerges(gz.subarray(0, gz.length - 12))).toThrow(TokenizerFormatError);
    expect(() => parseOpenAiMerges(new Uint8Array([0x1f, 0x8b]))).toThrow(TokenizerFormatError);
  });

  test("fast-check: a junk line inserted anywhere is reported at its line number", () => {
    const junkToken = fc.string({ unit: "binary", minLength: 1, maxLength: 6 }).filter((s) => !/[\s\u001c-\u001f\u0085]/u.test(s));
    const junkLine = fc.oneof(
      fc.constant(""),
      junkToken,
      fc.array(junkToken, { minLength: 3, maxLength: 5 }).map((parts) => parts.join(" ")),
    );
    fc.assert(
      fc.property(junkLine, fc.integer({ min: 1, max: good.length - 1 }), (junk, at) => {
        const lines = [...good.slice(0, at), junk, ...good.slice(at)];
        expect(() => parse(lines.join("\n"))).toThrow(new RegExp(`line ${at + 1}: expected two symbols`));
      }),
    );
  });

  test("fast-check: arbitrary text or bytes never crash or hang, they load or throw TokenizerFormatError", async () => {
    const lineArb = fc.oneof(
      fc.constantFrom("a b", "ab c", "t h", "th e</w>", "Ġ t", "a</w> b", "b a"),
      fc.string({ unit: "binary", maxLength: 12 }),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(lineArb, { maxLength: 12 }), fc.boolean(), async (lines, gzip) => {
        const text = [header, ...lines].join("\n");
        const bytes = gzip ? gzipSync(utf8(text)) : utf8(text);
        try {
          const tokenizer = await loadTokenizer(bytes);
          const ids = tokenizer.encode("abc the ab");
          expect(ids.every((id) => id >= 0 && id < tokenizer.vocabSize)).toBe(true);
        } catch (error) {
          expect(error).toBeInstanceOf(TokenizerFormatError);
        }
      }),
      { numRuns: 200 },
    );
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ maxLength: 64 }), async (bytes) => {
        await loadTokenizer(bytes).then(
          (tokenizer) => expect(tokenizer.vocabSize).toBeGreaterThan(514),
          (error: unknown) => expect(error).toBeInstanceOf(TokenizerFormatError),
        );
        const gz = new Uint8Array([0x1f, 0x8b, ...bytes]);
        await expect(loadTokenizer(gz)).rejects.toBeInstanceOf(TokenizerFormatError);
      }),
      { numRuns: 200 },
    );
  });

  test("vocab.json / merges.txt errors name the field or line", async () => {
    const vocab = openAiVocab(["a b"]);
    const vocabJson = JSON.stringify(Object.fromEntries(vocab.map((t, i) => [t, i])));
    const merges = "#version: 0.2\na b\n";
    await expect(loadTokenizer({ vocabJson, mergesTxt: merges })).resolves.toBeInstanceOf(SimpleTokenizer);
    const bad: Array<[string | object, string, RegExp]> = [
      ["{", merges, /vocab.json: invalid JSON/],
      ["[1, 2]", merges, /vocab.json: expected an object/],
      ["{}", merges, /vocab.json: empty vocabulary/],
      [JSON.stringify({ ...JSON.parse(vocabJson), qqq: 999 }), merges, /id of "qqq" must be an integer in \[0, 516\), found 999/],
      [JSON.stringify({ ...JSON.parse(vocabJson), "<|endoftext|>": "514" }), merges, /found "514"/],
      [JSON.stringify({ ...JSON.parse(vocabJson), ab: 514 }), merges, /id 514 is given to both "ab" and "<\|endoftext\|>"/],
      [vocabJson, "#version: 0.2\na b\nab ab\n", /merges.txt line 3: merged symbol "abab" is not in the vocabulary/],
      [vocabJson, "#version: 0.2\n", /merges.txt: no merges/],
      [vocabJson, "#version: 0.2\na b c\n", /merges.txt line 2: expected two symbols/],
      [JSON.stringify(Object.fromEntries(vocab.slice(0, -1).map((t, i) => [t, i]))), merges, /no "<\|endoftext\|>" \(end token\)/],
      [JSON.stringify(Object.fromEntries(vocab.slice(1).map((t, i) => [t, i]))), merges, /no "!" \(symbol of byte 0x21\)/],
      [JSON.stringify({ ...Object.fromEntries(vocab.map((t, i) => [t, i])), "a b": 515 }), merges, /entry 515 "a b" holds " ", which stands for no byte/],
    ];
    for (const [v, m, message] of bad) {
      await expect(loadTokenizer({ vocabJson: v, mergesTxt: m })).rejects.toThrow(message);
      await expect(loadTokenizer({ vocabJson: v, mergesTxt: m })).rejects.toBeInstanceOf(TokenizerFormatError);
    }
    await expect(loadTokenizer(utf8(vocabJson))).rejects.toThrow(/needs its merges.txt/);
  });

  test("tokenizer.json errors name the field", async () => {
    const vocab = openAiVocab(["a b"]);
    const ok = { model: { type: "BPE", vocab: Object.fromEntries(vocab.map((t, i) => [t, i])), merges: ["a b"] } };
    await expect(loadTokenizer({ tokenizerJson: ok })).resolves.toBeInstanceOf(SimpleTokenizer);
    const withModel = (patch: object) => ({ ...ok, model: { ...ok.model, ...patch } });
    const bad: Array<[unknown, RegExp]> = [
      ["{]", /tokenizer.json: invalid JSON/],
      [[], /expected a JSON object/],
      [{}, /"model" must be an object/],
      [withModel({ type: "WordPiece" }), /model.type must be "BPE", found "WordPiece"/],
      [withModel({ end_of_word_suffix: "##" }), /end_of_word_suffix must be "<\/w>"/],
      [withModel({ continuing_subword_prefix: "##" }), /continuing_subword_prefix is not supported/],
      [withModel({ vocab: [1] }), /model.vocab must be an object/],
      [withModel({ merges: "a b" }), /model.merges must be an array/],
      [withModel({ merges: [] }), /model.merges is empty/],
      [withModel({ merges: ["a b", 7] }), /model.merges\[1\]: expected "a b" or \["a", "b"\], found "7"/],
      [withModel({ merges: ["a  b"] }), /model.merges\[0\]/],
      [withModel({ merges: [["a", "b", "c"]] }), /model.merges\[0\]/],
      [withModel({ merges: ["a b", "q ab"] }), /model.merges\[1\]: merged symbol "qab"/],
      [{ ...ok, added_tokens: {} }, /added_tokens must be an array/],
      [{ ...ok, added_tokens: [{ id: 1 }] }, /added_tokens\[0\] must be an object with a string "content"/],
      [{ ...ok, added_tokens: [{ id: 3, content: "<|endoftext|>" }] }, /added_tokens\[0\] gives "<\|endoftext\|>" id 3, model.vocab gives 514/],
    ];
    for (const [json, message] of bad) {
      const source = typeof json === "string" ? json : (json as object);
      await expect(loadTokenizer({ tokenizerJson: source })).rejects.toThrow(message);
      await expect(loadTokenizer({ tokenizerJson: source })).rejects.toBeInstanceOf(TokenizerFormatError);
    }
  });

  test("a path that is a directory without tokenizer files", async () => {
    const dir = mkdtempSync(join(tmpdir(), "clip-tokenizer-"));
    await expect(loadTokenizer(dir)).rejects.toThrow(/neither vocab.json with merges.txt nor tokenizer.json/);
  });
});
