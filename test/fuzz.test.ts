// The fuzz campaign of fuzz/ (`npm run fuzz` runs it long), bounded for CI: FUZZ_CI_RUNS cases per parser
// (default 300) from a fixed seed. Then one regression test for each bug the campaign found.
import { gzipSync } from "node:zlib";
import { zlibSync } from "fflate";
import { describe, expect, test } from "vitest";
import { caseOf, formatStats, runCampaign, runOne, STATS_HEADER } from "../fuzz/harness.js";
import { parseOps, serialiseOps } from "../fuzz/formats/pickle.js";
import { readZip, writeZip } from "../fuzz/formats/zip.js";
import { concat, crc32, setUint } from "../fuzz/mutate.js";
import { seedFiles } from "../fuzz/seeds.js";
import { makeTarget, TARGET_NAMES } from "../fuzz/targets/index.js";
import { blankPng, jpegBombTarget, jpegScanBomb, pngBombTarget } from "../fuzz/targets/image.js";
import { npyFile } from "../fuzz/targets/npy.js";
import { DEFAULT_MAX_JPEG_SCAN_WORK, decodeImage, fromRaw, ImageError, preprocess, resizeShortSide } from "../src/image/index.js";
import { NpyError, readNpy, readNpyFloat32, readNpyTokens, writeNpy } from "../src/npy.js";
import { loadTokenizer, TokenizerFormatError } from "../src/simple_tokenizer.js";
import { unpickle } from "../src/weights/pickle.js";
import { DEFAULT_MAX_TENSOR_BYTES, DEFAULT_MAX_TOTAL_BYTES, loadStateDict, WeightsError, writeSafetensors } from "../src/weights/index.js";

const RUNS = Number(process.env.FUZZ_CI_RUNS ?? 300);
/** Amplified cases inflate up to tens of MB each: fewer of them. */
const AMPLIFIED_RUNS = Number(process.env.FUZZ_CI_AMPLIFIED_RUNS ?? 20);
const SEED = 20_240_601;

describe(`bounded fuzz campaign: ${RUNS} cases per parser`, () => {
  const rows: string[] = [];
  test.each(TARGET_NAMES.filter((n) => n !== "amplified"))("%s: every case parses or throws the parser's typed error with a message", async (name) => {
    const target = makeTarget(name);
    const s = await runCampaign(target, { runs: RUNS, seed: SEED });
    rows.push(formatStats(s));
    console.log(`${STATS_HEADER}\n${formatStats(s)}\nslowest: ${s.maxMs.toFixed(0)} ms, ${s.maxMsHow.slice(0, 200)}`);
    expect(s.crashes.map((f) => `#${f.index} ${f.how}: ${f.detail}`)).toEqual([]);
    expect(s.heavy.map((f) => `#${f.index} ${f.how}: ${f.detail}`)).toEqual([]);
    expect(s.cases).toBe(RUNS);
    // The mutations must neither all be fatal nor all harmless, and must reach many distinct checks.
    expect(s.ok).toBeGreaterThan(RUNS / 50);
    expect(s.typed).toBeGreaterThan(RUNS / 2);
    expect(s.messages.size).toBeGreaterThan(Math.min(20, RUNS / 10));
    // Far above any case's cost even on a loaded 2-core machine; a hang or a quadratic blow-up would not stay below.
    expect(s.maxMs).toBeLessThan(15_000);
  });
});

describe(`bounded amplified campaign: ${AMPLIFIED_RUNS} cases`, () => {
  test("deflated pickle floods, deflated storages far larger than their tensors, headers of 10^5 entries: typed errors, bounded", async () => {
    const s = await runCampaign(makeTarget("amplified"), { runs: AMPLIFIED_RUNS, seed: SEED });
    console.log(`${STATS_HEADER}\n${formatStats(s)}\nslowest: ${s.maxMs.toFixed(0)} ms, ${s.maxMsHow.slice(0, 200)}`);
    expect(s.crashes.map((f) => `#${f.index} ${f.how}: ${f.detail}`)).toEqual([]);
    // ArrayBuffers plus JS heap: before the fixes, these cases grew them by gigabytes.
    expect(s.heavy.map((f) => `#${f.index} ${f.how}: ${f.detail}`)).toEqual([]);
    expect(s.typed).toBeGreaterThan(AMPLIFIED_RUNS / 2);
    expect(s.messages.size).toBeGreaterThan(4);
    expect(s.maxMs).toBeLessThan(15_000);
  });
});

describe("the campaign machinery", () => {
  test("a case is a pure function of (seed, target, index)", () => {
    for (const name of TARGET_NAMES) {
      const t = makeTarget(name);
      for (const i of [0, 17, 299]) expect(caseOf(t, 5, i)).toEqual(caseOf(t, 5, i));
      expect(caseOf(t, 5, 1)).not.toEqual(caseOf(t, 6, 1));
    }
  });

  test("zip and pickle round trips keep every seed checkpoint intact, so mutations start from valid files", () => {
    for (const seed of seedFiles("test/fixtures/weights", /\.pt$/).filter((s) => s.bytes[0] === 0x50)) {
      const items = readZip(seed.bytes);
      const pkl = items.find((x) => x.name.endsWith("/data.pkl"))!;
      expect(serialiseOps(parseOps(pkl.data))).toEqual(pkl.data);
      const ref = loadStateDict(seed.bytes);
      for (const zip64 of [false, true]) {
        const again = loadStateDict(writeZip(items, { zip64 }).bytes);
        expect([...again.keys()]).toEqual([...ref.keys()]);
        for (const [k, t] of ref) expect(again.get(k)!.data).toEqual(t.data);
      }
    }
  });

  test("a crash is told apart from the typed error, and an empty message counts as a crash", async () => {
    const t = makeTarget("npy");
    const bad = { ...t, run: () => ([] as string[])[1]!.toString() };
    expect((await runOne(bad, new Uint8Array(0))).outcome.kind).toBe("crash");
    const silent = { ...t, run: () => { throw new NpyError(""); } };
    expect((await runOne(silent, new Uint8Array(0))).outcome).toEqual({ kind: "crash", detail: "NpyError with an empty message" });
  });
});

// ---------------------------------------------------------------- regressions: one per bug the campaign found

function png(width: number, height: number): Uint8Array {
  const chunk = (type: string, data: Uint8Array): Uint8Array => {
    const out = new Uint8Array(12 + data.length);
    setUint(out, 0, 4, data.length, false);
    out.set(new TextEncoder().encode(type), 4);
    out.set(data, 8);
    setUint(out, 8 + data.length, 4, crc32(out.subarray(4, 8 + data.length)), false);
    return out;
  };
  const ihdr = new Uint8Array(13);
  setUint(ihdr, 0, 4, width, false);
  setUint(ihdr, 4, 4, height, false);
  ihdr[8] = 8; // 8-bit grey
  const sig = Uint8Array.of(0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a);
  return concat(sig, chunk("IHDR", ihdr), chunk("IDAT", zlibSync(new Uint8Array(height * (width + 1)), { level: 9 })), chunk("IEND", new Uint8Array(0)));
}

describe("preprocess: thin images", () => {
  test("a 273-byte 1x100000 PNG: only the 224x224 crop of its 224x22400000 resize is resampled", () => {
    const thin = png(1, 100_000);
    expect(thin.length).toBeLessThan(300);
    expect(decodeImage(thin).height).toBe(100_000); // the image itself is within maxPixels
    const out = preprocess(thin);
    expect(out.shape).toEqual([1, 3, 224, 224]);
    // black pixels, normalised: (0 - mean) / std per channel
    expect(out.data[0]).toBe(Math.fround(Math.fround(0 - Math.fround(0.48145466)) / Math.fround(0.26862954)));
    expect(preprocess(png(100_000, 1), { size: 32 }).shape).toEqual([1, 3, 32, 32]);
  });

  test("resizeShortSide on its own still holds the whole resize to maxPixels; raw thin pixels preprocess", () => {
    const pixels = { data: new Uint8Array(3 * 40_000), width: 1, height: 40_000, channels: 3 as const };
    expect(preprocess(pixels).shape).toEqual([1, 3, 224, 224]);
    expect(() => resizeShortSide(fromRaw(pixels), 224, 1_000_000)).toThrow(/224x8960000 = 2007040000 pixels, more than the limit of 1000000/);
    expect(preprocess(png(2, 300), { size: 8 }).shape).toEqual([1, 3, 8, 8]);
  });
});

describe("compression-amplified images", () => {
  /** CPU milliseconds (this process, all threads) and ArrayBuffer growth of a call; its error, if it threw. */
  function cost(run: () => unknown): { ms: number; mib: number; error?: unknown } {
    const before = process.memoryUsage().arrayBuffers;
    const t0 = process.cpuUsage();
    let error: unknown;
    try {
      run();
    } catch (e) {
      error = e;
    }
    const { user, system } = process.cpuUsage(t0);
    return { ms: (user + system) / 1000, mib: (process.memoryUsage().arrayBuffers - before) / 2 ** 20, error };
  }
  const workOf = (bytes: Uint8Array): number => {
    const { error } = cost(() => decodeImage(bytes, { maxJpegScanWork: 1 }));
    return Number(/ask for (\d+) units of work/.exec((error as Error).message)![1]);
  };

  test.each([
    ["png-bomb", pngBombTarget],
    ["jpeg-bomb", jpegBombTarget],
  ])("%s: a short campaign of the classes that found these, each case bounded in time and memory", async (_, make) => {
    const s = await runCampaign(make(), { runs: 40, seed: SEED });
    console.log(`${STATS_HEADER}\n${formatStats(s)}\nslowest: ${s.maxMs.toFixed(0)} ms, ${s.maxMsHow.slice(0, 200)}`);
    expect(s.crashes.map((f) => `#${f.index} ${f.how}: ${f.detail}`)).toEqual([]);
    expect(s.heavy.map((f) => `#${f.index} ${f.how}: ${f.detail}`)).toEqual([]);
    expect(s.ok).toBeGreaterThan(3);
    expect(s.typed).toBeGreaterThan(3);
    expect(s.maxMs).toBeLessThan(15_000);
  });

  test("a 362 KB progressive 7000x7000 JPEG of 1000 EOB-run scans (27 s, 773 MB before) is refused from its headers", () => {
    const bomb = jpegScanBomb(7000, 7000, { acScans: 999 });
    expect(bomb.length).toBeLessThan(370_000);
    const r = cost(() => preprocess(bomb));
    expect(r.error).toBeInstanceOf(ImageError);
    expect((r.error as Error).message).toBe(
      "JPEG: the 1000 scans of this 7000x7000 image ask for 54325818572 units of work (per scan: blocks walked × " +
        "(8 + coefficients in its band)), more than the limit of 1073741824 (maxJpegScanWork)",
    );
    // refused before the 770 MB of planes are allocated, let alone decoded
    expect(r.mib).toBeLessThan(32);
    expect(r.ms).toBeLessThan(2000);
    // 1001 scans took 28 s to refuse: now also from the headers
    const more = cost(() => preprocess(jpegScanBomb(7000, 7000, { acScans: 1000 })));
    expect((more.error as Error).message).toBe("JPEG: 1001 scans, more than 1000");
    expect(more.ms).toBeLessThan(2000);
  });

  test("the budget: blocks × (8 + band) per scan, 65 536 per Huffman table built; an option, and maxPixels still applies", () => {
    expect(DEFAULT_MAX_JPEG_SCAN_WORK).toBe(2 ** 30);
    // 64x48 = 48 blocks per component; first scan: 3 components, DC band (1), two tables built
    expect(workOf(jpegScanBomb(64, 48, { acScans: 0 }))).toBe(48 * 3 * 9 + 65536);
    // each AC scan (band 1..63) walks one component; its AC table is built once
    expect(workOf(jpegScanBomb(64, 48, { acScans: 4 }))).toBe(48 * 3 * 9 + 4 * 48 * 71 + 2 * 65536);
    expect(workOf(jpegScanBomb(64, 48, { acScans: 4, band: [63, 63], refine: true }))).toBe(48 * 3 * 9 + 4 * 48 * 9 + 2 * 65536);
    // a DHT before every scan makes every scan build its table again
    expect(workOf(jpegScanBomb(64, 48, { acScans: 4, dhtPerScan: true }))).toBe(48 * 3 * 9 + 4 * 48 * 71 + 5 * 65536);
    // 100 refinement scans (each visits every coefficient, even in an EOB run): refused, as are huge tiny-scan counts
    expect(() => decodeImage(jpegScanBomb(7000, 7000, { acScans: 100, refine: true }))).toThrow(/ask for 5456740447 units .* \(maxJpegScanWork\)/);
    const mid = jpegScanBomb(512, 512, { acScans: 300, restartInterval: 100 });
    expect(() => decodeImage(mid)).not.toThrow();
    expect(workOf(mid)).toBe(4096 * 3 * 9 + 300 * 4096 * 71 + 2 * 65536);
    expect(() => decodeImage(mid, { maxJpegScanWork: 87_486_463 })).toThrow(/ask for 87486464 units .* more than the limit of 87486463 \(maxJpegScanWork\)/);
    expect(decodeImage(mid, { maxJpegScanWork: 87_486_464 }).width).toBe(512);
    expect(() => decodeImage(mid, { maxPixels: 512 * 512 - 1 })).toThrow(/more than the limit of 262143 \(maxPixels\)/);
    // what the decoder makes of these files is what Pillow makes of them: mid-grey
    const img = decodeImage(mid);
    expect(img.mode).toBe("RGB");
    expect(img.data.every((v) => v === 128)).toBe(true);
  });

  test("a 155 KB PNG of 1x40,000,000 RGB pixels (20 s before): no per-row allocations, a row costs little more than its bytes", () => {
    const thin = blankPng(1, 40_000_000, 2);
    expect(thin.length).toBeLessThan(160_000);
    const r = cost(() => {
      const out = preprocess(thin);
      expect(out.data[0]).toBe(Math.fround(Math.fround(0 - Math.fround(0.48145466)) / Math.fround(0.26862954)));
    });
    expect(r.error).toBeUndefined();
    expect(r.ms).toBeLessThan(6000); // 6.4 s of CPU before on the loaded 2-core machine, 1.3-1.7 s after
    // Load-independent: the same 16 MB of scanlines as 4,000,000 rows of 1 pixel and as 2309 rows of 2309 pixels
    // took 12x as long thin before (a subarray, a copy and a method call per row), 1.7x after.
    const best = (png: Uint8Array) => Math.min(...[0, 1, 2].map(() => cost(() => decodeImage(png)).ms));
    expect(best(blankPng(1, 4_000_000, 2)) / best(blankPng(2309, 2309, 2))).toBeLessThan(4);
  });
});

describe(".npy headers npyjs trusted, and others only our parser reads", () => {
  const f32 = (n: number) => new Uint8Array(new Float32Array(n).buffer);
  /** The dict padded so that data starts 2 bytes past a multiple of 4 (npyFile adds the newline). */
  const misaligned = (dict: string): string => (dict.length % 4 === 3 ? dict : misaligned(dict + " "));
  const header = (descr: string, shape: string, fortran = "False") => `{'descr': '${descr}', 'fortran_order': ${fortran}, 'shape': ${shape}, }`;
  const refused: [string, Uint8Array, RegExp][] = [
    // Accepted before, with a shape whose product matched the data by accident.
    ["negative dims", npyFile(header("<f4", "(-1, -2)"), f32(2)), /shape entry "-1" is not a non-negative integer/],
    ["fractional dims", npyFile(header("<f4", "(2.5, 2)"), f32(5)), /shape entry "2.5"/],
    ["hex dims", npyFile(header("<f4", "(0x2, 2)"), f32(4)), /shape entry "0x2"/],
    ["complex read as floats", npyFile(header("<c8", "(4,)"), f32(4)), /unsupported dtype '<c8'/],
    ["unicode strings", npyFile(header("<U2", "(2,)"), f32(4)), /unsupported dtype '<U2'/],
    ["a repeated key (npyjs took the first)", npyFile(`{'descr': '<f4', 'descr': '<i4', 'fortran_order': False, 'shape': (4,), }`, f32(4)), /key 'descr' repeated/],
    ["no shape (npyjs read a scalar)", npyFile(`{'descr': '<f4', 'fortran_order': False, }`, f32(1)), /keys are \[descr, fortran_order\]/],
    // Refused before, but with npyjs's messages (or a RangeError text) rather than a named cause.
    ["an object array, which is a pickle", npyFile(header("|O", "(2,)"), new Uint8Array(16)), /unsupported dtype '\|O'/],
    ["big-endian", npyFile(header(">f4", "(4,)"), f32(4)), /unsupported dtype '>f4'/],
    ["Fortran order", npyFile(header("<f4", "(2, 2)", "True"), f32(4)), /Fortran-ordered/],
    ["data shorter than the shape", npyFile(header("<f4", "(2, 3)"), f32(5)), /needs 24 data bytes, the file holds 20/],
    ["a huge shape", npyFile(header("<f4", "(4294967296, 4294967296)"), f32(4)), /needs \d+ data bytes, the file holds 16/],
    ["a header running past the file", npyFile(header("<f4", "(1,)"), f32(1)).subarray(0, 40), /header of \d+ bytes runs past the end of the 40-byte file/],
    ["misaligned data", npyFile(misaligned(header("<f4", "(1,)")), f32(1), 1, 1), /data at offset \d+ is not aligned to its 4-byte items/],
    ["format version 4", (() => { const b = npyFile(header("<f4", "(1,)"), f32(1)); b[6] = 4; return b; })(), /unsupported .npy format version 4/],
    // The one parser now (npyjs is gone): headers that only its regular expressions would have read.
    ["a structured dtype", npyFile(`{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (1,), }`, f32(1)), /unreadable entry at "'descr': \[/],
    ["a list for the shape", npyFile(`{'descr': '<f4', 'fortran_order': False, 'shape': [4], }`, f32(4)), /unreadable entry at " 'shape': \[4\]/],
    ["an extra key", npyFile(`{'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'x': True, }`, f32(1)), /keys are \[descr, fortran_order, shape, x\]/],
    ["fortran_order spelt false", npyFile(header("<f4", "(1,)", "false"), f32(1)), /unreadable entry at " 'fortran_order': false/],
  ];
  test.each(refused)("%s", (_, bytes, message) => {
    for (const read of [readNpy, readNpyFloat32, readNpyTokens]) {
      expect(() => read(bytes)).toThrow(NpyError);
      expect(() => read(bytes)).toThrow(message);
    }
  });

  test("what numpy and writeNpy write still loads: f2/f8 widen to f32, i8 tokens, (n,), () and (a, b,) shapes", () => {
    const f2 = npyFile(header("<f2", "(2,)"), new Uint8Array(new Uint16Array([0x3c00, 0xc000]).buffer));
    expect(Array.from(readNpyFloat32(f2).data)).toEqual([1, -2]);
    // The smallest subnormal, the largest finite, −0, −∞ and a NaN, widened exactly.
    const halves = npyFile(header("<f2", "(5,)"), new Uint8Array(new Uint16Array([0x0001, 0x7bff, 0x8000, 0xfc00, 0x7e00]).buffer));
    expect(Array.from(readNpyFloat32(halves).data)).toEqual([2 ** -24, 65504, -0, -Infinity, NaN]);
    expect(readNpy(halves).dtype).toBe("f2");
    // A Node Buffer inside a larger pool (readFileSync of a small file): the values are the file's own.
    const pooled = Buffer.concat([Buffer.alloc(3), npyFile(header("<f4", "(2,)"), new Uint8Array(Float32Array.of(7, 8).buffer))]).subarray(3);
    expect(readNpyFloat32(pooled).data).toEqual(Float32Array.of(7, 8));
    expect(readNpyFloat32(npyFile(header("<f8", "(1, 2,)"), new Uint8Array(new Float64Array([0.5, 2]).buffer))).shape).toEqual([1, 2]);
    expect(readNpy(npyFile(header("<f4", "()"), f32(1))).shape).toEqual([]);
    expect(readNpyTokens(npyFile(header("<i8", "(2,)"), new Uint8Array(16))).data).toBeInstanceOf(BigInt64Array);
    expect(readNpy(npyFile(`{'descr':'|u1','fortran_order':False,'shape':(0,)}`, new Uint8Array(0))).shape).toEqual([0]);
    expect(() => readNpy(npyFile(`{"descr": "<f4", "fortran_order": False, "shape": (1,)}`, f32(1)))).toThrow(/unreadable entry/);
    const mine = readNpyFloat32(writeNpy({ data: Float32Array.of(1, 2, 3, 4, 5, 6), shape: [2, 3] }));
    expect(mine.shape).toEqual([2, 3]);
    expect(Array.from(mine.data)).toEqual([1, 2, 3, 4, 5, 6]);
  });
});

describe("pickle: memoised arguments handed to builders again and again", () => {
  /** OrderedDict(pairs) called `calls` times on one memoised list of `pairs` references to one (key, None) pair. */
  function quadratic(pairs: number, calls: number): Uint8Array {
    const head = [0x80, 2, 0x63, ...new TextEncoder().encode("collections\nOrderedDict\n"), 0x71, 0, 0x8c, 1, 0x6b, 0x4e, 0x86, 0x71, 2, 0x30, 0x5d, 0x28];
    const list = new Uint8Array(2 * pairs).map((_, i) => (i % 2 === 0 ? 0x68 : 2)); // BINGET 2
    const args = [0x65, 0x85, 0x71, 3, 0x30]; // APPENDS, TUPLE1, BINPUT 3, POP
    const call = new Uint8Array(6 * calls).map((_, i) => [0x68, 0, 0x68, 3, 0x52, 0x30][i % 6]!); // BINGET 0, BINGET 3, REDUCE, POP
    return concat(Uint8Array.from(head), list, Uint8Array.from(args), call, Uint8Array.of(0x4e, 0x2e));
  }

  test("a 206 KB pickle that took 5 s (and 4 MB that would take hours) is refused once its work allowance is spent", () => {
    const bytes = quadratic(100_000, 1000);
    expect(bytes.length).toBe(206_046);
    const t0 = performance.now();
    // (the opcode limit alone, which counts copied elements too, refuses it as well: see weights.limits.test.ts)
    expect(() => unpickle(bytes, { maxOps: Infinity })).toThrow(/pickle: REDUCE at offset \d+: the pickle asks for more work than its 206046 bytes allow/);
    expect(performance.now() - t0).toBeLessThan(2000);
    expect(() => unpickle(bytes)).toThrow(/pickle: more than 524288 opcodes and copied elements/);
    // The same builders with honest arguments: a few calls on the big list are fine.
    expect(unpickle(quadratic(100_000, 2), { maxOps: Infinity })).toBeNull();
    expect(unpickle(quadratic(10_000, 2))).toBeNull();
  });
});

describe("weights limits", () => {
  const sd = new Map([
    ["a", { data: new Float32Array(1000), shape: [10, 100] }],
    ["b", { data: new Float32Array(1000), shape: [1000] }],
  ]);
  const file = writeSafetensors(sd, "F16");

  test("maxTensorBytes and maxTotalBytes, counted in float32 bytes, name the option", () => {
    expect(DEFAULT_MAX_TENSOR_BYTES).toBe(4 * 2 ** 30);
    expect(DEFAULT_MAX_TOTAL_BYTES).toBe(16 * 2 ** 30);
    expect(loadStateDict(file, { maxTensorBytes: 4000, maxTotalBytes: 8000 }).size).toBe(2);
    expect(() => loadStateDict(file, { maxTensorBytes: 3999 })).toThrow('tensor "a" needs 4000 bytes as float32, more than the limit of 3999 (maxTensorBytes)');
    expect(() => loadStateDict(file, { maxTotalBytes: 7999 })).toThrow(/tensors up to "b" need 8000 bytes as float32, more than the limit of 7999 \(maxTotalBytes\)/);
    expect(() => loadStateDict(file, { maxTotalBytes: 7999 })).toThrow(WeightsError);
  });

  test("torch archives: the same limits, and deflated entries are not inflated past maxTotalBytes", () => {
    const seed = seedFiles("test/fixtures/weights", /^torch_sd\.pt$/)[0]!;
    const ref = loadStateDict(seed.bytes);
    const floats = [...ref.values()].reduce((s, t) => s + t.data.length, 0);
    expect(loadStateDict(seed.bytes, { maxTotalBytes: 4 * floats }).size).toBe(ref.size);
    expect(() => loadStateDict(seed.bytes, { maxTotalBytes: 4 * floats - 1 })).toThrow(/\(maxTotalBytes\)/);
    expect(() => loadStateDict(seed.bytes, { maxTensorBytes: 4 })).toThrow(/more than the limit of 4 \(maxTensorBytes\)/);
    const deflated = writeZip(readZip(seed.bytes).map((x) => (x.name.endsWith("data.pkl") ? { ...x, method: 8 as const } : x))).bytes;
    expect(loadStateDict(deflated).size).toBe(ref.size);
    expect(() => loadStateDict(deflated, { maxTotalBytes: 100 })).toThrow(/entry "torch_sd\/data.pkl" inflates to 1033 bytes, more than the limit of 100 \(maxTotalBytes\)/);
  });
});

describe("tokenizer text limit", () => {
  test("a gzip bomb stops at 64 MiB of text, not 256 MiB (334 MiB of ArrayBuffers, 2 s per file before)", async () => {
    const bomb = new Uint8Array(gzipSync(new Uint8Array(80 * 2 ** 20).fill(0x61)));
    const before = process.memoryUsage().arrayBuffers;
    const error = await loadTokenizer(bomb).catch((e: unknown) => e);
    expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(256 * 2 ** 20);
    expect(error).toBeInstanceOf(TokenizerFormatError);
    expect((error as Error).message).toBe("merges file: decompresses to more than 67108864 bytes");
  });
});
