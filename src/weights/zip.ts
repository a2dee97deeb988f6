// Read-only zip archive access (APPNOTE.TXT): end of central directory (with its zip64 variant),
// central directory entries, local headers; stored and deflate entries.
import { inflateSync } from "fflate";
import { WeightsError } from "./errors.js";
import { crc32 } from "../crc32.js";

const SIG_LOCAL = 0x04034b50;
const SIG_CENTRAL = 0x02014b50;
const SIG_EOCD = 0x06054b50;
const SIG_ZIP64_EOCD = 0x06064b50;
const SIG_ZIP64_LOCATOR = 0x07064b50;
const EOCD_SIZE = 22;
const CENTRAL_SIZE = 46;
const LOCAL_SIZE = 30;
/** Deflate cannot expand more than about 1032:1, so a larger declared size is a lie. */
const MAX_DEFLATE_RATIO = 1032;
/** Larger than any checkpoint entry we expect, and below what a JS engine can allocate in one piece. */
const MAX_ENTRY_BYTES = 2 ** 31 - 1;

export interface ZipEntry {
  readonly name: string;
  /** 0 = stored, 8 = deflate. */
  readonly method: number;
  readonly flags: number;
  readonly crc32: number;
  readonly compressedSize: number;
  readonly uncompressedSize: number;
  readonly localHeaderOffset: number;
}

export function isZip(bytes: Uint8Array): boolean {
  return bytes.length >= 4 && bytes[0] === 0x50 && bytes[1] === 0x4b && (bytes[2] === 3 || bytes[2] === 5) && (bytes[3] === 4 || bytes[3] === 6);
}

/** Where an archive's bytes come from: the whole file in memory (views of it), or a file read piece by piece. */
export interface ZipSource {
  readonly size: number;
  /** The bytes [position, position + length), which the archive has checked lie inside the file. */
  bytes(position: number, length: number): Uint8Array;
  /** Reads for stored entries kept unread (see StoredBytes); absent for bytes in memory. */
  readonly reader?: {
    read(dst: Uint8Array, position: number): void;
    readAsync?(dst: Uint8Array, position: number): Promise<void>;
  };
}

function memorySource(bytes: Uint8Array): ZipSource {
  return { size: bytes.length, bytes: (position, length) => bytes.subarray(position, position + length) };
}

function need(off: number, len: number, size: number, what: string): void {
  if (off < 0 || len < 0 || off + len > size) {
    throw new WeightsError(`zip: ${what} at offset ${off} (${len} bytes) lies outside the ${size}-byte file`);
  }
}

/** Little-endian field access at file offsets, over a piece of the file read from `base`; throws a WeightsError
 *  instead of reading past the file's end. */
class Fields {
  private readonly dv: DataView;
  constructor(private readonly chunk: Uint8Array, private readonly base: number, private readonly size: number) {
    this.dv = new DataView(chunk.buffer, chunk.byteOffset, chunk.byteLength);
  }
  need(off: number, len: number, what: string): void {
    need(off, len, this.size, what);
  }
  u16(off: number): number {
    return this.dv.getUint16(off - this.base, true);
  }
  u32(off: number): number {
    return this.dv.getUint32(off - this.base, true);
  }
  u64(off: number, what: string): number {
    const hi = this.dv.getUint32(off - this.base + 4, true);
    if (hi >= 0x200000) throw new WeightsError(`zip: ${what} at offset ${off} is too large`);
    return hi * 4294967296 + this.dv.getUint32(off - this.base, true);
  }
  sub(off: number, len: number): Uint8Array {
    return this.chunk.subarray(off - this.base, off - this.base + len);
  }
}

export class ZipArchive {
  readonly entries: readonly ZipEntry[];
  private readonly byName = new Map<string, ZipEntry>();
  readonly source: ZipSource;

  /** bytes: the whole archive; a ZipSource: one read piece by piece (only its directory and headers are read here). */
  constructor(bytes: Uint8Array | ZipSource) {
    this.source = bytes instanceof Uint8Array ? memorySource(bytes) : bytes;
    const spans: Span[] = [];
    this.entries = this.readCentralDirectory(spans);
    for (const e of this.entries) {
      if (this.byName.has(e.name)) throw new WeightsError(`zip: duplicate entry name "${e.name}"`);
      this.byName.set(e.name, e);
    }
    checkNoOverlap(spans);
  }

  /** Length of the whole archive in bytes. */
  get size(): number {
    return this.source.size;
  }

  get(name: string): ZipEntry | undefined {
    return this.byName.get(name);
  }

  /**
   * Contents of an entry: for stored entries a view of the archive in memory (or a copy, read from a file), a new
   * buffer for deflated ones.
   * `checkCrc` defaults to true; skipping it saves a pass over large stored tensors.
   */
  read(entry: ZipEntry | string, checkCrc = true): Uint8Array {
    const e = typeof entry === "string" ? this.byName.get(entry) : entry;
    if (!e) throw new WeightsError(`zip: no entry named "${String(entry)}"`);
    const start = this.dataStart(e);
    let data: Uint8Array;
    if (e.method === 0) {
      data = this.source.bytes(start, e.compressedSize);
    } else if (e.method === 8) {
      if (e.uncompressedSize > MAX_ENTRY_BYTES || e.uncompressedSize > Math.max(1024, e.compressedSize * MAX_DEFLATE_RATIO)) {
        throw new WeightsError(`zip: entry "${e.name}" declares ${e.uncompressedSize} bytes from ${e.compressedSize} deflated bytes, which is impossible`);
      }
      let out: Uint8Array;
      try {
        // One spare byte reveals data longer than declared (fflate stops when the buffer is full).
        out = new Uint8Array(e.uncompressedSize + 1);
      } catch {
        throw new WeightsError(`zip: cannot allocate ${e.uncompressedSize} bytes for "${e.name}"`);
      }
      try {
        data = inflateSync(this.source.bytes(start, e.compressedSize), { out });
      } catch (err) {
        throw new WeightsError(`zip: corrupt deflate data in "${e.name}" (${(err as Error).message})`);
      }
      if (data.length !== e.uncompressedSize) {
        const got = data.length > e.uncompressedSize ? "more than the" : `${data.length} bytes, not the`;
        throw new WeightsError(`zip: entry "${e.name}" inflates to ${got} declared ${e.uncompressedSize} bytes`);
      }
    } else {
      throw new WeightsError(`zip: entry "${e.name}" uses unsupported compression method ${e.method}`);
    }
    if (checkCrc) {
      const c = crc32(data);
      if (c !== e.crc32) {
        throw new WeightsError(`zip: CRC mismatch in "${e.name}" (stored ${e.crc32.toString(16)}, computed ${c.toString(16)})`);
      }
    }
    return data;
  }

  /**
   * Where a stored entry's data starts in the file (its local header checked), the entry's bytes left unread;
   * e.g. for a tensor that a backend reads into its own memory.
   */
  dataStart(e: ZipEntry): number {
    const off = e.localHeaderOffset, size = this.source.size;
    need(off, LOCAL_SIZE, size, `local header of "${e.name}"`);
    const f = new Fields(this.source.bytes(off, LOCAL_SIZE), off, size);
    if (f.u32(off) !== SIG_LOCAL) throw new WeightsError(`zip: bad local header signature for "${e.name}" at offset ${off}`);
    // The local header's own name/extra lengths fix where data starts; they often differ from the
    // central directory's (torch pads the local extra field to align tensor data).
    const nameLen = f.u16(off + 26);
    const extraLen = f.u16(off + 28);
    const start = off + LOCAL_SIZE + nameLen + extraLen;
    f.need(off + LOCAL_SIZE, nameLen + extraLen, `local name/extra of "${e.name}"`);
    f.need(start, e.compressedSize, `data of "${e.name}"`);
    if (e.method === 0 && e.compressedSize !== e.uncompressedSize) {
      throw new WeightsError(`zip: stored entry "${e.name}" has compressed size ${e.compressedSize} != uncompressed size ${e.uncompressedSize}`);
    }
    return start;
  }

  /** The end of central directory record's offset, and the fields of the file's tail that hold it (and a zip64
   *  locator just before it). */
  private findEocd(): { eocd: number; f: Fields } {
    const len = this.source.size;
    if (len < EOCD_SIZE) throw new WeightsError(`zip: file of ${len} bytes is too short for an end of central directory record`);
    const lowest = Math.max(0, len - EOCD_SIZE - 0xffff), from = Math.max(0, lowest - 20);
    const f = new Fields(this.source.bytes(from, len - from), from, len);
    for (let p = len - EOCD_SIZE; p >= lowest; p--) {
      if (f.u32(p) === SIG_EOCD && p + EOCD_SIZE + f.u16(p + 20) <= len) return { eocd: p, f };
    }
    throw new WeightsError("zip: end of central directory record not found");
  }

  private readCentralDirectory(spans: Span[]): ZipEntry[] {
    const size = this.source.size;
    const { eocd, f: tail } = this.findEocd();
    let f = tail;
    if (f.u16(eocd + 4) !== 0 && f.u16(eocd + 4) !== 0xffff) throw new WeightsError("zip: multi-disk archives are not supported");
    let count = f.u16(eocd + 10);
    let cdSize = f.u32(eocd + 12);
    let cdOffset = f.u32(eocd + 16);
    let cdLimit = eocd;
    const loc = eocd - 20;
    if (loc >= 0 && f.u32(loc) === SIG_ZIP64_LOCATOR) {
      const z = f.u64(loc + 8, "zip64 end record offset");
      f.need(z, 56, "zip64 end of central directory record");
      if (z > loc - 56) throw new WeightsError(`zip: zip64 end record offset ${z} overlaps its locator at ${loc}`);
      f = new Fields(this.source.bytes(z, 56), z, size);
      if (f.u32(z) !== SIG_ZIP64_EOCD) throw new WeightsError(`zip: bad zip64 end record signature at offset ${z}`);
      if (f.u32(z + 16) !== 0 || f.u32(z + 20) !== 0) throw new WeightsError("zip: multi-disk archives are not supported");
      count = f.u64(z + 32, "zip64 entry count");
      cdSize = f.u64(z + 40, "zip64 central directory size");
      cdOffset = f.u64(z + 48, "zip64 central directory offset");
      cdLimit = z;
    } else if (count === 0xffff || cdSize === 0xffffffff || cdOffset === 0xffffffff) {
      throw new WeightsError("zip: end record needs zip64 values but the zip64 locator is missing");
    }
    if (cdOffset + cdSize > cdLimit) {
      throw new WeightsError(`zip: central directory [${cdOffset}, ${cdOffset + cdSize}) extends past its end record at ${cdLimit}`);
    }
    if (count > Math.floor(cdSize / CENTRAL_SIZE)) {
      throw new WeightsError(`zip: ${count} entries cannot fit in a ${cdSize}-byte central directory`);
    }
    const entries: ZipEntry[] = [];
    const end = cdOffset + cdSize;
    f = new Fields(this.source.bytes(cdOffset, cdSize), cdOffset, size);
    let p = cdOffset;
    const dec = new TextDecoder("utf-8");
    for (let i = 0; i < count; i++) {
      if (p + CENTRAL_SIZE > end) throw new WeightsError(`zip: central directory entry ${i} at ${p} overruns the directory`);
      if (f.u32(p) !== SIG_CENTRAL) throw new WeightsError(`zip: bad central directory signature for entry ${i} at offset ${p}`);
      const flags = f.u16(p + 8);
      const method = f.u16(p + 10);
      const crc = f.u32(p + 16);
      let csize = f.u32(p + 20);
      let usize = f.u32(p + 24);
      const nameLen = f.u16(p + 28);
      const extraLen = f.u16(p + 30);
      const commentLen = f.u16(p + 32);
      let disk = f.u16(p + 34);
      let local = f.u32(p + 42);
      const next = p + CENTRAL_SIZE + nameLen + extraLen + commentLen;
      if (next > end) throw new WeightsError(`zip: central directory entry ${i} at ${p} overruns the directory`);
      const name = dec.decode(f.sub(p + CENTRAL_SIZE, nameLen));
      if (flags & 1) throw new WeightsError(`zip: entry "${name}" is encrypted`);
      // zip64 extended information: 8-byte values, present only for fields saturated in the fixed header.
      let x = p + CENTRAL_SIZE + nameLen;
      const xEnd = x + extraLen;
      while (x + 4 <= xEnd) {
        const id = f.u16(x);
        const size = f.u16(x + 2);
        const body = x + 4;
        if (body + size > xEnd) throw new WeightsError(`zip: extra field of "${name}" overruns its area`);
        if (id === 0x0001) {
          let q = body;
          const take = (what: string): number => {
            if (q + 8 > body + size) throw new WeightsError(`zip: zip64 extra field of "${name}" lacks the ${what}`);
            const v = f.u64(q, `zip64 ${what} of "${name}"`);
            q += 8;
            return v;
          };
          if (usize === 0xffffffff) usize = take("uncompressed size");
          if (csize === 0xffffffff) csize = take("compressed size");
          if (local === 0xffffffff) local = take("local header offset");
          if (disk === 0xffff) {
            if (q + 4 > body + size) throw new WeightsError(`zip: zip64 extra field of "${name}" lacks the disk number`);
            disk = f.u32(q);
          }
        }
        x = body + size;
      }
      if (disk !== 0) throw new WeightsError(`zip: entry "${name}" is on disk ${disk}; multi-disk archives are not supported`);
      if (local + LOCAL_SIZE + nameLen + csize > cdOffset) {
        throw new WeightsError(`zip: entry "${name}" (local header at ${local}, ${csize} bytes) extends into the central directory at ${cdOffset}`);
      }
      spans.push({ name, start: local, end: local + LOCAL_SIZE + nameLen + csize });
      entries.push({ name, method, flags, crc32: crc, compressedSize: csize, uncompressedSize: usize, localHeaderOffset: local });
      p = next;
    }
    return entries;
  }
}

/** Lower bound of the bytes an entry occupies: local header, name and data (the extra field may add more). */
interface Span {
  name: string;
  start: number;
  end: number;
}

/** Entries sharing bytes are how zip bombs multiply their output; no legitimate writer produces them. */
function checkNoOverlap(spans: Span[]): void {
  spans.sort((a, b) => a.start - b.start);
  for (let i = 1; i < spans.length; i++) {
    const a = spans[i - 1]!;
    const b = spans[i]!;
    if (a.end > b.start) throw new WeightsError(`zip: entries "${a.name}" and "${b.name}" overlap`);
  }
}

export function readZip(bytes: Uint8Array): ZipArchive {
  return new ZipArchive(bytes);
}
