// Tar archives as inputs: the WebDataset shards img2dataset writes (Python's tarfile, pax format: a pax header per
// member when its mtime is a float) and what GNU tar writes (GNU long names, pax). Only the headers are read, one
// 512-byte block at a time at its offset, so listing a 10 GB shard costs its member count, not its size; a member's
// bytes are read when asked for.
import { closeSync, fstatSync, openSync, readSync } from "node:fs";

export interface TarEntry {
  /** The member's path inside the archive, as stored (pax `path`, else the GNU long name, else ustar prefix/name). */
  name: string;
  /** Byte offset of its data in the archive file. */
  offset: number;
  /** Its size in bytes. */
  size: number;
  /** Modification time, ms since the epoch (pax `mtime` keeps fractions of a second). */
  mtimeMs: number;
}

export interface TarLimits {
  /** Headers of any kind (members, directories, long-name and pax headers) read before giving up. */
  maxEntries?: number;
  /** Bytes of a member name (GNU long name or pax path). */
  maxNameBytes?: number;
  /** Bytes of one pax extended header. */
  maxPaxBytes?: number;
}

export const DEFAULT_TAR_LIMITS: Required<TarLimits> = { maxEntries: 1_000_000, maxNameBytes: 4096, maxPaxBytes: 1 << 20 };
/** readTarEntry reads a member whole: more than this is refused (an image this large is no photo). */
export const DEFAULT_MAX_MEMBER_BYTES = 2 ** 30;

export class TarError extends Error {
  override name = "TarError";
}

const BLOCK = 512;
const utf8 = new TextDecoder("utf-8", { fatal: true });
const latin1 = new TextDecoder("latin1");
/** Headers are read through a window this large: small members put many headers in one read. */
const WINDOW = 64 * 1024;
/** Member names can hold anything, newlines included: quoted, and cut, so a message stays one short line. */
const q = (s: string) => JSON.stringify(s.length > 200 ? `${s.slice(0, 200)}…` : s);

function limitsOf(file: string, limits: TarLimits | undefined): Required<TarLimits> {
  const out = { ...DEFAULT_TAR_LIMITS };
  for (const [k, v] of Object.entries(limits ?? {})) {
    if (!(k in out)) throw new TarError(`${file}: unknown tar limit ${q(k)} (known: ${Object.keys(out).join(", ")})`);
    if (v === undefined) continue;
    if (!(v === Infinity || (Number.isSafeInteger(v) && v > 0))) throw new TarError(`${file}: tar limit ${k} must be a positive integer or Infinity, got ${v}`);
    out[k as keyof TarLimits] = v;
  }
  return out;
}

/** A NUL-terminated string field; the name fields must be UTF-8. */
function text(file: string, b: Uint8Array, at: number, len: number, what: string, where: number): string {
  let end = at;
  while (end < at + len && b[end] !== 0) end++;
  try {
    return utf8.decode(b.subarray(at, end));
  } catch {
    throw new TarError(`${file}: header at offset ${where}: ${what} is not valid UTF-8`);
  }
}

/**
 * A numeric field: octal digits (leading spaces/NULs, ended by a space or NUL), or GNU's base-256 (first byte
 * 0x80 for positive, 0xff for negative, big-endian after). Undefined when it is neither.
 */
function numeric(b: Uint8Array, at: number, len: number): number | undefined {
  const first = b[at]!;
  if (first === 0x80 || first === 0xff) {
    let v = first === 0xff ? -1 : 0;
    for (let i = 1; i < len; i++) {
      v = v * 256 + b[at + i]!;
      if (!Number.isSafeInteger(v)) return undefined;
    }
    return v;
  }
  let i = at;
  const end = at + len;
  while (i < end && (b[i] === 0x20 || b[i] === 0)) i++;
  if (i === end) return 0; // an all-blank field, as old writers leave mtime
  let v = 0;
  let digits = 0;
  for (; i < end && b[i]! >= 0x30 && b[i]! <= 0x37; i++, digits++) v = v * 8 + (b[i]! - 0x30);
  for (; i < end; i++) if (b[i] !== 0x20 && b[i] !== 0) return undefined;
  return digits > 0 ? v : undefined;
}

interface Pax {
  path?: string;
  size?: number;
  mtimeMs?: number;
}

/** Pax records, "<len> <key>=<value>\n" each, `len` counting the whole record. Only path, size and mtime matter. */
function parsePax(file: string, body: Uint8Array, where: number, maxName: number): Pax {
  const out: Pax = {};
  const bad = (why: string) => new TarError(`${file}: pax header at offset ${where}: ${why}`);
  let at = 0;
  while (at < body.length) {
    if (body[at] === 0) {
      // Some writers pad the body with NULs; anything after them is junk.
      if (body.subarray(at).every((x) => x === 0)) break;
      throw bad(`a NUL inside the records at byte ${at}`);
    }
    let sp = at;
    while (sp < body.length && sp - at < 20 && body[sp]! >= 0x30 && body[sp]! <= 0x39) sp++;
    if (sp === at || body[sp] !== 0x20) throw bad(`record at byte ${at} does not start with "<length> "`);
    const len = Number(latin1.decode(body.subarray(at, sp)));
    if (!(len > sp - at + 1) || at + len > body.length || body[at + len - 1] !== 0x0a) throw bad(`record at byte ${at} has a bad length ${len}`);
    const rec = body.subarray(sp + 1, at + len - 1);
    const eq = rec.indexOf(0x3d);
    if (eq <= 0) throw bad(`record at byte ${at} has no "key="`);
    const key = latin1.decode(rec.subarray(0, eq));
    const raw = rec.subarray(eq + 1);
    if (key === "path") {
      if (raw.length > maxName) throw bad(`path of ${raw.length} bytes, more than the limit of ${maxName} (maxNameBytes)`);
      try {
        out.path = utf8.decode(raw);
      } catch {
        throw bad("path is not valid UTF-8");
      }
    } else if (key === "size" || key === "mtime") {
      const v = latin1.decode(raw);
      if (key === "size") {
        if (!/^\d{1,16}$/.test(v) || !Number.isSafeInteger(Number(v))) throw bad(`size ${q(v)} is not a non-negative integer`);
        out.size = Number(v);
      } else {
        if (!/^-?\d{1,16}(\.\d{0,18})?$/.test(v)) throw bad(`mtime ${q(v)} is not a number of seconds`);
        out.mtimeMs = Number(v) * 1000;
      }
    }
    at += len;
  }
  return out;
}

/** Reads exactly `len` bytes at `pos`, or says where the file ended. */
function readAt(file: string, fd: number, buf: Uint8Array, pos: number, len: number, what: string): void {
  let got = 0;
  while (got < len) {
    const n = readSync(fd, buf, got, len - got, pos + got);
    if (n === 0) throw new TarError(`${file}: truncated tar: ${what} at offset ${pos} ends at byte ${pos + got} of the file`);
    got += n;
  }
}

function openFile(file: string): number {
  try {
    return openSync(file, "r");
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    throw new TarError(`${file}: cannot open: ${err.code === "ENOENT" ? "no such file" : err.code === "EACCES" ? "permission denied" : err.message.split("\n")[0]}`);
  }
}

/**
 * The regular files of a tar archive, in archive order; a name stored twice (an archive appended to) keeps its
 * last copy, as extraction would. Directories, links and devices are skipped. Throws a one-line TarError naming
 * the file for anything malformed: a bad checksum or field, a member running past the end, a missing end marker.
 */
export function listTar(file: string, limits?: TarLimits): TarEntry[] {
  const lim = limitsOf(file, limits);
  const fd = openFile(file);
  try {
    const st = fstatSync(fd);
    if (st.isDirectory()) throw new TarError(`${file}: is a directory, not a tar archive`);
    const fileSize = st.size;
    const win = new Uint8Array(Math.min(WINDOW, Math.max(BLOCK, fileSize)));
    let winAt = 0;
    let winLen = 0;
    /** `len` bytes at `at` (a header, a pax body), from the window, refilled from `at` when they are not in it. */
    const bytesAt = (at: number, len: number, what: string): Uint8Array => {
      if (len > win.length) {
        const out = new Uint8Array(len);
        readAt(file, fd, out, at, len, what);
        return out;
      }
      if (at < winAt || at + len > winAt + winLen) {
        const want = Math.min(win.length, fileSize - at);
        if (want < len) throw new TarError(`${file}: truncated tar: ${what} at offset ${at} ends at byte ${fileSize} of the file`);
        readAt(file, fd, win, at, want, what);
        winAt = at;
        winLen = want;
      }
      return win.subarray(at - winAt, at - winAt + len);
    };
    const found = new Map<string, TarEntry>();
    let pos = 0;
    let headers = 0;
    let longName: string | undefined;
    let pax: Pax | undefined;
    let global: Pax = {};
    for (;;) {
      if (pos === fileSize) {
        if (pos === 0) throw new TarError(`${file}: empty file, not a tar archive`);
        throw new TarError(`${file}: truncated tar: ends at byte ${pos} without tar's end-of-archive blocks`);
      }
      const h = bytesAt(pos, BLOCK, "a header");
      if (h.every((x) => x === 0)) {
        if (longName !== undefined || pax) throw new TarError(`${file}: a long-name or pax header at the end, with no member after it`);
        break; // the end marker (two zero blocks; one is accepted, as GNU tar does); anything after is padding
      }
      if (++headers > lim.maxEntries) throw new TarError(`${file}: more than ${lim.maxEntries} headers (maxEntries)`);
      const stored = numeric(h, 148, 8);
      // the sum of the header's bytes, its checksum field counted as spaces; old writers summed signed bytes
      let sum = 8 * 0x20;
      let high = 0;
      for (let i = 0; i < BLOCK; i++) {
        if (i === 148) i = 156;
        const x = h[i]!;
        sum += x;
        if (x > 127) high++;
      }
      const signed = sum - 256 * high;
      if (stored === undefined) throw new TarError(`${file}: header at offset ${pos}: unreadable checksum field (not a tar archive, or corrupt)`);
      if (stored !== sum && stored !== signed) throw new TarError(`${file}: header at offset ${pos}: checksum ${stored} does not match the header's ${sum} (corrupt)`);
      const magic = String.fromCharCode(...h.subarray(257, 263));
      const gnu = magic === "ustar " && h[263] === 0x20 && h[264] === 0;
      if (!gnu && magic !== "ustar\0" && !h.subarray(257, 265).every((x) => x === 0)) {
        throw new TarError(`${file}: header at offset ${pos}: unknown format (magic ${q(magic)})`);
      }
      let type = h[156] === 0 ? "0" : String.fromCharCode(h[156]!);
      let size = numeric(h, 124, 12);
      if (size === undefined || size < 0) throw new TarError(`${file}: header at offset ${pos}: unreadable size field`);
      const dataAt = pos + BLOCK;
      if (type === "L" || type === "x" || type === "g" || type === "K") {
        const max = type === "L" || type === "K" ? lim.maxNameBytes + 1 : lim.maxPaxBytes;
        const what = type === "x" || type === "g" ? "pax header" : "GNU long name";
        if (size > max) throw new TarError(`${file}: header at offset ${pos}: ${what} of ${size} bytes, more than the limit of ${max} (${type === "x" || type === "g" ? "maxPaxBytes" : "maxNameBytes"})`);
        if (dataAt + size > fileSize) throw new TarError(`${file}: truncated tar: ${what} at offset ${pos} needs ${size} bytes, the file ends at byte ${fileSize}`);
        const body = bytesAt(dataAt, size, what);
        if (type === "L") {
          let end = body.indexOf(0);
          if (end < 0) end = body.length;
          try {
            longName = utf8.decode(body.subarray(0, end));
          } catch {
            throw new TarError(`${file}: header at offset ${pos}: GNU long name is not valid UTF-8`);
          }
        } else if (type === "x") {
          pax = { ...pax, ...parsePax(file, body, pos, lim.maxNameBytes) };
        } else if (type === "g") {
          const g = parsePax(file, body, pos, lim.maxNameBytes);
          delete g.path; // a path for every later member means nothing
          global = { ...global, ...g };
        } // 'K', a long link target: read to check it, not needed
        pos = dataAt + Math.ceil(size / BLOCK) * BLOCK;
        continue;
      }
      const ext = { ...global, ...pax };
      if (ext.size !== undefined) size = ext.size;
      let name = ext.path ?? longName;
      if (name === undefined) {
        name = text(file, h, 0, 100, "member name", pos);
        const prefix = gnu || magic !== "ustar\0" ? "" : text(file, h, 345, 155, "name prefix", pos);
        if (prefix !== "") name = `${prefix}/${name}`;
      }
      longName = undefined;
      pax = undefined;
      if (h[156] === 0 && name.endsWith("/")) type = "5"; // pre-POSIX tars mark directories by the slash alone

      // Links, devices, directories and FIFOs have no data blocks, whatever their size field says (as tarfile).
      const hasData = !"123456".includes(type);
      if (hasData && dataAt + size > fileSize) {
        throw new TarError(`${file}: truncated tar: member ${q(name)} at offset ${pos} claims ${size} bytes, past the end of the ${fileSize}-byte file`);
      }
      if (type === "0" || type === "7") {
        if (name === "") throw new TarError(`${file}: header at offset ${pos}: a file with an empty name`);
        if (Buffer.byteLength(name) > lim.maxNameBytes) throw new TarError(`${file}: header at offset ${pos}: name of ${Buffer.byteLength(name)} bytes, more than the limit of ${lim.maxNameBytes} (maxNameBytes)`);
        const seconds = numeric(h, 136, 12);
        if (ext.mtimeMs === undefined && seconds === undefined) throw new TarError(`${file}: member ${q(name)} at offset ${pos}: unreadable mtime field`);
        found.delete(name); // a later copy replaces an earlier one, and takes its place in the order
        found.set(name, { name, offset: dataAt, size, mtimeMs: ext.mtimeMs ?? seconds! * 1000 });
      }
      pos = hasData ? dataAt + Math.ceil(size / BLOCK) * BLOCK : dataAt;
    }
    return [...found.values()];
  } finally {
    closeSync(fd);
  }
}

/** The bytes of one member, read at its offset; the archive must still be at least as long as listTar saw it. */
export function readTarEntry(file: string, entry: TarEntry, options: { maxBytes?: number } = {}): Uint8Array {
  const max = options.maxBytes ?? DEFAULT_MAX_MEMBER_BYTES;
  const { offset, size } = entry ?? ({} as TarEntry);
  if (!(Number.isSafeInteger(offset) && offset >= 0 && Number.isSafeInteger(size) && size >= 0)) {
    throw new TarError(`${file}: not a tar entry (offset ${offset}, size ${size})`);
  }
  if (size > max) throw new TarError(`${file}: member ${q(String(entry.name))} is ${size} bytes, more than the limit of ${max} (maxBytes)`);
  const fd = openFile(file);
  try {
    const fileSize = fstatSync(fd).size;
    if (offset + size > fileSize) throw new TarError(`${file}: member ${q(String(entry.name))} at ${offset}+${size} is past the end of the ${fileSize}-byte file (it changed since it was listed?)`);
    const out = new Uint8Array(size);
    readAt(file, fd, out, offset, size, `member ${q(String(entry.name))}`);
    return out;
  } finally {
    closeSync(fd);
  }
}
