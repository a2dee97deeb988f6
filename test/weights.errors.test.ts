// Bad input of every kind must end in a WeightsError with a useful message: never a RangeError/TypeError,
// a hang, or an allocation sized by a lying file.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { zipSync } from "fflate";
import { afterAll, describe, expect, test } from "vitest";
import { openWeightsFile } from "../src/weights/file.js";
import { loadStateDict, loadStateDictWithFormat, parseSafetensors, WeightsError, ZipArchive, type LoadStateDictOptions } from "../src/weights/index.js";
import type { StateDict } from "../src/tensor.js";

const DIR = "test/fixtures/weights/";
const fixture = (name: string): Uint8Array => new Uint8Array(readFileSync(DIR + name));

function throwsWeights(f: () => unknown, msg: RegExp): void {
  let err: unknown;
  try {
    f();
  } catch (e) {
    err = e;
  }
  expect(err, "expected a WeightsError").toBeInstanceOf(WeightsError);
  expect((err as Error).message).toMatch(msg);
}

/**
 * fast-check runs (`runs` of each) of a file with 1-3 bytes changed (with a verifyChecksums flag to try), then with
 * a hole of 1-64 bytes cut at or after byte `from`: the end record kept, everything after the hole shifted.
 */
function mutations(file: Uint8Array, runs: number, from: number, check: (b: Uint8Array, checksums: boolean) => void): void {
  fc.assert(
    fc.property(
      fc.array(fc.tuple(fc.nat(file.length - 1), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 3 }),
      fc.boolean(),
      (edits, checksums) => {
        const b = file.slice();
        for (const [i, v] of edits) b[i] = v;
        check(b, checksums);
      },
    ),
    { numRuns: runs },
  );
  fc.assert(
    fc.property(fc.integer({ min: from, max: file.length - 1 }), fc.integer({ min: 1, max: 64 }), (at, len) => {
      const b = new Uint8Array(file.length - Math.min(len, file.length - at));
      b.set(file.subarray(0, at));
      b.set(file.subarray(at + len), at);
      check(b, false);
    }),
    { numRuns: runs },
  );
}

/** Runs f; anything thrown must be a WeightsError. */
function cleanly(f: () => unknown): void {
  try {
    f();
  } catch (e) {
    if (!(e instanceof WeightsError)) throw e;
  }
}

// ---- builders ----

const te = new TextEncoder();

function safetensors(header: unknown, data: Uint8Array | number = 0): Uint8Array {
  const json = te.encode(JSON.stringify(header));
  const body = typeof data === "number" ? new Uint8Array(data) : data;
  const out = new Uint8Array(8 + json.length + body.length);
  new DataView(out.buffer).setUint32(0, json.length, true);
  out.set(json, 8);
  out.set(body, 8 + json.length);
  return out;
}

/** Pickle bytes from opcodes (numbers) and latin1 literals (strings). */
function pk(...parts: (number | string | Uint8Array)[]): Uint8Array {
  const out: number[] = [];
  for (const p of parts) {
    if (typeof p === "number") out.push(p);
    else if (p instanceof Uint8Array) out.push(...p);
    else for (const c of p) out.push(c.charCodeAt(0));
  }
  return Uint8Array.from(out);
}

const str = (s: string): Uint8Array => {
  const b = te.encode(s);
  return pk("X", b.length & 0xff, (b.length >> 8) & 0xff, 0, 0, b);
};
/** Non-negative int as LONG1 (8 bytes) so large sizes fit. */
const int = (n: number): Uint8Array => {
  const b = new Uint8Array(10);
  b[0] = 0x8a;
  b[1] = 8;
  new DataView(b.buffer).setBigUint64(2, BigInt(n), true);
  return b;
};

interface FakeTensor {
  name: string;
  type?: string;
  key: string;
  numel: number;
  offset?: number;
  shape: number[];
  stride?: number[];
}

/** A data.pkl shaped like torch.save's: OrderedDict of _rebuild_tensor_v2 over persistent storages. */
function stateDictPickle(tensors: FakeTensor[]): Uint8Array {
  const parts: Uint8Array[] = [pk(0x80, 2, "ccollections\nOrderedDict\n)R")];
  for (const t of tensors) {
    const stride = t.stride ?? t.shape.map((_, i) => t.shape.slice(i + 1).reduce((a, b) => a * b, 1));
    parts.push(
      str(t.name),
      pk("ctorch._utils\n_rebuild_tensor_v2\n((", str("storage"), `ctorch\n${t.type ?? "FloatStorage"}\n`),
      str(t.key),
      str("cpu"),
      int(t.numel),
      pk("tQ"),
      int(t.offset ?? 0),
      pk("("),
      ...t.shape.map(int),
      pk("t("),
      ...stride.map(int),
      pk("t", 0x89, "ccollections\nOrderedDict\n)RtRs"),
    );
  }
  parts.push(pk("."));
  return pk(...parts);
}

function torchZip(files: Record<string, Uint8Array>): Uint8Array {
  return zipSync(Object.fromEntries(Object.entries(files).map(([k, v]) => [k, [v, { level: 0 }]])));
}

const f32 = (...v: number[]): Uint8Array => new Uint8Array(Float32Array.from(v).buffer);

// ---- tests ----

describe("format detection", () => {
  test("unknown content", () => {
    throwsWeights(() => loadStateDict(new Uint8Array(0)), /unrecognised weights format/);
    throwsWeights(() => loadStateDict(te.encode("hello, I am not a checkpoint")), /unrecognised weights format/);
  });

  test("a hand-made archive in torch's layout loads; fflate's zip differs from torch's writer", () => {
    const sd = loadStateDict(torchZip({ "x/data.pkl": stateDictPickle([{ name: "w", key: "0", numel: 3, shape: [3] }]), "x/data/0": f32(1, 2, 3) }));
    expect(Array.from(sd.get("w")!.data)).toEqual([1, 2, 3]);
  });
});

describe("safetensors errors", () => {
  const good = () => safetensors({ a: { dtype: "F32", shape: [2], data_offsets: [0, 8] } }, f32(1, 2));

  test("the builder's file is valid", () => {
    expect(Array.from(parseSafetensors(good()).get("a")!.data)).toEqual([1, 2]);
  });

  test("lying or absurd header lengths", () => {
    const b = good();
    new DataView(b.buffer).setUint32(0, b.length, true);
    throwsWeights(() => parseSafetensors(b), /header length \d+ exceeds the \d+ bytes after the length field/);
    new DataView(b.buffer).setUint32(4, 0x10000000, true);
    throwsWeights(() => parseSafetensors(b), /too short or its header length is absurd/);
    throwsWeights(() => parseSafetensors(new Uint8Array(5)), /too short/);
  });

  test("header content", () => {
    const raw = (s: string) => {
      const j = te.encode(s);
      const out = new Uint8Array(8 + j.length);
      out[0] = j.length;
      out.set(j, 8);
      return out;
    };
    throwsWeights(() => parseSafetensors(raw("{not json")), /not valid UTF-8 JSON/);
    throwsWeights(() => parseSafetensors(raw("[1,2]")), /not a JSON object/);
    const bad = raw('{"a":"\u00ff"}');
    bad[bad.length - 3] = 0xff;
    throwsWeights(() => parseSafetensors(bad), /not valid UTF-8 JSON/);
    throwsWeights(() => parseSafetensors(safetensors({ a: 5 })), /entry "a" is not an object/);
  });

  test("dtype, shape and offsets are checked against each other and the data area", () => {
    throwsWeights(
      () => parseSafetensors(safetensors({ a: { dtype: "F8_E4M3", shape: [1], data_offsets: [0, 1] } }, 1)),
      /tensor "a" has unsupported dtype "F8_E4M3"/,
    );
    throwsWeights(() => parseSafetensors(safetensors({ a: { dtype: "F32", shape: [-1], data_offsets: [0, 4] } }, 4)), /invalid shape \[-1\]/);
    throwsWeights(() => parseSafetensors(safetensors({ a: { dtype: "F32", shape: [1.5], data_offsets: [0, 4] } }, 4)), /invalid shape/);
    throwsWeights(() => parseSafetensors(safetensors({ a: { dtype: "F32", shape: [1], data_offsets: [0] } }, 4)), /invalid data_offsets/);
    throwsWeights(
      () => parseSafetensors(safetensors({ a: { dtype: "F32", shape: [1], data_offsets: [4, 8] } }, 4)),
      /data_offsets \[4, 8\] lie outside the 4-byte data area/,
    );
    throwsWeights(() => parseSafetensors(safetensors({ a: { dtype: "F32", shape: [1], data_offsets: [8, 4] } }, 8)), /lie outside/);
    throwsWeights(
      () => parseSafetensors(safetensors({ a: { dtype: "F32", shape: [3], data_offsets: [0, 8] } }, 8)),
      /F32\[3\] needs 12 bytes but data_offsets span 8/,
    );
    // A declared size far beyond the file is refused by arithmetic, before any allocation.
    throwsWeights(
      () => parseSafetensors(safetensors({ a: { dtype: "F32", shape: [2 ** 26, 2 ** 26], data_offsets: [0, 8] } }, 8)),
      /needs 18014398509481984 bytes/,
    );
    throwsWeights(
      () =>
        parseSafetensors(
          safetensors({ a: { dtype: "F32", shape: [2], data_offsets: [0, 8] }, b: { dtype: "F32", shape: [1], data_offsets: [4, 8] } }, 8),
        ),
      /tensors "a" and "b" overlap/,
    );
  });

  test("every truncation and random corruption of a real file", () => {
    const file = fixture("tiny.safetensors");
    for (let cut = 0; cut < file.length; cut++) {
      throwsWeights(() => parseSafetensors(file.subarray(0, cut)), /^safetensors: /);
    }
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.nat(file.length - 1), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 3 }), (edits) => {
        const b = file.slice();
        for (const [i, v] of edits) b[i] = v;
        cleanly(() => loadStateDict(b));
      }),
      { numRuns: 200 },
    );
  });
});

describe("zip errors", () => {
  const base = () => torchZip({ "x/data.pkl": stateDictPickle([{ name: "w", key: "0", numel: 3, shape: [3] }]), "x/data/0": f32(1, 2, 3) });
  const eocdOf = (b: Uint8Array) => b.length - 22;
  const dv = (b: Uint8Array) => new DataView(b.buffer, b.byteOffset, b.byteLength);
  const centralOf = (b: Uint8Array, i: number) => {
    let p = dv(b).getUint32(eocdOf(b) + 16, true);
    for (let k = 0; k < i; k++) p += 46 + dv(b).getUint16(p + 28, true) + dv(b).getUint16(p + 30, true) + dv(b).getUint16(p + 32, true);
    return p;
  };

  test("central directory outside the file, or too small for its entry count", () => {
    const b = base();
    dv(b).setUint32(eocdOf(b) + 16, 0x7fff0000, true);
    throwsWeights(() => loadStateDict(b), /central directory \[2147418112, \d+\) extends past its end record/);
    const c = base();
    dv(c).setUint16(eocdOf(c) + 10, 9000, true);
    throwsWeights(() => loadStateDict(c), /9000 entries cannot fit in a \d+-byte central directory/);
    const d = base();
    dv(d).setUint16(eocdOf(d) + 10, 0xffff, true);
    throwsWeights(() => loadStateDict(d), /zip64 locator is missing/);
  });

  test("no end record at all", () => {
    const b = base().subarray(0, 100);
    throwsWeights(() => loadStateDict(b), /end of central directory record not found/);
  });

  test("local header offsets outside the data, overlapping entries, bad signatures", () => {
    const b = base();
    dv(b).setUint32(centralOf(b, 1) + 42, 0x10000000, true);
    throwsWeights(() => loadStateDict(b), /entry "x\/data\/0" \(local header at 268435456, 12 bytes\) extends into the central directory/);
    const c = base();
    dv(c).setUint32(centralOf(c, 1) + 42, 0, true);
    throwsWeights(() => loadStateDict(c), /entries "x\/data.pkl" and "x\/data\/0" overlap/);
    const d = base();
    dv(d).setUint32(centralOf(d, 1), 0x12345678, true);
    throwsWeights(() => loadStateDict(d), /bad central directory signature for entry 1/);
    const e = base();
    const second = new ZipArchive(e).get("x/data/0")!.localHeaderOffset;
    dv(e).setUint32(second, 0x12345678, true);
    throwsWeights(() => loadStateDict(e), new RegExp(`bad local header signature for "x/data/0" at offset ${second}`));
  });

  test("the data offset comes from the local header's own name/extra lengths", () => {
    const b = base();
    const z = new ZipArchive(b);
    const entry = z.get("x/data/0")!;
    // Grow the local extra length by 4: the data start moves, so the bytes (and the CRC) no longer match.
    const off = entry.localHeaderOffset;
    dv(b).setUint16(off + 28, dv(b).getUint16(off + 28, true) + 4, true);
    throwsWeights(() => new ZipArchive(b).read("x/data/0"), /CRC mismatch in "x\/data\/0"/);
  });

  test("compression: unsupported methods, encryption, lying sizes, corrupt deflate", () => {
    const m = base();
    dv(m).setUint16(centralOf(m, 1) + 10, 12, true);
    throwsWeights(() => loadStateDict(m), /"x\/data\/0" uses unsupported compression method 12/);
    const enc = base();
    dv(enc).setUint16(centralOf(enc, 0) + 8, 1, true);
    throwsWeights(() => loadStateDict(enc), /"x\/data.pkl" is encrypted/);
    const s = base();
    dv(s).setUint32(centralOf(s, 1) + 24, 13, true);
    throwsWeights(() => loadStateDict(s), /stored entry "x\/data\/0" has compressed size 12 != uncompressed size 13/);

    const deflated = zipSync({ "x/data.pkl": [stateDictPickle([{ name: "w", key: "0", numel: 3, shape: [3] }]), { level: 6 }], "x/data/0": [f32(1, 2, 3), { level: 0 }] });
    expect(Array.from(loadStateDict(deflated).get("w")!.data)).toEqual([1, 2, 3]);
    const huge = deflated.slice();
    dv(huge).setUint32(centralOf(huge, 0) + 24, 0xfffffff0, true);
    throwsWeights(() => loadStateDict(huge), /"x\/data.pkl" is 4294967280 bytes, more than the limit of 67108864 \(maxPickleBytes\)/);
    throwsWeights(() => loadStateDict(huge, { maxPickleBytes: Infinity }), /declares 4294967280 bytes from \d+ deflated bytes, which is impossible/);
    const short = deflated.slice();
    dv(short).setUint32(centralOf(short, 0) + 24, 10, true);
    throwsWeights(() => loadStateDict(short), /"x\/data.pkl" inflates to more than the declared 10 bytes/);
    const long = deflated.slice();
    dv(long).setUint32(centralOf(long, 0) + 24, 1000, true);
    throwsWeights(() => loadStateDict(long), /inflates to \d+ bytes, not the declared 1000 bytes/);
    const corrupt = deflated.slice();
    const start = 30 + dv(corrupt).getUint16(26, true) + dv(corrupt).getUint16(28, true);
    corrupt[start]! ^= 0xff;
    corrupt[start + 1]! ^= 0xff;
    throwsWeights(() => loadStateDict(corrupt), /zip: (corrupt deflate data|CRC mismatch|entry "x\/data.pkl" inflates)/);
  });

  test("zip64 fixture: a bad locator or record", () => {
    const file = fixture("torch_sd_zip64.pt");
    const eocd = file.length - 22 - "zip64 fixture".length; // the fixture's archive comment follows the end record
    expect(dv(file).getUint32(eocd, true)).toBe(0x06054b50);
    const loc = eocd - 20;
    expect(dv(file).getUint32(loc, true)).toBe(0x07064b50);
    const far = file.slice();
    dv(far).setUint32(loc + 8, 0x7fffffff, true);
    throwsWeights(() => loadStateDict(far), /zip64 end of central directory record at offset 2147483647/);
    const sig = file.slice();
    const z = dv(file).getUint32(loc + 8, true);
    dv(sig).setUint32(z, 0, true);
    throwsWeights(() => loadStateDict(sig), /bad zip64 end record signature/);
    const count = file.slice();
    dv(count).setUint32(z + 32, 100000, true);
    throwsWeights(() => loadStateDict(count), /100000 entries cannot fit/);
  });

  test("every truncation of torch checkpoints (cut before the end record)", () => {
    for (const name of ["torch_sd.pt", "torch_sd_zip64.pt"]) {
      const file = fixture(name);
      for (let cut = 0; cut < file.length; cut++) throwsWeights(() => loadStateDict(file.subarray(0, cut)), /./);
    }
  });

  test("random corruption of torch.save, zip64 and TorchScript archives", () => {
    for (const name of ["torch_sd.pt", "torch_sd_zip64.pt", "torchscript_tree.pt"]) {
      mutations(fixture(name), 200, 0, (b, checksums) => cleanly(() => loadStateDict(b, { verifyChecksums: checksums })));
    }
  });
});

describe("a torch zip read from its file (openWeightsFile) fails or loads exactly as its bytes do", () => {
  const dir = mkdtempSync(join(tmpdir(), "clip-ts-zipfile-")), path = join(dir, "w.pt");
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  /** The error's message, or the names, shapes and values loaded. */
  function outcome(f: () => { stateDict: StateDict } | null): string {
    try {
      return [...f()!.stateDict].map(([k, t]) => `${k} [${t.shape}] ${Array.from(t.data).join(",")}`).join("\n");
    } catch (e) {
      if (!(e instanceof WeightsError)) throw e;
      return `error: ${e.message}`;
    }
  }
  const same = (b: Uint8Array, opts: LoadStateDictOptions = {}) => {
    writeFileSync(path, b);
    expect(outcome(() => openWeightsFile(path, opts))).toBe(outcome(() => loadStateDictWithFormat(b, opts)));
  };
  const names = ["torch_sd.pt", "torch_sd_zip64.pt", "torchscript_tree.pt", "torch_extras.pt", "torch_wrapped.pt"];

  test("intact, truncated at about 500 points, and with verifyChecksums", () => {
    for (const name of names) {
      const file = fixture(name);
      same(file);
      same(file, { verifyChecksums: true });
      expect(outcome(() => openWeightsFile(path))).not.toMatch(/^error/);
      for (let cut = 4; cut < file.length; cut += Math.ceil(file.length / 500)) same(file.subarray(0, cut));
    }
  });

  test("random corruption and holes", () => {
    for (const name of names) {
      const file = fixture(name);
      mutations(file, 100, 4, (b, checksums) => {
        b.set(file.subarray(0, 4)); // still a zip by its first bytes, so the file is opened as one
        same(b, { verifyChecksums: checksums });
      });
    }
  });
});

describe("torch checkpoint errors", () => {
  test("a disallowed global inside data.pkl is named", () => {
    const evil = pk(0x80, 2, "cos\nsystem\n", str("echo pwned"), 0x85, "R.");
    throwsWeights(() => loadStateDict(torchZip({ "archive/data.pkl": evil })), /pickle: global os\.system is not allowed/);
    const evil4 = pk(0x80, 4, 0x8c, 8, "builtins", 0x8c, 4, "eval", 0x93, str("1"), 0x85, "R.");
    throwsWeights(() => loadStateDict(torchZip({ "archive/data.pkl": evil4 })), /global builtins\.eval is not allowed/);
  });

  test("archive structure", () => {
    throwsWeights(() => loadStateDict(torchZip({ "a/other.bin": f32(1) })), /has no <folder>\/data.pkl/);
    throwsWeights(() => loadStateDict(torchZip({ "a/model.json": te.encode("{}") })), /pre-1.4 model.json format/);
    throwsWeights(() => loadStateDict(torchZip({ "a/data.pkl": pk(0x80, 2, "N."), "b/data.pkl": pk(0x80, 2, "N.") })), /several data.pkl/);
    throwsWeights(() => loadStateDict(torchZip({ "a/data.pkl": pk(0x80, 2, "]K", 1, "a.") })), /data.pkl holds a list/);
    throwsWeights(() => loadStateDict(torchZip({ "a/data.pkl": pk(0x80, 2, "}", str("epoch"), "K", 3, "s.") })), /contains no tensors/);
  });

  test("storages: missing, too small, wrong persistent ids", () => {
    const t = { name: "w", key: "0", numel: 3, shape: [3] };
    throwsWeights(() => loadStateDict(torchZip({ "a/data.pkl": stateDictPickle([t]) })), /tensor "w" refers to storage "0" but a\/data\/0 is missing/);
    throwsWeights(
      () => loadStateDict(torchZip({ "a/data.pkl": stateDictPickle([t]), "a/data/0": f32(1, 2) })),
      /storage "0" declares 3 F32 elements \(12 bytes\) but has 8 bytes/,
    );
    throwsWeights(
      () => loadStateDict(torchZip({ "a/data.pkl": stateDictPickle([{ ...t, numel: 2 ** 50 }]), "a/data/0": f32(1, 2, 3) })),
      /declares 1125899906842624 F32 elements/,
    );
    throwsWeights(
      () => loadStateDict(torchZip({ "a/data.pkl": stateDictPickle([{ ...t, type: "QInt8Storage" }]), "a/data/0": f32(1, 2, 3) })),
      /global torch\.QInt8Storage is not allowed/,
    );
    const oddPid = pk(0x80, 2, "}", str("w"), "ctorch._utils\n_rebuild_tensor_v2\n(", str("not-a-storage"), "QK", 0, ")", ")", 0x89, "Ns.");
    throwsWeights(() => loadStateDict(torchZip({ "a/data.pkl": oddPid })), /unsupported persistent id str/);
  });

  test("views reaching outside their storage, and huge views of tiny storages", () => {
    const files = (t: FakeTensor) => torchZip({ "a/data.pkl": stateDictPickle([t]), "a/data/0": f32(1, 2, 3, 4) });
    throwsWeights(
      () => loadStateDict(files({ name: "w", key: "0", numel: 4, offset: 2, shape: [3], stride: [1] })),
      /tensor "w" \(offset 2, size \[3\], stride \[1\]\) reaches element 4 of a 4-element storage/,
    );
    throwsWeights(
      () => loadStateDict(files({ name: "w", key: "0", numel: 4, shape: [2, 3], stride: [3, 1] })),
      /reaches element 5 of a 4-element storage/,
    );
    // Stride 0 makes any size fit a 1-element storage; the total-size budget stops it before allocating.
    throwsWeights(
      () => loadStateDict(files({ name: "w", key: "0", numel: 4, shape: [2 ** 40], stride: [0] })),
      /tensor "w" would take the total size beyond what a \d+-byte file can hold/,
    );
    throwsWeights(
      () => loadStateDict(files({ name: "w", key: "0", numel: 4, shape: [2 ** 30, 2 ** 30], stride: [0, 0] })),
      /impossibly large shape/,
    );
    // Many full-size views of one storage add up against the same budget.
    const many = Array.from({ length: 40 }, (_, i) => ({ name: `w${i}`, key: "0", numel: 2 ** 18, shape: [2 ** 18] }));
    const big = new Uint8Array(4 * 2 ** 18);
    throwsWeights(() => loadStateDict(torchZip({ "a/data.pkl": stateDictPickle(many), "a/data/0": big })), /would take the total size beyond/);
  });

  test("TorchScript module trees that loop or nest absurdly deep", () => {
    // A module whose attribute is itself (through the memo).
    const cyclic = pk(0x80, 2, "c__torch__\nM\n)", 0x81, "q", 0, "}", str("self"), "h", 0, "sb.");
    throwsWeights(() => loadStateDict(torchZip({ "a/data.pkl": cyclic })), /module self contains itself/);
    const parts: Uint8Array[] = [pk(0x80, 2)];
    const depth = 500;
    for (let i = 0; i < depth; i++) parts.push(pk("c__torch__\nM\n)", 0x81, "}", str("c")));
    for (let i = 0; i < depth; i++) parts.push(pk(i === 0 ? "N" : "", "sb"));
    parts.push(pk("."));
    throwsWeights(() => loadStateDict(torchZip({ "a/data.pkl": pk(...parts) })), /modules nested more than 200 deep/);
  });
});
