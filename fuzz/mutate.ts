// Format-blind byte mutations shared by every target, and helpers for patching integer fields.
import type { Rng } from "./rng.js";

export function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((s, p) => s + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/**
 * Values that break length and offset arithmetic: zero, one, sign and width boundaries, and values near `near`
 * (a size the format itself holds, so off-by-one lies are common).
 */
export function interestingInt(rng: Rng, bits: 8 | 16 | 32 | 64, near = 0): number {
  const max = bits === 64 ? 2 ** 53 - 1 : 2 ** bits - 1;
  const pool = [0, 1, 2, 3, 7, 8, 0x7f, 0x80, 0xff, 0x100, 0x7fff, 0x8000, 0xffff, 0x10000, 0x7fffffff, 0x80000000, 0xffffffff, 2 ** 32, 2 ** 53 - 1];
  const r = rng.int(10);
  let v: number;
  if (r < 4) v = near + rng.range(-4, 4);
  else if (r < 5) v = near * rng.range(2, 1000);
  else if (r < 9) v = rng.pick(pool);
  else v = rng.int(max + 1);
  if (v < 0) v = max + 1 + v; // two's complement of small negatives
  return Math.max(0, Math.min(max, v));
}

export function setUint(bytes: Uint8Array, off: number, width: 1 | 2 | 4 | 8, value: number, littleEndian = true): void {
  if (off < 0 || off + width > bytes.length) return;
  for (let i = 0; i < width; i++) {
    const byte = Math.floor(value / 2 ** (8 * i)) % 256;
    bytes[littleEndian ? off + i : off + width - 1 - i] = byte;
  }
}

export function getUint(bytes: Uint8Array, off: number, width: 1 | 2 | 4 | 8, littleEndian = true): number {
  let v = 0;
  for (let i = width - 1; i >= 0; i--) v = v * 256 + (bytes[littleEndian ? off + i : off + width - 1 - i] ?? 0);
  return v;
}

/** One random edit of the raw bytes; `hot` offsets (structure boundaries) attract truncations and patches. */
export function mutateBytes(rng: Rng, input: Uint8Array, hot: readonly number[] = []): { bytes: Uint8Array; how: string } {
  const n = input.length;
  const at = (): number => (hot.length > 0 && rng.chance(0.5) ? Math.min(n, rng.pick(hot) + rng.range(-2, 2)) : rng.int(n + 1));
  const pos = Math.max(0, at());
  switch (rng.int(9)) {
    case 0:
      return { bytes: input.slice(0, pos), how: `truncate at ${pos}` };
    case 1: {
      const b = input.slice();
      const k = rng.range(1, 8);
      for (let i = 0; i < k && n > 0; i++) b[rng.int(n)] ^= 1 << rng.int(8);
      return { bytes: b, how: `flip ${k} bits` };
    }
    case 2: {
      const b = input.slice();
      const p = Math.min(pos, n - 1);
      if (p < 0) return { bytes: b, how: "unchanged (empty)" };
      b[p] = rng.pick([0, 1, 0x7f, 0x80, 0xff, rng.int(256)]);
      return { bytes: b, how: `set byte ${p}` };
    }
    case 3: {
      const len = rng.smallInt(64);
      return { bytes: concat(input.subarray(0, pos), rng.bytes(len), input.subarray(pos)), how: `insert ${len} bytes at ${pos}` };
    }
    case 4: {
      const len = rng.smallInt(64) + 1;
      return { bytes: concat(input.subarray(0, pos), input.subarray(pos + len)), how: `delete ${len} bytes at ${pos}` };
    }
    case 5: {
      const b = input.slice();
      const width = rng.pick([2, 4, 8] as const);
      const le = rng.chance(0.7);
      const near = getUint(b, pos, width, le);
      setUint(b, pos, width, interestingInt(rng, width === 8 ? 64 : ((width * 8) as 16 | 32), near), le);
      return { bytes: b, how: `u${width * 8}${le ? "le" : "be"} at ${pos}` };
    }
    case 6: {
      // Repeat a slice: duplicated records, overlapping structures.
      const len = rng.smallInt(256) + 1;
      const from = rng.int(n);
      const slice = input.subarray(from, from + len);
      return { bytes: concat(input.subarray(0, pos), slice, input.subarray(pos)), how: `copy ${slice.length} bytes from ${from} to ${pos}` };
    }
    case 7: {
      const b = input.slice();
      const len = Math.min(rng.smallInt(32) + 1, n - Math.min(pos, n));
      b.fill(rng.pick([0, 0xff, 0x20]), pos, pos + len);
      return { bytes: b, how: `fill ${len} bytes at ${pos}` };
    }
    default: {
      const b = input.slice();
      const k = rng.range(2, 16);
      for (let i = 0; i < k && n > 0; i++) b[rng.int(n)] = rng.int(256);
      return { bytes: b, how: `randomise ${k} bytes` };
    }
  }
}

/** Several byte edits in a row. */
export function havoc(rng: Rng, input: Uint8Array, hot: readonly number[] = [], maxEdits = 4): { bytes: Uint8Array; how: string } {
  let bytes = input;
  const hows: string[] = [];
  const k = rng.range(1, maxEdits);
  for (let i = 0; i < k; i++) {
    const r = mutateBytes(rng, bytes, hot);
    bytes = r.bytes;
    hows.push(r.how);
  }
  return { bytes, how: hows.join("; ") };
}

/** CRC-32 (zip, PNG, gzip): mutators recompute it so that edits reach the parsers behind the checksum. */
export { crc32 } from "../src/crc32.js";

export const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s);
