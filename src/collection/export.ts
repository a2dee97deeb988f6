// A collection's embeddings for other tools, in path order (UTF-8 bytes, as rows() gives them):
// - npy: float32 [n, dim] (what faiss users np.load) and a JSON array of the paths in the same order beside it;
// - parquet: one row per image, clip-retrieval's column names (image_path, embedding: list<float32>) plus sha256.
// The parquet writer is our own and small: PLAIN encoding, no compression, one data page per column chunk, the
// footer in Thrift's compact protocol (apache/parquet-format's parquet.thrift), so no package is needed for it.
import type { CollectionDb } from "./db.js";

/** Where the bytes go, in order (src/cli/output.ts's OutputFile, or a test's array). */
export interface ByteSink {
  write(bytes: Uint8Array): void;
}

/** Rows per parquet row group: ~18 MB of 512-float embeddings, so memory stays bounded at any collection size. */
const ROW_GROUP = 8192;
const CHUNK = 1 << 20;

/** Collects small writes into ~1 MB ones. */
class Buffered {
  private buf = new Uint8Array(CHUNK);
  private n = 0;
  written = 0;
  constructor(private readonly sink: ByteSink) {}
  write(b: Uint8Array): void {
    this.written += b.length;
    if (this.n + b.length > this.buf.length) this.flush();
    if (b.length >= this.buf.length) return this.sink.write(b);
    this.buf.set(b, this.n);
    this.n += b.length;
  }
  flush(): void {
    if (this.n > 0) this.sink.write(this.buf.slice(0, this.n));
    this.n = 0;
  }
}

const bytesOf = (e: Float32Array) => new Uint8Array(e.buffer, e.byteOffset, e.byteLength);

/**
 * The npy file (float32 [n, dim], C order) to `npy`, and the paths in the same order, as a JSON array (one path per
 * line), to `paths`. Returns the row count.
 */
export function exportNpy(db: CollectionDb, npy: ByteSink, paths: ByteSink): number {
  const n = db.count(), dim = db.dim;
  let dict = `{'descr': '<f4', 'fortran_order': False, 'shape': (${n}, ${dim}), }`;
  dict += " ".repeat(63 - ((10 + dict.length) % 64)) + "\n"; // header padded to 64 bytes, as numpy writes it
  const head = new Uint8Array(10 + dict.length);
  head.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0, dict.length & 0xff, dict.length >> 8]);
  for (let i = 0; i < dict.length; i++) head[10 + i] = dict.charCodeAt(i);
  const out = new Buffered(npy), names = new Buffered(paths);
  const enc = new TextEncoder();
  out.write(head);
  names.write(enc.encode("["));
  let rows = 0;
  for (const r of db.rows()) {
    out.write(bytesOf(r.embedding));
    names.write(enc.encode(`${rows ? "," : ""}\n${JSON.stringify(r.path)}`));
    rows++;
  }
  if (rows !== n) throw new Error(`${db.file}: the collection changed during the export (${rows} rows, counted ${n})`);
  names.write(enc.encode(rows ? "\n]\n" : "]\n"));
  out.flush();
  names.flush();
  return rows;
}

// ---- Thrift compact protocol, just what the parquet footer and page headers need

const enum T { I32 = 5, I64 = 6, BINARY = 8, LIST = 9, STRUCT = 12 }
type Field = [id: number, type: T.I32 | T.I64, value: number] | [id: number, type: T.BINARY, value: string]
  | [id: number, type: T.STRUCT, value: Field[]] | [id: number, type: T.LIST, elem: T.I32 | T.BINARY | T.STRUCT, value: (number | string | Field[])[]];

class Thrift {
  private out: number[] = [];
  private varint(v: bigint): void {
    while (v >= 0x80n) {
      this.out.push(Number(v & 0x7fn) | 0x80);
      v >>= 7n;
    }
    this.out.push(Number(v));
  }
  private zigzag(v: number): void {
    const b = BigInt(v);
    this.varint(b >= 0n ? b << 1n : ((-b) << 1n) - 1n);
  }
  private value(type: T, v: number | string | Field[]): void {
    if (type === T.I32 || type === T.I64) this.zigzag(v as number);
    else if (type === T.BINARY) {
      const b = new TextEncoder().encode(v as string);
      this.varint(BigInt(b.length));
      for (const x of b) this.out.push(x);
    } else this.struct(v as Field[]);
  }
  struct(fields: Field[]): this {
    let last = 0;
    for (const f of fields) {
      const [id, type] = f;
      if (id - last >= 1 && id - last <= 15) this.out.push(((id - last) << 4) | type);
      else {
        this.out.push(type);
        this.zigzag(id);
      }
      last = id;
      if (type === T.LIST) {
        const [, , elem, items] = f as [number, T.LIST, T, (number | string | Field[])[]];
        if (items.length < 15) this.out.push((items.length << 4) | elem);
        else {
          this.out.push(0xf0 | elem);
          this.varint(BigInt(items.length));
        }
        for (const item of items) this.value(elem, item);
      } else this.value(type, f[2] as number | string | Field[]);
    }
    this.out.push(0); // stop
    return this;
  }
  bytes(): Uint8Array {
    return Uint8Array.from(this.out);
  }
}

// parquet.thrift's numbers
const BYTE_ARRAY = 6, FLOAT = 4, REQUIRED = 0, REPEATED = 2, UTF8 = 0, LIST = 3, PLAIN = 0, RLE = 3, DATA_PAGE = 0, UNCOMPRESSED = 0;

function le32(n: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, n, true);
  return b;
}
function varint(n: number, out: number[]): void {
  while (n >= 0x80) {
    out.push((n & 0x7f) | 0x80);
    n = Math.floor(n / 128);
  }
  out.push(n);
}

/** A column chunk being filled: its page body, and how many values (leaf entries) it holds. */
interface Chunk { parts: Uint8Array[]; size: number; values: number }

/**
 * Levels of `rows` lists of `dim` required floats, as the RLE/bit-packing hybrid with bit width 1 and its 4-byte
 * length: repetition 0 then dim−1 ones per row; definition all ones.
 */
function listLevels(rows: number, dim: number): Uint8Array[] {
  const rep: number[] = [];
  for (let r = 0; r < rows; r++) {
    varint(1 << 1, rep); rep.push(0);
    if (dim > 1) { varint((dim - 1) * 2, rep); rep.push(1); }
  }
  const def: number[] = [];
  varint(rows * dim * 2, def);
  def.push(1);
  return [le32(rep.length), Uint8Array.from(rep), le32(def.length), Uint8Array.from(def)];
}

/**
 * The parquet file (columns image_path, sha256: UTF-8 strings; embedding: list<float32> of dim) to `sink`, row
 * groups of ROW_GROUP rows. Returns the row count.
 */
export function exportParquet(db: CollectionDb, sink: ByteSink): number {
  const dim = db.dim;
  const out = new Buffered(sink);
  const enc = new TextEncoder();
  out.write(enc.encode("PAR1"));
  const groups: Field[][] = [];
  let total = 0;
  const names: [string, number][] = [["image_path", 0], ["sha256", 0], ["embedding", 1]];
  let cols: Chunk[] = [];
  let rows = 0;
  const start = () => {
    cols = names.map(() => ({ parts: [], size: 0, values: 0 }));
    rows = 0;
  };
  const add = (c: Chunk, b: Uint8Array, values: number) => {
    c.parts.push(b);
    c.size += b.length;
    c.values += values;
  };
  const flush = () => {
    if (rows === 0) return;
    const levels = listLevels(rows, dim);
    const columns: Field[][] = [];
    let groupBytes = 0;
    names.forEach(([name], i) => {
      const body = i === 2 ? [...levels, ...cols[i].parts] : cols[i].parts;
      const size = body.reduce((s, b) => s + b.length, 0);
      const header = new Thrift().struct([
        [1, T.I32, DATA_PAGE], [2, T.I32, size], [3, T.I32, size],
        [5, T.STRUCT, [[1, T.I32, cols[i].values], [2, T.I32, PLAIN], [3, T.I32, RLE], [4, T.I32, RLE]]],
      ]).bytes();
      const offset = out.written;
      out.write(header);
      for (const b of body) out.write(b);
      const chunk = header.length + size;
      groupBytes += chunk;
      const path = i === 2 ? [name, "list", "element"] : [name];
      columns.push([
        [2, T.I64, offset],
        [3, T.STRUCT, [
          [1, T.I32, i === 2 ? FLOAT : BYTE_ARRAY], [2, T.LIST, T.I32, i === 2 ? [PLAIN, RLE] : [PLAIN]], [3, T.LIST, T.BINARY, path],
          [4, T.I32, UNCOMPRESSED], [5, T.I64, cols[i].values], [6, T.I64, chunk], [7, T.I64, chunk], [9, T.I64, offset],
        ]],
      ]);
    });
    groups.push([[1, T.LIST, T.STRUCT, columns], [2, T.I64, groupBytes], [3, T.I64, rows]]);
    total += rows;
    start();
  };
  start();
  for (const r of db.rows()) {
    for (const [i, s] of [r.path, r.sha256].entries()) {
      const b = enc.encode(s);
      add(cols[i], le32(b.length), 0);
      add(cols[i], b, 1);
    }
    add(cols[2], bytesOf(r.embedding).slice(), dim);
    if (++rows === ROW_GROUP) flush();
  }
  flush();
  const str = (name: string): Field[] => [[1, T.I32, BYTE_ARRAY], [3, T.I32, REQUIRED], [4, T.BINARY, name], [6, T.I32, UTF8]];
  const schema: Field[][] = [
      [[4, T.BINARY, "schema"], [5, T.I32, 3]],
      str("image_path"),
      str("sha256"),
      [[3, T.I32, REQUIRED], [4, T.BINARY, "embedding"], [5, T.I32, 1], [6, T.I32, LIST]],
      [[3, T.I32, REPEATED], [4, T.BINARY, "list"], [5, T.I32, 1]],
      [[1, T.I32, FLOAT], [3, T.I32, REQUIRED], [4, T.BINARY, "element"]],
  ];
  const footer = new Thrift().struct([
    [1, T.I32, 1],
    [2, T.LIST, T.STRUCT, schema],
    [3, T.I64, total],
    [4, T.LIST, T.STRUCT, groups],
    [6, T.BINARY, "clip-ts"],
  ]).bytes();
  out.write(footer);
  out.write(le32(footer.length));
  out.write(enc.encode("PAR1"));
  out.flush();
  return total;
}
