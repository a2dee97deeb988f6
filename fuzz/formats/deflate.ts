// Compression-amplified inputs made without ever holding them inflated: a raw deflate stream of literal byte
// strings and long periodic runs (a pattern repeated millions of times), at deflate's maximum ratio of about
// 1032:1 on the runs, with its CRC-32 and inflated size. 200 M repetitions of one pickle opcode deflate to
// 194 KB in milliseconds.

/** Bytes as they are, or `pattern` repeated until `length` bytes (a partial last copy included). */
export type Segment = Uint8Array | { pattern: Uint8Array; length: number };

export interface Amplified {
  /** Raw deflate data (no zlib or gzip wrapper), as a zip entry holds it. */
  deflated: Uint8Array;
  /** Inflated size and CRC-32 of the inflated bytes. */
  size: number;
  crc: number;
}

class BitWriter {
  private out: number[] = [];
  private acc = 0;
  private n = 0;
  /** `count` bits of `value`, least significant first (deflate's order for everything but Huffman codes). */
  bits(value: number, count: number): void {
    for (let i = 0; i < count; i++) {
      this.acc |= ((value >>> i) & 1) << this.n;
      if (++this.n === 8) this.flush();
    }
  }
  /** A Huffman code of `len` bits: most significant bit first. */
  code(code: number, len: number): void {
    for (let i = len - 1; i >= 0; i--) this.bits((code >>> i) & 1, 1);
  }
  private flush(): void {
    this.out.push(this.acc);
    this.acc = 0;
    this.n = 0;
  }
  bytes(): Uint8Array {
    if (this.n > 0) this.flush();
    return Uint8Array.from(this.out);
  }
}

/** Fixed-Huffman codes (RFC 1951 3.2.6) of literal bytes and end of block. */
function fixedLiteral(w: BitWriter, b: number): void {
  if (b < 144) w.code(0x30 + b, 8);
  else w.code(0x190 + b - 144, 9);
}

const DIST_BASE = [1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577];

function fixedBlock(w: BitWriter, literals: Uint8Array, final: boolean): void {
  w.bits(final ? 1 : 0, 1);
  w.bits(1, 2);
  for (const b of literals) fixedLiteral(w, b);
  w.code(0, 7); // end of block
}

/**
 * A dynamic-Huffman block of `matches` copies of 258 bytes at distance `dist`: the only literal/length symbols are
 * end of block (256) and length 258 (285), one bit each, and the only distance symbol has one bit, so a copy costs
 * 2 bits plus the distance's extra bits.
 */
function runBlock(w: BitWriter, matches: number, dist: number): void {
  let d = DIST_BASE.length - 1;
  while (DIST_BASE[d]! > dist) d--;
  const extra = d < 4 ? 0 : (d >> 1) - 1;
  const lengths = new Array<number>(286 + d + 1).fill(0);
  lengths[256] = 1;
  lengths[285] = 1;
  lengths[286 + d] = 1;
  // Code-length alphabet: 0, 1, 17 (3-10 zeros), 18 (11-138 zeros), two bits each, in canonical order.
  const cl = new Map([
    [0, 0b00],
    [1, 0b01],
    [17, 0b10],
    [18, 0b11],
  ]);
  const order = [16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15];
  const hclen = order.indexOf(1) + 1;
  w.bits(0, 1);
  w.bits(2, 2);
  w.bits(286 - 257, 5);
  w.bits(d, 5); // HDIST - 1
  w.bits(hclen - 4, 4);
  for (let i = 0; i < hclen; i++) w.bits(cl.has(order[i]!) ? 2 : 0, 3);
  for (let i = 0; i < lengths.length; ) {
    if (lengths[i] === 1) {
      w.code(cl.get(1)!, 2);
      i++;
      continue;
    }
    let z = 0;
    while (i + z < lengths.length && lengths[i + z] === 0 && z < 138) z++;
    if (z >= 11) (w.code(cl.get(18)!, 2), w.bits(z - 11, 7));
    else if (z >= 3) (w.code(cl.get(17)!, 2), w.bits(z - 3, 3));
    else for (let k = 0; k < z; k++) w.code(cl.get(0)!, 2);
    i += z;
  }
  // Canonical codes: 256 -> 0, 285 -> 1; the distance symbol -> 0.
  for (let m = 0; m < matches; m++) {
    w.code(1, 1);
    w.code(0, 1);
    w.bits(dist - DIST_BASE[d]!, extra);
  }
  w.code(0, 1);
}

const CRC_TABLE = new Uint32Array(256).map((_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

/** The CRC register (before the final inversion) after `bytes`, from `r`. */
function crcBytes(r: number, bytes: Uint8Array, count = bytes.length): number {
  for (let i = 0; i < count; i++) r = CRC_TABLE[(r ^ bytes[i]!) & 0xff]! ^ (r >>> 8);
  return r >>> 0;
}

/**
 * The register update of a fixed byte string is affine over GF(2): r -> M r ^ c, with M given by its 32 columns.
 * Composing it with itself by squaring gives the CRC of a pattern repeated n times in O(log n).
 */
interface Affine {
  m: Uint32Array;
  c: number;
}

function mul(m: Uint32Array, v: number): number {
  let out = 0;
  for (let k = 0; v !== 0; k++, v >>>= 1) if (v & 1) out ^= m[k]!;
  return out >>> 0;
}

/** `a` then `b`. */
function then(a: Affine, b: Affine): Affine {
  return { m: a.m.map((col) => mul(b.m, col)), c: (mul(b.m, a.c) ^ b.c) >>> 0 };
}

function repeatCrc(r: number, pattern: Uint8Array, times: number): number {
  const c = crcBytes(0, pattern);
  let step: Affine = { m: new Uint32Array(32).map((_, k) => (crcBytes(2 ** k, pattern) ^ c) >>> 0), c };
  let acc: Affine = { m: new Uint32Array(32).map((_, k) => 2 ** k), c: 0 };
  for (let n = times; n > 0; n = Math.floor(n / 2)) {
    if (n % 2 === 1) acc = then(acc, step);
    step = then(step, step);
  }
  return (mul(acc.m, r) ^ acc.c) >>> 0;
}

/** CRC-32 of the segments, without spelling out the runs. */
function crcOf(segments: readonly Segment[]): number {
  let r = 0xffffffff;
  for (const s of segments) {
    if (s instanceof Uint8Array) {
      r = crcBytes(r, s);
      continue;
    }
    const p = s.pattern.length;
    r = repeatCrc(r, s.pattern, Math.floor(s.length / p));
    r = crcBytes(r, s.pattern, s.length % p);
  }
  return (r ^ 0xffffffff) >>> 0;
}

/** Deflate `segments` (runs at about 1032:1), with the inflated size and CRC-32. */
export function amplify(segments: readonly Segment[]): Amplified {
  const w = new BitWriter();
  let size = 0;
  let pending: number[] = [];
  for (const s of segments) {
    if (s instanceof Uint8Array) {
      for (const b of s) pending.push(b);
      size += s.length;
      continue;
    }
    const p = s.pattern.length;
    if (p === 0 || p > 32768) throw new Error(`amplify: pattern of ${p} bytes`);
    // One copy as literals, then 258-byte copies of what came `p` bytes before, then the rest as literals.
    const first = Math.min(p, s.length);
    for (let i = 0; i < first; i++) pending.push(s.pattern[i]!);
    const matches = Math.floor((s.length - first) / 258);
    if (matches > 0) {
      fixedBlock(w, Uint8Array.from(pending), false);
      pending = [];
      runBlock(w, matches, p);
    }
    for (let i = first + matches * 258; i < s.length; i++) pending.push(s.pattern[i % p]!);
    size += s.length;
  }
  fixedBlock(w, Uint8Array.from(pending), true);
  return { deflated: w.bytes(), size, crc: crcOf(segments) };
}

export const ascii = (s: string): Uint8Array => Uint8Array.from(s, (c) => c.charCodeAt(0));
