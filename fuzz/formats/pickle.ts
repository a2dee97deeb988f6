// Pickle streams as a list of opcodes with their argument bytes (argument layouts from CPython's pickletools
// documentation), so mutators can edit one opcode's argument, or insert, drop and move whole opcodes.
import { concat, utf8 } from "../mutate.js";

export interface Op {
  code: number;
  /** Argument bytes exactly as they follow the opcode (length prefixes included). */
  arg: Uint8Array;
}

type ArgKind = number | "u8len" | "u32len" | "u64len" | "line" | "line2";

/** Argument layout of every opcode of protocols 0–5: a fixed byte count, a length-prefixed blob, or text lines. */
export const ARGS: ReadonlyMap<number, ArgKind> = new Map<number, ArgKind>([
  ...[..."(.012N)]}tldaesuRbQo"].map((c): [number, ArgKind] => [c.charCodeAt(0), 0]),
  ...[0x8f, 0x88, 0x89, 0x85, 0x86, 0x87, 0x91, 0x90, 0x93, 0x81, 0x92, 0x94, 0x97, 0x98].map((c): [number, ArgKind] => [c, 0]),
  [0x80, 1], // PROTO
  [0x4b, 1], // BININT1
  [0x4d, 2], // BININT2
  [0x4a, 4], // BININT
  [0x47, 8], // BINFLOAT
  [0x71, 1], // BINPUT
  [0x72, 4], // LONG_BINPUT
  [0x68, 1], // BINGET
  [0x6a, 4], // LONG_BINGET
  [0x82, 1], // EXT1
  [0x83, 2], // EXT2
  [0x84, 4], // EXT4
  [0x95, 8], // FRAME
  [0x8c, "u8len"], // SHORT_BINUNICODE
  [0x43, "u8len"], // SHORT_BINBYTES
  [0x55, "u8len"], // SHORT_BINSTRING
  [0x8a, "u8len"], // LONG1
  [0x58, "u32len"], // BINUNICODE
  [0x42, "u32len"], // BINBYTES
  [0x54, "u32len"], // BINSTRING
  [0x8b, "u32len"], // LONG4
  [0x8d, "u64len"], // BINUNICODE8
  [0x8e, "u64len"], // BINBYTES8
  [0x96, "u64len"], // BYTEARRAY8
  ...[..."ILFSVpgP"].map((c): [number, ArgKind] => [c.charCodeAt(0), "line"]),
  ...[..."ci"].map((c): [number, ArgKind] => [c.charCodeAt(0), "line2"]),
]);

/** Opcodes of a well-formed pickle, up to and including STOP. */
export function parseOps(bytes: Uint8Array): Op[] {
  const ops: Op[] = [];
  let p = 0;
  while (p < bytes.length) {
    const code = bytes[p++]!;
    const kind = ARGS.get(code);
    if (kind === undefined) throw new Error(`seed pickle has unknown opcode 0x${code.toString(16)} at ${p - 1}`);
    let len: number;
    if (typeof kind === "number") len = kind;
    else if (kind === "u8len") len = 1 + bytes[p]!;
    else if (kind === "u32len") len = 4 + new DataView(bytes.buffer, bytes.byteOffset + p, 4).getUint32(0, true);
    else if (kind === "u64len") len = 8 + Number(new DataView(bytes.buffer, bytes.byteOffset + p, 8).getBigUint64(0, true));
    else {
      let end = bytes.indexOf(0x0a, p);
      if (kind === "line2") end = bytes.indexOf(0x0a, end + 1);
      len = end + 1 - p;
    }
    ops.push({ code, arg: bytes.slice(p, p + len) });
    p += len;
    if (code === 0x2e) break;
  }
  return ops;
}

export function serialiseOps(ops: readonly Op[]): Uint8Array {
  // Filled in place rather than through concat(...): a flood of 100000 opcodes would overflow the argument stack.
  const out = new Uint8Array(ops.reduce((n, o) => n + 1 + o.arg.length, 0));
  let p = 0;
  for (const o of ops) {
    out[p++] = o.code;
    out.set(o.arg, p);
    p += o.arg.length;
  }
  return out;
}

export const op = (code: number | string, arg: Uint8Array = new Uint8Array(0)): Op => ({
  code: typeof code === "string" ? code.charCodeAt(0) : code,
  arg,
});

export function shortUnicode(s: string): Op {
  const b = utf8(s);
  return op(0x8c, concat(Uint8Array.of(b.length), b));
}

export function binint(v: number): Op {
  const a = new Uint8Array(4);
  new DataView(a.buffer).setInt32(0, v, true);
  return op(0x4a, a);
}

/** The text of a string opcode's argument, or undefined for other opcodes. */
export function stringOf(o: Op): string | undefined {
  if (o.code === 0x8c) return new TextDecoder().decode(o.arg.subarray(1));
  if (o.code === 0x58) return new TextDecoder().decode(o.arg.subarray(4));
  return undefined;
}
