// .npy files: header dictionaries rewritten with hostile descr (object arrays, big-endian, unicode, complex,
// structured), shapes (negative, fractional, huge, overflowing, thousands of dims), Fortran order, missing and
// repeated keys; lying header-length fields, unknown versions, data cut or extended; raw byte edits. Each input goes
// through readNpy, readNpyFloat32 and readNpyTokens.
import { NpyError, readNpy, readNpyFloat32, readNpyTokens } from "../../src/npy.js";
import type { FuzzTarget } from "../harness.js";
import { concat, getUint, havoc, interestingInt, setUint, utf8 } from "../mutate.js";
import type { Rng } from "../rng.js";
import { pickSeed, seedFiles, type SeedFile } from "../seeds.js";

const DESCRS = [
  "<f4", "<f8", "<f2", "<i4", "<i8", "|u1", "|i1", "<u2", "<i2", "<u4", "<u8", "|b1",
  ">f4", ">i8", "=f4", "|f4", "f4", "<c8", "<c16", "|O", "<U8", "|S4", "|V8", "<M8[ns]", "<m8[s]", "<f16", "<f3", "", "<", "<i0", "<U0",
];

/** A v1.0 (or later) .npy file with the given header text, padded as numpy pads it (to a multiple of 64). */
export function npyFile(dict: string, data: Uint8Array, version = 1, pad = 64): Uint8Array {
  const prefix = version === 1 ? 10 : 12;
  let h = dict;
  while ((prefix + h.length + 1) % pad !== 0) h += " ";
  const header = utf8(h + "\n");
  const head = new Uint8Array(prefix);
  head.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, version, 0]);
  setUint(head, 8, version === 1 ? 2 : 4, header.length);
  return concat(head, header, data);
}

function shapeText(rng: Rng, real: number[]): { text: string; dims: number[] } {
  switch (rng.int(9)) {
    case 0:
      return { text: `(${real.join(", ")}${real.length === 1 ? "," : ""})`, dims: real };
    case 1: {
      const d = real.map((x) => (rng.chance(0.4) ? interestingInt(rng, 64, x) : x));
      return { text: `(${d.join(", ")},)`, dims: d };
    }
    case 2:
      return { text: `(${real.map((x) => -x).join(", ")},)`, dims: real.map((x) => -x) };
    case 3:
      return { text: `(${real.map((x) => x + 0.5).join(", ")},)`, dims: real };
    case 4: {
      const n = real.reduce((a, b) => a * b, 1);
      return { text: `(${[n, ...new Array<number>(rng.pick([32, 1000, 20_000])).fill(1)].join(", ")})`, dims: [n] };
    }
    case 5:
      return { text: rng.pick(["()", "(,)", "(0,)", "(2**62,)", "(0x10,)", "(1e3,)", "(None,)", "((2,3),)", "[2, 3]", "(3L,)", "(+4,)", "( 2 ,  3 )"]), dims: [] };
    case 6: {
      // A product that overflows 2^53 while a zero keeps it honest, or that wraps to the data size in 32 bits.
      const d = rng.chance(0.5) ? [0, 2 ** 40, 2 ** 40] : [2 ** 32 + real[0]!, ...real.slice(1)];
      return { text: `(${d.join(", ")})`, dims: d };
    }
    case 7:
      return { text: `(${[2 ** 31, 2 ** 31, 2 ** 31].join(", ")})`, dims: [] };
    default:
      return { text: `(${"9".repeat(rng.pick([20, 400]))},)`, dims: [] };
  }
}

function headerDict(rng: Rng, descr: string, fortran: string, shape: string): { text: string; how: string } {
  const entries = [`'descr': '${descr}'`, `'fortran_order': ${fortran}`, `'shape': ${shape}`];
  let how = `descr ${descr}, fortran ${fortran}, shape ${shape.slice(0, 40)}`;
  const r = rng.int(10);
  if (r === 0) {
    entries.splice(rng.int(3), 1);
    how += ", a key missing";
  } else if (r === 1) {
    entries.push(rng.pick(entries));
    how += ", a key repeated";
  } else if (r === 2) {
    entries.push(rng.pick(["'extra': 1", "'descr': '|O'", "'shape': (1,)", "'fortran_order': True"]));
    how += ", an extra key";
  } else if (r === 3) {
    entries.reverse();
    how += ", keys reordered";
  }
  let text = `{${entries.join(", ")}, }`;
  if (rng.chance(0.1)) {
    text = rng.pick([text.replace(/'/g, '"'), text.slice(1), text + "}", text.replace("{", "{{"), "[]", "", "{}", text.replace(/ /g, "")]);
    how += ", dict syntax broken";
  }
  return { text, how };
}

interface NpySeed extends SeedFile {
  descr: string;
  shape: number[];
  data: Uint8Array;
}

function parseSeed(s: SeedFile): NpySeed {
  const len = getUint(s.bytes, 8, 2);
  const header = new TextDecoder().decode(s.bytes.subarray(10, 10 + len));
  const descr = /'descr': '([^']*)'/.exec(header)![1]!;
  const shape = /'shape': \(([^)]*)\)/.exec(header)![1]!.split(",").filter((x) => x.trim() !== "").map(Number);
  return { ...s, descr, shape, data: s.bytes.subarray(10 + len) };
}

export function npyTarget(): FuzzTarget<Uint8Array> {
  const seeds = [
    ...seedFiles("test/golden/models/vit", /\.npy$/, 64 * 1024),
    ...seedFiles("test/golden/parity/vit", /\.npy$/, 64 * 1024),
  ].map(parseSeed);
  return {
    name: "npy",
    errorName: "NpyError",
    isTyped: (e) => e instanceof NpyError,
    run(bytes) {
      // Every reader runs: one refusing must not hide another crashing. The case counts as refused when readNpy is.
      const errors = [readNpy, readNpyFloat32, readNpyTokens].map((read) => {
        try {
          read(bytes);
          return undefined;
        } catch (e) {
          if (!(e instanceof NpyError) || e.message === "") throw e;
          return e;
        }
      });
      if (errors[0]) throw errors[0];
      const arr = readNpy(bytes);
      const length = (arr.data as unknown as ArrayLike<unknown>).length;
      if (!arr.shape.every((d) => Number.isSafeInteger(d) && d >= 0) || length !== arr.shape.reduce((a, b) => a * b, 1)) {
        throw new Error(`oracle: accepted shape [${arr.shape.join(", ")}] with ${length} values`);
      }
    },
    files: (bytes) => ({ "case.npy": bytes }),
    generate(rng) {
      const seed = pickSeed(rng, seeds);
      const mode = rng.weighted([45, 15, 10, 30]);
      if (mode === 0) {
        const descr = rng.chance(0.3) ? seed.descr : rng.pick(DESCRS);
        const fortran = rng.pick(["False", "False", "True", "0", "'False'", "None"]);
        const shape = shapeText(rng, seed.shape);
        const dict = headerDict(rng, descr, fortran, shape.text);
        let data = seed.data;
        if (rng.chance(0.2)) data = data.subarray(0, rng.int(data.length + 1));
        const version = rng.chance(0.85) ? 1 : rng.pick([2, 3]);
        const pad = rng.chance(0.9) ? 64 : rng.pick([1, 2, 3, 16]);
        return { input: npyFile(dict.text, data, version, pad), how: `${seed.name}: v${version} pad ${pad}, ${dict.how}` };
      }
      if (mode === 1) {
        // Lying header length (and version) fields.
        const b = seed.bytes.slice();
        const hows: string[] = [];
        if (rng.chance(0.3)) {
          b[6] = rng.pick([0, 2, 3, 4, 255]);
          hows.push(`version ${b[6]}.${b[7]}`);
        }
        const width = b[6] === 1 ? 2 : 4;
        setUint(b, 8, width, interestingInt(rng, (width * 8) as 16 | 32, getUint(b, 8, width)));
        hows.push(`header length ${getUint(b, 8, width)}`);
        return { input: b, how: `${seed.name}: ${hows.join(", ")}` };
      }
      if (mode === 2) {
        const k = rng.smallInt(256) + 1;
        const cut = rng.chance(0.5);
        const input = cut ? seed.bytes.subarray(0, Math.max(0, seed.bytes.length - k)) : concat(seed.bytes, rng.bytes(k));
        return { input, how: `${seed.name}: ${cut ? "cut" : "extended"} by ${k}` };
      }
      const r = havoc(rng, seed.bytes, [0, 6, 8, 10, seed.bytes.length - seed.data.length]);
      return { input: r.bytes, how: `${seed.name}: ${r.how}` };
    },
  };
}
