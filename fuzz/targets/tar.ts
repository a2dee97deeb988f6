// Tar archives (collection inputs: WebDataset shards): header fields rewritten behind a repaired checksum (sizes as
// octal, base-256, huge, past the end; type flags; magic; names not UTF-8 or empty; mtimes), pax headers with hostile
// records (lying lengths, sizes, paths over the limit, NULs), GNU long names (no NUL, huge, at the end), floods of
// headers under a small maxEntries, truncations and extensions, raw byte edits. Each input is written to a file
// (listTar reads by offset), listed, and every member read back.
import { rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { threadId } from "node:worker_threads";
import { listTar, readTarEntry, TarError, type TarLimits } from "../../src/collection/tar.js";
import { BLOCK, endOffset, fixChecksum, headerOffsets, member, paxHeader, paxRecord, tarHeader } from "../formats/tar.js";
import type { FuzzTarget } from "../harness.js";
import { concat, havoc, interestingInt, utf8 } from "../mutate.js";
import type { Rng } from "../rng.js";
import { pickSeed, seedFiles } from "../seeds.js";

export interface TarCase {
  bytes: Uint8Array;
  limits?: TarLimits;
}

const FIELDS: [string, number, number][] = [
  ["name", 0, 100], ["mode", 100, 8], ["size", 124, 12], ["mtime", 136, 12], ["chksum", 148, 8], ["type", 156, 1],
  ["linkname", 157, 100], ["magic", 257, 8], ["uname", 265, 32], ["prefix", 345, 155],
];
const TYPES = ["0", "\0", "1", "2", "3", "5", "6", "7", "L", "K", "x", "g", "S", "D", "V", "N", "Z", "\xff"];

function fieldValue(rng: Rng, name: string, len: number, old: Uint8Array): { bytes: Uint8Array; how: string } {
  const octal = (v: number) => utf8(v.toString(8).padStart(len - 1, "0").slice(-(len - 1)) + "\0");
  switch (rng.int(9)) {
    case 0:
    case 1: {
      const v = interestingInt(rng, 64, parseInt(new TextDecoder().decode(old), 8) || 0);
      return { bytes: octal(v), how: `${name} = octal ${v}` };
    }
    case 2: {
      // GNU base-256: 0x80 (positive) or 0xff (negative) then big-endian bytes
      const b = rng.bytes(len);
      b[0] = rng.pick([0x80, 0xff]);
      if (rng.chance(0.5)) b.fill(0, 1, Math.max(1, len - 3));
      return { bytes: b, how: `${name} = base-256 ${b[0]!.toString(16)}…` };
    }
    case 3:
      return { bytes: new Uint8Array(len).fill(rng.pick([0, 0x20, 0x37, 0x38, 0xff])), how: `${name} filled` };
    case 4: {
      const s = rng.pick(["-1", "0x10", "1e3", " 12 34", "777777777777777777777", "12\u00e9", "", "./", "/", "..", "a\nb"]);
      return { bytes: utf8(s).subarray(0, len), how: `${name} = ${JSON.stringify(s)}` };
    }
    case 5:
      return { bytes: Uint8Array.of(rng.pick([0xc3, 0xff, 0x80, 0xed, 0xf0])), how: `${name} starts with a non-UTF-8 byte` };
    case 6:
      return { bytes: utf8(rng.pick(TYPES)), how: `${name} = a type letter` };
    case 7:
      return { bytes: utf8(rng.pick(["ustar\0" + "00", "ustar  \0", "ustar\0", "USTAR", "\0\0\0\0\0\0\0\0", "ustar\0" + "99"])), how: `${name} = a magic` };
    default:
      return { bytes: rng.bytes(rng.range(1, len)), how: `${name} random` };
  }
}

function hostilePax(rng: Rng, dataLeft: number): { records: string; how: string } {
  const parts: string[] = [];
  const hows: string[] = [];
  for (let k = rng.range(1, 3); k > 0; k--) {
    switch (rng.int(10)) {
      case 0:
        parts.push(paxRecord("path", rng.pick(["x.jpg", "", "a/".repeat(rng.pick([10, 2100, 3000])) + "b.png", "\u00e9\u6f22.png", "dup.jpg"])));
        hows.push("path");
        break;
      case 1: {
        const v = rng.pick([String(interestingInt(rng, 64, dataLeft)), "-1", "1.5", "0x10", "", "99999999999999999999", String(dataLeft), String(dataLeft + 1)]);
        parts.push(paxRecord("size", v));
        hows.push(`size ${v}`);
        break;
      }
      case 2: {
        const v = rng.pick(["1700000000.25", "-5", "1e9", "nan", "", "1.", ".5", "12345678901234567890", "1700000000.1234567890123456789"]);
        parts.push(paxRecord("mtime", v));
        hows.push(`mtime ${v}`);
        break;
      }
      case 3:
        parts.push(`${rng.pick([0, 1, 5, 99, 100000, 2 ** 40])} path=lie\n`);
        hows.push("lying record length");
        break;
      case 4:
        parts.push(rng.pick(["path=x\n", "6 =x\n\n", "5 a=b", "\0\0\0", "7 a=b\n\0junk", " 3 \n"]));
        hows.push("broken record");
        break;
      case 5:
        parts.push(paxRecord("comment", "c".repeat(rng.pick([10, 5000, 1_100_000]))));
        hows.push("long comment");
        break;
      default:
        parts.push(paxRecord(rng.pick(["linkpath", "uid", "SCHILY.xattr.x", "GNU.sparse.size", "hdrcharset", "atime"]), rng.pick(["1", "BINARY", "x"])));
        hows.push("other key");
    }
  }
  return { records: parts.join(""), how: hows.join(", ") };
}

const insertAt = (b: Uint8Array, at: number, ins: Uint8Array) => concat(b.subarray(0, at), ins, b.subarray(at));

function generate(rng: Rng, seeds: { name: string; bytes: Uint8Array }[]): { input: TarCase; how: string } {
  const seed = pickSeed(rng, seeds);
  const heads = headerOffsets(seed.bytes);
  const end = endOffset(seed.bytes);
  const h = rng.pick(heads);
  let bytes: Uint8Array;
  let how: string;
  switch (rng.weighted([30, 20, 15, 10, 25])) {
    case 0: {
      // one header field rewritten, the checksum repaired (so the check behind it runs) nine times in ten
      bytes = seed.bytes.slice();
      const [name, off, len] = rng.pick(FIELDS);
      const v = fieldValue(rng, name, len, bytes.subarray(h + off, h + off + len));
      if (rng.chance(0.5)) bytes.fill(0, h + off, h + off + len);
      bytes.set(v.bytes.subarray(0, len), h + off);
      const fix = name !== "chksum" && rng.chance(0.9);
      if (fix) fixChecksum(bytes, h);
      how = `header at ${h}: ${v.how}${fix ? "" : ", checksum left"}`;
      break;
    }
    case 1: {
      const p = hostilePax(rng, seed.bytes.length - h);
      bytes = insertAt(seed.bytes, h, paxHeader(p.records, rng.chance(0.8) ? "x" : "g"));
      how = `pax header before ${h}: ${p.how}`;
      break;
    }
    case 2: {
      const r = rng.int(6);
      if (r === 0) {
        const at = rng.chance(0.7) ? rng.pick(heads) + rng.pick([0, 1, 100, 511, 512, 513, 1024]) : rng.int(seed.bytes.length);
        bytes = seed.bytes.subarray(0, at);
        how = `cut at ${at}`;
      } else if (r === 1) {
        bytes = concat(seed.bytes.subarray(0, end), rng.chance(0.5) ? rng.bytes(rng.smallInt(2048)) : new Uint8Array(rng.pick([0, 100, 512, 1024])));
        how = `end marker replaced`;
      } else if (r === 2) {
        const k = rng.pick([10, 200, 3000]);
        const one = rng.chance(0.5) ? member("L", utf8("flood\0"), { type: "L" }) : member(`e${k}.jpg`, new Uint8Array(0));
        bytes = insertAt(seed.bytes, h, concat(...new Array<Uint8Array>(k).fill(one)));
        how = `${k} headers inserted at ${h}`;
      } else if (r === 3) {
        const other = rng.pick(heads);
        bytes = insertAt(seed.bytes, h, seed.bytes.subarray(other, Math.min(end, other + BLOCK * rng.range(1, 4))));
        how = `blocks from ${other} copied to ${h}`;
      } else if (r === 4) {
        bytes = concat(seed.bytes.subarray(0, h), seed.bytes.subarray(h + BLOCK));
        how = `header at ${h} removed`;
      } else {
        bytes = insertAt(seed.bytes, h, tarHeader({ name: "huge.bin", size: interestingInt(rng, 64, seed.bytes.length) }));
        how = "a member claiming a huge size";
      }
      break;
    }
    case 3: {
      const body = rng.pick([utf8("no-nul"), new Uint8Array(rng.pick([0, 1, 4097, 4098, 20000])).fill(0x61), Uint8Array.of(0xff, 0xfe, 0), utf8("\0\0\0"), utf8("x/../../etc/passwd\0")]);
      const l = member("././@LongLink", body, { type: rng.pick(["L", "K"]), gnu: true });
      if (rng.chance(0.3)) {
        bytes = concat(seed.bytes.subarray(0, end), l, new Uint8Array(1024));
        how = `long name of ${body.length} bytes at the end`;
      } else {
        bytes = insertAt(seed.bytes, h, l);
        how = `long name of ${body.length} bytes before ${h}`;
      }
      break;
    }
    default: {
      const hot = heads.flatMap((x) => [x, x + 124, x + 136, x + 148, x + 156, x + 257, x + 345, x + BLOCK]);
      const r = havoc(rng, seed.bytes, hot);
      bytes = r.bytes;
      how = r.how;
      if (rng.chance(0.5)) {
        for (const x of headerOffsets(bytes)) if (x + BLOCK <= bytes.length) fixChecksum(bytes, x);
        how += ", checksums repaired";
      }
    }
  }
  const input: TarCase = { bytes };
  if (rng.chance(0.2)) {
    input.limits = { maxEntries: rng.pick([1, 5, 50, 1000]), maxNameBytes: rng.pick([1, 30, 100, 4096]), maxPaxBytes: rng.pick([1, 100, 4096]) };
    how += `, limits ${JSON.stringify(input.limits)}`;
  }
  return { input, how: `${seed.name}: ${how}` };
}

export function tarTarget(): FuzzTarget<TarCase> {
  const seeds = seedFiles("test/golden/tar", /\.tar$/);
  const file = join(tmpdir(), `tarfuzz-${process.pid}-${threadId}.tar`);
  return {
    name: "tar",
    errorName: "TarError",
    isTyped: (e) => e instanceof TarError,
    generate: (rng) => generate(rng, seeds),
    files: (c) => ({ "case.tar": c.bytes }),
    run({ bytes, limits }) {
      writeFileSync(file, bytes);
      try {
        const list = listTar(file, limits);
        const names = new Set<string>();
        for (const e of list.slice(0, 64)) {
          const sane = typeof e.name === "string" && e.name !== "" && !names.has(e.name) && Number.isSafeInteger(e.offset) && e.offset % BLOCK === 0 &&
            e.offset >= BLOCK && Number.isSafeInteger(e.size) && e.size >= 0 && e.offset + e.size <= bytes.length && Number.isFinite(e.mtimeMs);
          if (!sane) throw new Error(`oracle: accepted entry ${JSON.stringify(e).slice(0, 200)} of a ${bytes.length}-byte file`);
          names.add(e.name);
          const data = readTarEntry(file, e);
          if (data.length !== e.size || !data.every((x, i) => x === bytes[e.offset + i])) throw new Error(`oracle: member ${JSON.stringify(e.name)} read wrong`);
        }
        return list.length;
      } finally {
        rmSync(file, { force: true });
      }
    },
  };
}
