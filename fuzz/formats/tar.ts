// Tar headers for the fuzz target and the tests: a writer of single headers (ustar, GNU, pax bodies) and a walker
// of a valid archive's header positions, so mutators can edit one field and repair the checksum behind it.
import { concat, utf8 } from "../mutate.js";

export const BLOCK = 512;

export interface HeaderFields {
  name: string;
  size: number;
  /** '0' file, '5' directory, 'L' GNU long name, 'x' pax, … */
  type?: string;
  mtime?: number;
  prefix?: string;
  /** "ustar\0" + "00" (POSIX, the default) or "ustar  \0" (GNU). */
  gnu?: boolean;
  linkname?: string;
}

function octal(b: Uint8Array, at: number, len: number, v: number): void {
  b.set(utf8(v.toString(8).padStart(len - 1, "0").slice(-(len - 1))), at);
  b[at + len - 1] = 0;
}

/** Sets the checksum field to the header's sum, as writers do ("%06o\0 "). */
export function fixChecksum(b: Uint8Array, at = 0): void {
  const h = b.subarray(at, at + BLOCK);
  h.fill(0x20, 148, 156);
  let sum = 0;
  for (const x of h) sum += x;
  h.set(utf8(sum.toString(8).padStart(6, "0").slice(-6)), 148);
  h[154] = 0;
  h[155] = 0x20;
}

export function tarHeader(f: HeaderFields): Uint8Array {
  const h = new Uint8Array(BLOCK);
  h.set(utf8(f.name).subarray(0, 100), 0);
  octal(h, 100, 8, 0o644);
  octal(h, 108, 8, 0);
  octal(h, 116, 8, 0);
  if (f.size < 8 ** 11) octal(h, 124, 12, f.size);
  else {
    // GNU base-256 for sizes of 8 GiB and more
    h[124] = 0x80;
    for (let i = 0, v = f.size; i < 11; i++, v = Math.floor(v / 256)) h[135 - i] = v % 256;
  }
  octal(h, 136, 12, f.mtime ?? 1_600_000_000);
  h[156] = (f.type ?? "0").charCodeAt(0);
  if (f.linkname) h.set(utf8(f.linkname).subarray(0, 100), 157);
  h.set(utf8(f.gnu ? "ustar  \0" : "ustar\x0000"), 257);
  if (f.prefix) h.set(utf8(f.prefix).subarray(0, 155), 345);
  fixChecksum(h);
  return h;
}

export const pad = (data: Uint8Array): Uint8Array => concat(data, new Uint8Array((BLOCK - (data.length % BLOCK)) % BLOCK));

/** One member: header plus data padded to a block. */
export function member(name: string, data: Uint8Array, extra: Partial<HeaderFields> = {}): Uint8Array {
  return concat(tarHeader({ name, size: data.length, ...extra }), pad(data));
}

/** A pax record, its length counting itself. */
export function paxRecord(key: string, value: string): string {
  const body = ` ${key}=${value}\n`;
  let n = utf8(body).length + 1;
  while (String(n).length + utf8(body).length !== n) n++;
  return `${n}${body}`;
}

export function paxHeader(records: string, type = "x"): Uint8Array {
  return member("PaxHeader", utf8(records), { type });
}

export const endBlocks = (): Uint8Array => new Uint8Array(2 * BLOCK);

/** Header offsets of a well-formed archive (pax 'x'/'g', 'L' and members alike), up to its end marker. */
export function headerOffsets(b: Uint8Array): number[] {
  const out: number[] = [];
  let pos = 0;
  while (pos + BLOCK <= b.length && !b.subarray(pos, pos + BLOCK).every((x) => x === 0)) {
    out.push(pos);
    const type = String.fromCharCode(b[pos + 156]!);
    const size = parseInt(new TextDecoder().decode(b.subarray(pos + 124, pos + 135)), 8) || 0;
    pos += BLOCK + ("123456".includes(type) ? 0 : Math.ceil(size / BLOCK) * BLOCK);
  }
  return out;
}

/** Where a well-formed archive's end marker starts. */
export function endOffset(b: Uint8Array): number {
  const h = headerOffsets(b);
  if (h.length === 0) return 0;
  const last = h[h.length - 1]!;
  const type = String.fromCharCode(b[last + 156]!);
  const size = parseInt(new TextDecoder().decode(b.subarray(last + 124, last + 135)), 8) || 0;
  return last + BLOCK + ("123456".includes(type) ? 0 : Math.ceil(size / BLOCK) * BLOCK);
}
