// A small zip reader (for the valid seed archives only) and a writer that records where every size, offset and
// count field lies, so mutators can make exactly one of them lie.
import { deflateSync, inflateSync } from "fflate";
import { concat, crc32, utf8 } from "../mutate.js";
import type { Amplified } from "./deflate.js";

export interface ZipItem {
  name: string;
  /** Uncompressed contents. */
  data: Uint8Array;
  /** 0 = stored (torch's choice), 8 = deflate. */
  method?: 0 | 8;
  /** Already deflated contents (of `amplified.size` bytes; `data` is then ignored): written with method 8. */
  amplified?: Amplified;
}

export interface Field {
  what: string;
  off: number;
  width: 1 | 2 | 4 | 8;
}

const u16 = (b: Uint8Array, p: number): number => b[p]! | (b[p + 1]! << 8);
const u32 = (b: Uint8Array, p: number): number => (u16(b, p) + u16(b, p + 2) * 65536) >>> 0;
const u64 = (b: Uint8Array, p: number): number => u32(b, p) + u32(b, p + 4) * 2 ** 32;

/** Entries of a well-formed archive (zip64 included); throws on anything unexpected, which only a bad seed causes. */
export function readZip(bytes: Uint8Array): ZipItem[] {
  let eocd = -1;
  for (let p = bytes.length - 22; p >= Math.max(0, bytes.length - 22 - 0xffff); p--) {
    if (u32(bytes, p) === 0x06054b50) {
      eocd = p;
      break;
    }
  }
  if (eocd < 0) throw new Error("seed is not a zip archive");
  let count = u16(bytes, eocd + 10);
  let cd = u32(bytes, eocd + 16);
  if (eocd >= 20 && u32(bytes, eocd - 20) === 0x07064b50) {
    const z = u64(bytes, eocd - 12);
    count = u64(bytes, z + 32);
    cd = u64(bytes, z + 48);
  }
  const out: ZipItem[] = [];
  const dec = new TextDecoder();
  for (let i = 0, p = cd; i < count; i++) {
    const method = u16(bytes, p + 10);
    let csize = u32(bytes, p + 20);
    let usize = u32(bytes, p + 24);
    const nameLen = u16(bytes, p + 28);
    const extraLen = u16(bytes, p + 30);
    const commentLen = u16(bytes, p + 32);
    let local = u32(bytes, p + 42);
    const name = dec.decode(bytes.subarray(p + 46, p + 46 + nameLen));
    for (let x = p + 46 + nameLen; x + 4 <= p + 46 + nameLen + extraLen; x += 4 + u16(bytes, x + 2)) {
      if (u16(bytes, x) !== 1) continue;
      let q = x + 4;
      if (usize === 0xffffffff) (usize = u64(bytes, q)), (q += 8);
      if (csize === 0xffffffff) (csize = u64(bytes, q)), (q += 8);
      if (local === 0xffffffff) local = u64(bytes, q);
    }
    const start = local + 30 + u16(bytes, local + 26) + u16(bytes, local + 28);
    const raw = bytes.subarray(start, start + csize);
    const data = method === 8 ? inflateSync(raw) : raw.slice();
    if (data.length !== usize) throw new Error(`seed entry ${name} has the wrong size`);
    out.push({ name, data, method: method === 8 ? 8 : 0 });
    p += 46 + nameLen + extraLen + commentLen;
  }
  return out;
}

export interface WriteOptions {
  /** Write zip64 records and extra fields even though nothing needs them (as torch does above 4 GiB). */
  zip64?: boolean;
  /** Pad each local extra field so data starts at a multiple of this (torch uses 64). */
  align?: number;
  comment?: Uint8Array;
}

/** A zip archive of `items`, with the position of every field a lie could be told in. */
export function writeZip(items: readonly ZipItem[], opts: WriteOptions = {}): { bytes: Uint8Array; fields: Field[] } {
  const parts: Uint8Array[] = [];
  const fields: Field[] = [];
  let pos = 0;
  const push = (b: Uint8Array): void => {
    parts.push(b);
    pos += b.length;
  };
  const z64 = opts.zip64 ?? false;
  const align = opts.align ?? 64;
  const central: { item: ZipItem; name: Uint8Array; crc: number; csize: number; usize: number; local: number; method: number }[] = [];
  for (const [i, item] of items.entries()) {
    const name = utf8(item.name);
    const amp = item.amplified;
    const method = amp ? 8 : (item.method ?? 0);
    const payload = amp ? amp.deflated : method === 8 ? deflateSync(item.data) : item.data;
    const crc = amp ? amp.crc : crc32(item.data);
    const usize = amp ? amp.size : item.data.length;
    const z64extra = z64 ? 20 : 0;
    const base = pos + 30 + name.length + z64extra;
    // Padding extra field ("FB", as torch's writer) so tensor data is aligned.
    let pad = (align - ((base + 4) % align)) % align;
    if (align <= 1) pad = -4;
    const h = new Uint8Array(30 + name.length + z64extra + pad + 4);
    const dv = new DataView(h.buffer);
    dv.setUint32(0, 0x04034b50, true);
    dv.setUint16(4, z64 ? 45 : 20, true);
    dv.setUint16(8, method, true);
    dv.setUint16(12, 0x21, true);
    dv.setUint32(14, crc, true);
    dv.setUint32(18, z64 ? 0xffffffff : payload.length, true);
    dv.setUint32(22, z64 ? 0xffffffff : usize, true);
    dv.setUint16(26, name.length, true);
    dv.setUint16(28, h.length - 30 - name.length, true);
    h.set(name, 30);
    let x = 30 + name.length;
    if (z64) {
      dv.setUint16(x, 1, true);
      dv.setUint16(x + 2, 16, true);
      dv.setBigUint64(x + 4, BigInt(usize), true);
      dv.setBigUint64(x + 12, BigInt(payload.length), true);
      fields.push({ what: `local[${i}].zip64.usize`, off: pos + x + 4, width: 8 }, { what: `local[${i}].zip64.csize`, off: pos + x + 12, width: 8 });
      x += 20;
    }
    if (pad >= 0) {
      dv.setUint16(x, 0x4246, true);
      dv.setUint16(x + 2, pad, true);
    }
    fields.push(
      { what: `local[${i}].method`, off: pos + 8, width: 2 },
      { what: `local[${i}].crc`, off: pos + 14, width: 4 },
      { what: `local[${i}].csize`, off: pos + 18, width: 4 },
      { what: `local[${i}].usize`, off: pos + 22, width: 4 },
      { what: `local[${i}].nameLen`, off: pos + 26, width: 2 },
      { what: `local[${i}].extraLen`, off: pos + 28, width: 2 },
    );
    central.push({ item, name, crc, csize: payload.length, usize, local: pos, method });
    push(h);
    push(payload);
  }
  const cdStart = pos;
  for (const [i, c] of central.entries()) {
    const extra = z64 ? 28 : 0;
    const h = new Uint8Array(46 + c.name.length + extra);
    const dv = new DataView(h.buffer);
    dv.setUint32(0, 0x02014b50, true);
    dv.setUint16(4, 0x031e, true);
    dv.setUint16(6, z64 ? 45 : 20, true);
    dv.setUint16(10, c.method, true);
    dv.setUint16(14, 0x21, true);
    dv.setUint32(16, c.crc, true);
    dv.setUint32(20, z64 ? 0xffffffff : c.csize, true);
    dv.setUint32(24, z64 ? 0xffffffff : c.usize, true);
    dv.setUint16(28, c.name.length, true);
    dv.setUint16(30, extra, true);
    dv.setUint32(42, z64 ? 0xffffffff : c.local, true);
    h.set(c.name, 46);
    fields.push(
      { what: `central[${i}].flags`, off: pos + 8, width: 2 },
      { what: `central[${i}].method`, off: pos + 10, width: 2 },
      { what: `central[${i}].crc`, off: pos + 16, width: 4 },
      { what: `central[${i}].csize`, off: pos + 20, width: 4 },
      { what: `central[${i}].usize`, off: pos + 24, width: 4 },
      { what: `central[${i}].nameLen`, off: pos + 28, width: 2 },
      { what: `central[${i}].extraLen`, off: pos + 30, width: 2 },
      { what: `central[${i}].commentLen`, off: pos + 32, width: 2 },
      { what: `central[${i}].disk`, off: pos + 34, width: 2 },
      { what: `central[${i}].localOffset`, off: pos + 42, width: 4 },
    );
    if (z64) {
      const x = 46 + c.name.length;
      dv.setUint16(x, 1, true);
      dv.setUint16(x + 2, 24, true);
      dv.setBigUint64(x + 4, BigInt(c.usize), true);
      dv.setBigUint64(x + 12, BigInt(c.csize), true);
      dv.setBigUint64(x + 20, BigInt(c.local), true);
      fields.push(
        { what: `central[${i}].zip64.size`, off: pos + x + 2, width: 2 },
        { what: `central[${i}].zip64.usize`, off: pos + x + 4, width: 8 },
        { what: `central[${i}].zip64.csize`, off: pos + x + 12, width: 8 },
        { what: `central[${i}].zip64.localOffset`, off: pos + x + 20, width: 8 },
      );
    }
    push(h);
  }
  const cdSize = pos - cdStart;
  if (z64) {
    const z = new Uint8Array(56 + 20);
    const dv = new DataView(z.buffer);
    dv.setUint32(0, 0x06064b50, true);
    dv.setBigUint64(4, 44n, true);
    dv.setUint16(12, 45, true);
    dv.setUint16(14, 45, true);
    dv.setBigUint64(24, BigInt(items.length), true);
    dv.setBigUint64(32, BigInt(items.length), true);
    dv.setBigUint64(40, BigInt(cdSize), true);
    dv.setBigUint64(48, BigInt(cdStart), true);
    dv.setUint32(56, 0x07064b50, true);
    dv.setBigUint64(64, BigInt(pos), true);
    dv.setUint32(72, 1, true);
    fields.push(
      { what: "zip64eocd.disk", off: pos + 16, width: 4 },
      { what: "zip64eocd.count", off: pos + 32, width: 8 },
      { what: "zip64eocd.cdSize", off: pos + 40, width: 8 },
      { what: "zip64eocd.cdOffset", off: pos + 48, width: 8 },
      { what: "zip64locator.offset", off: pos + 64, width: 8 },
    );
    push(z);
  }
  const comment = opts.comment ?? new Uint8Array(0);
  const e = new Uint8Array(22 + comment.length);
  const dv = new DataView(e.buffer);
  dv.setUint32(0, 0x06054b50, true);
  dv.setUint16(8, z64 ? 0xffff : items.length, true);
  dv.setUint16(10, z64 ? 0xffff : items.length, true);
  dv.setUint32(12, z64 ? 0xffffffff : cdSize, true);
  dv.setUint32(16, z64 ? 0xffffffff : cdStart, true);
  dv.setUint16(20, comment.length, true);
  e.set(comment, 22);
  fields.push(
    { what: "eocd.disk", off: pos + 4, width: 2 },
    { what: "eocd.count", off: pos + 10, width: 2 },
    { what: "eocd.cdSize", off: pos + 12, width: 4 },
    { what: "eocd.cdOffset", off: pos + 16, width: 4 },
    { what: "eocd.commentLen", off: pos + 20, width: 2 },
  );
  push(e);
  return { bytes: concat(...parts), fields };
}
