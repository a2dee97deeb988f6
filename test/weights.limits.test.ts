// Hostile inputs whose cost is amplified by compression or by counts: each is crafted here, small, by the fuzz
// generators (fuzz/formats/deflate.ts writes runs at deflate's ~1032:1 without holding them inflated), and must end
// in a one-line WeightsError within bounded time and memory. Plus the limit options themselves.
import { readFileSync } from "node:fs";
import { describe, expect, test } from "vitest";
import { manyEntries, oversizedStorages, pickleFlood } from "../fuzz/targets/amplified.js";
import { writeZip, readZip } from "../fuzz/formats/zip.js";
import {
  DEFAULT_MAX_HEADER_BYTES,
  DEFAULT_MAX_PICKLE_BYTES,
  DEFAULT_MAX_TENSORS,
  loadStateDict,
  parseSafetensors,
  validateLimits,
  WeightsError,
  writeSafetensors,
} from "../src/weights/index.js";
import { DEFAULT_MAX_PICKLE_OPS, unpickle } from "../src/weights/pickle.js";

const MiB = 2 ** 20;

/** The WeightsError `f` throws, how long it took, and how much ArrayBuffer + heap memory grew meanwhile. */
function refusal(f: () => unknown): { message: string; ms: number; grewMiB: number } {
  const m0 = process.memoryUsage();
  const t0 = performance.now();
  let err: unknown;
  try {
    f();
  } catch (e) {
    err = e;
  }
  const ms = performance.now() - t0;
  const m1 = process.memoryUsage();
  expect(err, "expected a WeightsError").toBeInstanceOf(WeightsError);
  const message = (err as Error).message;
  expect(message).not.toContain("\n");
  const grew = Math.max(0, m1.arrayBuffers - m0.arrayBuffers) + Math.max(0, m1.heapUsed - m0.heapUsed);
  return { message, ms, grewMiB: grew / MiB };
}

describe("torch data.pkl inflated from a few hundred KB (issue row 1)", () => {
  test("200 M NONE opcodes in a 194 KB file: refused from its declared size, before inflating (was: V8 fatal error after 15 s at 2.8 GB)", () => {
    const file = pickleFlood("N", 200e6);
    expect(file.length).toBeLessThan(200_000);
    const r = refusal(() => loadStateDict(file));
    expect(r.message).toBe(`torch: "archive/data.pkl" is 200000003 bytes, more than the limit of ${DEFAULT_MAX_PICKLE_BYTES} (maxPickleBytes)`);
    expect(r.ms).toBeLessThan(2000);
    expect(r.grewMiB).toBeLessThan(64);
  });

  test("300 M MARK opcodes (was: a 5-6.6 GB heap, then an out-of-memory abort)", () => {
    const r = refusal(() => loadStateDict(pickleFlood("(", 300e6)));
    expect(r.message).toMatch(/is 300000003 bytes, more than the limit of \d+ \(maxPickleBytes\)/);
    expect(r.ms).toBeLessThan(2000);
  });

  test("a data.pkl declaring less than it inflates to stops at the declared size", () => {
    const r = refusal(() => loadStateDict(pickleFlood("N", 200e6, { declared: MiB })));
    expect(r.message).toBe('zip: entry "archive/data.pkl" inflates to more than the declared 1048576 bytes');
    expect(r.ms).toBeLessThan(2000);
  });

  test("under maxPickleBytes, a 30 M NONE flood (a 29 KB file) stops at the unpickler's opcode limit", () => {
    const file = pickleFlood("N", 30e6);
    expect(file.length).toBeLessThan(30_000);
    const r = refusal(() => loadStateDict(file));
    expect(r.message).toBe(`pickle: more than ${DEFAULT_MAX_PICKLE_OPS} opcodes and copied elements by offset ${DEFAULT_MAX_PICKLE_OPS + 1}; a CLIP checkpoint's pickle needs under 100 000`);
    // 30 MB inflated, then half a million opcodes run
    expect(r.ms).toBeLessThan(5000);
    expect(r.grewMiB).toBeLessThan(256);
  });

  test("maxPickleBytes is an option: a real checkpoint's data.pkl is refused under a smaller one, loads with Infinity", () => {
    const bytes = new Uint8Array(readFileSync("test/fixtures/weights/torch_sd.pt"));
    const pkl = readZip(bytes).find((x) => x.name.endsWith("/data.pkl"))!;
    expect(refusal(() => loadStateDict(bytes, { maxPickleBytes: pkl.data.length - 1 })).message).toMatch(/\(maxPickleBytes\)$/);
    expect(loadStateDict(bytes, { maxPickleBytes: pkl.data.length }).size).toBeGreaterThan(0);
    expect(loadStateDict(bytes, { maxPickleBytes: Infinity }).size).toBeGreaterThan(0);
  });
});

describe("the unpickler's opcode limit bounds the stack, the marks, the memo and every container", () => {
  const ascii = (s: string): Uint8Array => Uint8Array.from(s, (c) => c.charCodeAt(0));
  const flood = (pattern: string, times: number, head = "", tail = "."): Uint8Array => ascii(`\x80\x02${head}${pattern.repeat(times)}${tail}`);
  const floods: [string, string, string][] = [
    ["NONE", "N", ""],
    ["MARK", "(", ""],
    ["EMPTY_DICT", "}", ""],
    ["EMPTY_TUPLE + MEMOIZE", ")\x94", ""],
    ["BINGET", "h\x00", "Nq\x00"],
    ["dicts appended to one list", "}a", "]"],
  ];
  test.each(floods)("%s", (_, pattern, head) => {
    const maxOps = 5000;
    const r = refusal(() => unpickle(flood(pattern, maxOps, head), { maxOps }));
    expect(r.message).toMatch(new RegExp(`^pickle: more than ${maxOps} opcodes and copied elements by offset \\d+`));
    // Under the limit, the same kind of pickle parses (or fails for its own reason, not the limit).
    try {
      unpickle(flood(pattern, 100, head), { maxOps });
    } catch (e) {
      expect((e as Error).message).not.toMatch(/opcodes and copied elements/);
    }
  });

  test("memo entries under ever new LONG_BINPUT keys count as opcodes", () => {
    const puts = Array.from({ length: 3000 }, (_, i) => `r${String.fromCharCode(i & 255, i >> 8, 0, 0)}`).join("");
    expect(refusal(() => unpickle(ascii(`\x80\x02N${puts}.`), { maxOps: 2000 })).message).toMatch(/more than 2000 opcodes/);
  });

  test("elements builders copy count too: OrderedDict(pairs) on one memoised list", () => {
    // OrderedDict, a list of 1000 (key, None) pairs memoised as 3, then REDUCE on it 3 times
    const pairs = "h\x02".repeat(1000);
    const call = "h\x00h\x03R0".repeat(3);
    const text = `\x80\x02ccollections\nOrderedDict\nq\x00\x8c\x01kN\x86q\x020](${pairs}e\x85q\x030${call}N.`;
    expect(unpickle(ascii(text), { maxOps: 20_000 })).toBeNull();
    expect(refusal(() => unpickle(ascii(text), { maxOps: 4000 })).message).toMatch(/REDUCE|opcodes and copied elements/);
  });

  test("maxOps must be a number >= 0", () => {
    expect(refusal(() => unpickle(ascii("\x80\x02N."), { maxOps: Number.NaN })).message).toBe(
      "invalid option maxOps: NaN (expected a number >= 0, or Infinity for no limit)",
    );
  });
});

describe("deflated storages larger than their tensors (issue row 3)", () => {
  test("8 storages of 200 MB behind 1-element tensors, maxTotalBytes 256 MiB: refused before the second is inflated (was: 1.6 GB inflated)", () => {
    const file = oversizedStorages(8, 200e6);
    expect(file.length).toBeLessThan(2_000_000);
    // maxTotalBytes 100 MB: even the first storage is refused before inflation
    const first = refusal(() => loadStateDict(file, { maxTotalBytes: 100e6 }));
    expect(first.message).toBe('entry "archive/data/0" inflates to 200000000 bytes, more than the limit of 100000000 (maxTotalBytes)');
    expect(first.grewMiB).toBeLessThan(32);
  });

  test("the same at a tenth of the size: the inflated bytes count with the tensors across all entries", () => {
    const file = oversizedStorages(8, 20e6);
    const r = refusal(() => loadStateDict(file, { maxTotalBytes: 25.6e6 }));
    // data.pkl (974 bytes) + storage 0 (20 MB) + tensor t0 (4 bytes) + storage 1 (20 MB)
    expect(r.message).toBe('entry "archive/data/1" inflates to 20000000 bytes, taking the load to 40000978 bytes, more than the limit of 25600000 (maxTotalBytes)');
    expect(r.grewMiB).toBeLessThan(60);
    // With room for all of it, the file loads: it is honest, only wasteful.
    const sd = loadStateDict(oversizedStorages(3, 1e6), { maxTotalBytes: 3.1e6 });
    expect([...sd.keys()]).toEqual(["t0", "t1", "t2"]);
    expect(() => loadStateDict(oversizedStorages(3, 1e6), { maxTotalBytes: 3e6 })).toThrow(/\(maxTotalBytes\)$/);
  });

  test("tensors named after inflated entries say what the total includes", () => {
    const items = readZip(new Uint8Array(readFileSync("test/fixtures/weights/torch_sd.pt"))).map((x) => ({ ...x, method: 8 as const }));
    const file = writeZip(items).bytes;
    // what the loader inflates: data.pkl and the storages (not the version record)
    const inflated = items.filter((x) => /\/data(\.pkl|\/\d+)$/.test(x.name)).reduce((s, x) => s + x.data.length, 0);
    const floats = [...loadStateDict(file).values()].reduce((s, t) => s + 4 * t.data.length, 0);
    expect(loadStateDict(file, { maxTotalBytes: inflated + floats }).size).toBeGreaterThan(0);
    expect(refusal(() => loadStateDict(file, { maxTotalBytes: inflated + floats - 1 })).message).toMatch(
      new RegExp(`^tensors up to "[^"]+" need ${floats} bytes as float32 \\(${inflated + floats} with the ${inflated} bytes of inflated entries\\), more than`),
    );
  });
});

describe("safetensors headers of very many entries (issue row 13b)", () => {
  test("past maxTensors: refused from a scan of the header, before JSON.parse builds the entries (was: 1.5 M entries, 32 s, 1.5 GB)", () => {
    const file = manyEntries(150_000);
    const r = refusal(() => loadStateDict(file));
    expect(r.message).toBe(`safetensors: header has at least 149999 tensors, more than the limit of ${DEFAULT_MAX_TENSORS} (maxTensors)`);
    expect(r.ms).toBeLessThan(2000);
    expect(refusal(() => loadStateDict(manyEntries(DEFAULT_MAX_TENSORS + 1))).message).toBe(
      `safetensors: header has ${DEFAULT_MAX_TENSORS + 1} tensors, more than the limit of ${DEFAULT_MAX_TENSORS} (maxTensors)`,
    );
    expect(refusal(() => loadStateDict(manyEntries(30), { maxTensors: 29 })).message).toMatch(/has 30 tensors, more than the limit of 29/);
  });

  test("up to maxTensors, loading is linear: 100 000 entries (a 6 MB header) within 2 s per MB", () => {
    const file = manyEntries(DEFAULT_MAX_TENSORS);
    const t0 = performance.now();
    const sd = parseSafetensors(file);
    expect(sd.size).toBe(DEFAULT_MAX_TENSORS);
    expect(performance.now() - t0).toBeLessThan((2000 * file.length) / 1e6);
  });

  test("JSON values are counted too: a __metadata__ of many keys, shapes of many dimensions", () => {
    const meta: Record<string, string> = {};
    for (let i = 0; i < 200; i++) meta[`k${i}`] = "";
    const file = writeSafetensors(new Map([["a", { data: new Float32Array(1), shape: [1] }]]), "F32", meta);
    expect(loadStateDict(file).size).toBe(1);
    expect(refusal(() => loadStateDict(file, { maxTensors: 10 })).message).toBe(
      "safetensors: header holds 204 JSON values, more than 16 per allowed tensor (maxTensors 10)",
    );
    expect(refusal(() => loadStateDict(manyEntries(2, new Array<number>(65).fill(1)))).message).toBe('safetensors: tensor "0" has 65 dimensions, more than 64');
  });

  test("maxHeaderBytes is an option (default the reference's 100 MB); values in messages are cut short", () => {
    expect(DEFAULT_MAX_HEADER_BYTES).toBe(100_000_000);
    const file = manyEntries(10);
    const n = new DataView(file.buffer).getUint32(0, true);
    expect(loadStateDict(file, { maxHeaderBytes: n }).size).toBe(10);
    expect(refusal(() => loadStateDict(file, { maxHeaderBytes: n - 1 })).message).toBe(
      `safetensors: header of ${n} bytes, more than the limit of ${n - 1} (maxHeaderBytes)`,
    );
    const long = "x".repeat(1_000_000);
    const json = new TextEncoder().encode(JSON.stringify({ [long]: { dtype: long, shape: [1], data_offsets: [0, 4] } }));
    const bad = new Uint8Array(8 + json.length + 4);
    new DataView(bad.buffer).setUint32(0, json.length, true);
    bad.set(json, 8);
    const r = refusal(() => loadStateDict(bad));
    expect(r.message.length).toBeLessThan(250);
    expect(r.message).toMatch(/^safetensors: tensor "x+…" has unsupported dtype "x+…/);
  });
});

describe("limit options are validated (issue row 8)", () => {
  const sd = new Map([["a", { data: new Float32Array(4), shape: [4] }]]);
  const st = writeSafetensors(sd, "F32");
  const pt = new Uint8Array(readFileSync("test/fixtures/weights/torch_sd.pt"));
  const bad: [string, unknown, string][] = [
    ["maxTensorBytes", Number.NaN, "NaN"],
    ["maxTotalBytes", Number.NaN, "NaN"],
    ["maxTotalBytes", -1, "-1"],
    ["maxTensors", "100", '"100"'],
    ["maxHeaderBytes", null, "null"],
    ["maxPickleBytes", 10n, "a bigint"],
    ["maxTensorBytes", [1], "an array"],
    ["maxTotalBytes", -Infinity, "-Infinity"],
  ];
  test.each(bad)("%s: %s is refused, naming the option (it silently switched the limit off)", (name, value, shown) => {
    const expected = `invalid option ${name}: ${shown} (expected a number >= 0, or Infinity for no limit)`;
    for (const bytes of [st, pt, new Uint8Array(3)]) {
      expect(refusal(() => loadStateDict(bytes, { [name]: value })).message).toBe(expected);
    }
    expect(() => parseSafetensors(st, { [name]: value })).toThrow(expected);
  });

  test("0, fractions and Infinity are limits; undefined is the default", () => {
    expect(loadStateDict(st, { maxTensorBytes: Infinity, maxTotalBytes: Infinity, maxTensors: Infinity }).size).toBe(1);
    expect(loadStateDict(st, { maxTensorBytes: 16.5, maxTotalBytes: undefined }).size).toBe(1);
    expect(() => loadStateDict(st, { maxTensorBytes: 0 })).toThrow(/more than the limit of 0 \(maxTensorBytes\)/);
    expect(() => loadStateDict(st, { maxTensors: 0 })).toThrow(/more than the limit of 0 \(maxTensors\)/);
  });

  test("validateLimits serves other options and error classes", () => {
    expect(() => validateLimits({ maxBatch: 8, maxPixels: Infinity }, ["maxBatch", "maxPixels"])).not.toThrow();
    expect(() => validateLimits({ maxPixels: Number.NaN }, ["maxBatch", "maxPixels"], (m) => new RangeError(m))).toThrow(
      new RangeError("invalid option maxPixels: NaN (expected a number >= 0, or Infinity for no limit)"),
    );
    expect(() => validateLimits({ maxBatch: "x".repeat(100) }, ["maxBatch"])).toThrow(/^invalid option maxBatch: "x{40}…" \(/);
  });
});
