// WebDataset shards (what img2dataset writes) are plain tar files: the members are read where they lie, with
// positional reads, never the whole archive. ustar, GNU long names and pax paths; regular files only.
// (Stub for the index command; the shards helper owns this file.)
import { closeSync, fstatSync, openSync, readSync } from "node:fs";

export interface TarEntry {
  name: string;
  /** Where the member's bytes start in the archive. */
  offset: number;
  size: number;
  mtimeMs: number;
}

export interface TarLimits {
  /** Members listed at most (default 10 000 000). */
  maxEntries?: number;
  /** A GNU long name or pax header at most this long (default 1 MiB). */
  maxHeaderBytes?: number;
}

const BLOCK = 512;

function readAt(fd: number, offset: number, length: number): Uint8Array {
  const out = new Uint8Array(length);
  let got = 0;
  while (got < length) {
    const n = readSync(fd, out, got, length - got, offset + got);
    if (n === 0) break;
    got += n;
  }
  return got === length ? out : out.subarray(0, got);
}

const text = (b: Uint8Array) => {
  const end = b.indexOf(0);
  return Buffer.from(end < 0 ? b : b.subarray(0, end)).toString("utf8");
};

function octal(b: Uint8Array, what: string): number {
  if (b[0]! & 0x80) { // GNU base-256
    let v = 0;
    for (let i = 1; i < b.length; i++) v = v * 256 + b[i]!;
    return v;
  }
  const s = text(b).trim();
  if (s === "") return 0;
  if (!/^[0-7]+$/.test(s)) throw new Error(`bad ${what} field ${JSON.stringify(s)}`);
  return parseInt(s, 8);
}

/** The regular files of the tar at `file`, in archive order. */
export function listTar(file: string, limits: TarLimits = {}): TarEntry[] {
  const maxEntries = limits.maxEntries ?? 10_000_000, maxHeader = limits.maxHeaderBytes ?? 1 << 20;
  let fd: number;
  try {
    fd = openSync(file, "r");
  } catch (e) {
    throw new Error(`${file}: cannot open (${(e as Error).message.split("\n")[0]})`);
  }
  try {
    const total = fstatSync(fd).size;
    const out: TarEntry[] = [];
    let pos = 0, longName: string | undefined, paxPath: string | undefined;
    while (pos + BLOCK <= total) {
      const h = readAt(fd, pos, BLOCK);
      if (h.every((x) => x === 0)) break; // end of archive
      let sum = 0;
      for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 32 : h[i]!;
      let size: number;
      try {
        if (octal(h.subarray(148, 156), "checksum") !== sum) throw new Error("header checksum mismatch");
        size = octal(h.subarray(124, 136), "size");
      } catch (e) {
        throw new Error(`${file}: not a valid tar at byte ${pos} (${(e as Error).message})`);
      }
      const type = String.fromCharCode(h[156]!);
      const data = pos + BLOCK;
      if (data + size > total) throw new Error(`${file}: truncated tar (member at byte ${pos} needs ${size} bytes)`);
      if (type === "L" || type === "x") {
        if (size > maxHeader) throw new Error(`${file}: a ${type === "L" ? "long-name" : "pax"} header of ${size} bytes at byte ${pos}`);
        const body = readAt(fd, data, size);
        if (type === "L") longName = text(body);
        else paxPath = paxField(body, "path") ?? paxPath;
      } else if (type === "0" || type === "\0" || type === "7") {
        const prefix = text(h.subarray(345, 500));
        const name = paxPath ?? longName ?? (prefix ? `${prefix}/${text(h.subarray(0, 100))}` : text(h.subarray(0, 100)));
        if (out.length >= maxEntries) throw new Error(`${file}: more than ${maxEntries} members`);
        out.push({ name, offset: data, size, mtimeMs: octal(h.subarray(136, 148), "mtime") * 1000 });
        longName = paxPath = undefined;
      } else {
        longName = paxPath = undefined; // a directory, link or device: not an image
      }
      pos = data + Math.ceil(size / BLOCK) * BLOCK;
    }
    return out;
  } finally {
    closeSync(fd);
  }
}

/** pax records: "<len> <key>=<value>\n", len counting bytes. */
function paxField(body: Uint8Array, key: string): string | undefined {
  const b = Buffer.from(body.buffer, body.byteOffset, body.byteLength);
  let found: string | undefined;
  for (let i = 0; i < b.length;) {
    const sp = b.indexOf(0x20, i);
    const len = Number(b.toString("latin1", i, sp));
    if (sp < 0 || !Number.isSafeInteger(len) || len <= 0 || i + len > b.length) break;
    const rec = b.toString("utf8", sp + 1, i + len - 1);
    const eq = rec.indexOf("=");
    if (rec.slice(0, eq) === key) found = rec.slice(eq + 1);
    i += len;
  }
  return found;
}

/** The bytes of one member. */
export function readTarEntry(file: string, entry: TarEntry): Uint8Array {
  const fd = openSync(file, "r");
  try {
    const b = readAt(fd, entry.offset, entry.size);
    if (b.length !== entry.size) throw new Error(`${file}#${entry.name}: truncated (${b.length} of ${entry.size} bytes)`);
    return b;
  } finally {
    closeSync(fd);
  }
}
