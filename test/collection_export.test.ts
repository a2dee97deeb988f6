// clip-ts export (src/collection/export.ts, src/cli/export.ts): npy + paths sidecar and parquet, in path order,
// read back here by independent readers: src/npy.ts, and a small parquet reader below (Thrift compact footer,
// PLAIN pages, RLE levels) written from the format's spec. pyarrow 25 read the same files by hand (the report
// says how); it is not installable on a clean CI machine, so the test does not depend on it.
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, test } from "vitest";
import { memoryIo, runCli } from "../src/cli/cli.js";
import { CollectionDb, comparePaths, type PhotoRow } from "../src/collection/db.js";
import { readNpy } from "../src/npy.js";
import { ClusteredData } from "./helpers/clustered_rows.js";

const tmp = mkdtempSync(join(tmpdir(), "clip-ts-export-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const DIM = 24;
const data = new ClusteredData(DIM, 10, 5);

function makeDb(name: string, rows: PhotoRow[]): string {
  const file = join(tmp, name);
  const db = CollectionDb.open(file, { dim: DIM });
  for (let i = 0; i < rows.length; i += 5000) db.upsert(rows.slice(i, i + 5000));
  db.close();
  return file;
}
const sample = (n: number) => {
  const rows = Array.from({ length: n }, (_, i) => data.row(n - 1 - i)); // inserted out of path order
  if (n > 3) rows[2] = { ...rows[2], path: "/photos/été \"quoted\"\nline.jpg" };
  return rows;
};
const sorted = (rows: PhotoRow[]) => [...rows].sort((a, b) => comparePaths(a.path, b.path));
async function cli(...argv: string[]) {
  const io = memoryIo(tmp);
  const code = await runCli(argv, io);
  return { code, out: io.out(), err: io.err() };
}

// ---- a minimal parquet reader

/** Thrift compact protocol → { fieldId: value }, lists as arrays, binaries as Uint8Array. */
function thrift(b: Uint8Array, pos: { p: number }): Record<number, unknown> {
  const varint = () => {
    let v = 0n, s = 0n;
    for (;;) {
      const x = b[pos.p++];
      v |= BigInt(x & 0x7f) << s;
      s += 7n;
      if (!(x & 0x80)) return v;
    }
  };
  const zz = () => {
    const v = varint();
    return Number((v >> 1n) ^ -(v & 1n));
  };
  const value = (t: number): unknown => {
    switch (t) {
      case 1: return true;
      case 2: return false;
      case 3: return b[pos.p++];
      case 4: case 5: case 6: return zz();
      case 8: {
        const n = Number(varint());
        pos.p += n;
        return b.subarray(pos.p - n, pos.p);
      }
      case 9: {
        const h = b[pos.p++];
        const n = h >> 4 === 15 ? Number(varint()) : h >> 4;
        return Array.from({ length: n }, () => value(h & 15));
      }
      case 12: return thrift(b, pos);
      default: throw new Error(`thrift type ${t}`);
    }
  };
  const out: Record<number, unknown> = {};
  let id = 0;
  for (;;) {
    const h = b[pos.p++];
    if (h === 0) return out;
    id = h >> 4 ? id + (h >> 4) : zz();
    out[id] = value(h & 15);
  }
}
/** RLE / bit-packed hybrid levels of bit width 1. */
function levels(b: Uint8Array, count: number): number[] {
  const out: number[] = [];
  let p = 0;
  while (out.length < count) {
    let h = 0, s = 0;
    for (;;) { const x = b[p++]; h |= (x & 0x7f) << s; s += 7; if (!(x & 0x80)) break; }
    if (h & 1) {
      for (let g = 0; g < h >> 1; g++, p++) for (let k = 0; k < 8; k++) out.push((b[p] >> k) & 1);
    } else {
      const v = b[p++];
      for (let k = 0; k < h >> 1; k++) out.push(v);
    }
  }
  return out.slice(0, count);
}
function readParquet(bytes: Uint8Array) {
  const text = (u: unknown) => new TextDecoder().decode(u as Uint8Array);
  expect(text(bytes.subarray(0, 4))).toBe("PAR1");
  expect(text(bytes.subarray(bytes.length - 4))).toBe("PAR1");
  const len = new DataView(bytes.buffer, bytes.byteOffset).getUint32(bytes.length - 8, true);
  const meta = thrift(bytes.subarray(bytes.length - 8 - len, bytes.length - 8), { p: 0 });
  const schema = (meta[2] as Record<number, unknown>[]).map((s) => ({ type: s[1], rep: s[3], name: text(s[4]), children: s[5], converted: s[6] }));
  const cols: Record<string, unknown[]> = { image_path: [], sha256: [], embedding: [] };
  for (const g of meta[4] as Record<number, unknown>[]) {
    const rows = g[3] as number;
    for (const c of g[1] as Record<number, unknown>[]) {
      const m = c[3] as Record<number, unknown>;
      const name = text((m[3] as Uint8Array[])[0]);
      expect(m[4]).toBe(0); // uncompressed
      const pos = { p: m[9] as number };
      const page = thrift(bytes, pos);
      const body = bytes.subarray(pos.p, pos.p + (page[3] as number));
      const dph = page[5] as Record<number, unknown>;
      const n = dph[1] as number;
      expect(dph[2]).toBe(0); // PLAIN
      const dv = new DataView(body.buffer, body.byteOffset, body.byteLength);
      if (name === "embedding") {
        const rl = dv.getUint32(0, true), rep = levels(body.subarray(4, 4 + rl), n);
        const dl = dv.getUint32(4 + rl, true), def = levels(body.subarray(8 + rl, 8 + rl + dl), n);
        expect(def.every((d) => d === 1)).toBe(true);
        const starts = rep.flatMap((r, i) => (r === 0 ? [i] : []));
        expect(starts.length).toBe(rows);
        const floats = new Float32Array(Uint8Array.from(body.subarray(8 + rl + dl)).buffer, 0, n); // a copy: a Buffer's slice is a view
        starts.forEach((s, i) => cols.embedding.push(floats.slice(s, starts[i + 1] ?? n)));
      } else {
        for (let p = 0, k = 0; k < n; k++) {
          const l = dv.getUint32(p, true);
          cols[name].push(text(body.subarray(p + 4, p + 4 + l)));
          p += 4 + l;
        }
      }
    }
  }
  return { rows: Number(meta[3]), groups: (meta[4] as unknown[]).length, schema, cols };
}

describe("export", () => {
  test("npy: float32 [n, dim] in path order, bit for bit; the sidecar lists the paths in that order", async () => {
    const rows = sample(50);
    const db = makeDb("a.db", rows);
    const r = await cli("export", "--db", db, "--format", "npy", "--out", "x.npy");
    expect(r).toEqual({ code: 0, out: "", err: "50 rows of 24 floats → x.npy and x.npy.paths.json\n" });
    const arr = readNpy(readFileSync(join(tmp, "x.npy")));
    expect(arr.dtype).toBe("f4");
    expect(arr.shape).toEqual([50, DIM]);
    const want = sorted(rows);
    const flat = new Float32Array(want.length * DIM);
    want.forEach((w, i) => flat.set(w.embedding, i * DIM));
    expect(Buffer.from((arr.data as Float32Array).buffer, (arr.data as Float32Array).byteOffset, flat.byteLength).equals(Buffer.from(flat.buffer))).toBe(true);
    expect(JSON.parse(readFileSync(join(tmp, "x.npy.paths.json"), "utf8"))).toEqual(want.map((w) => w.path));
    // numpy's own layout: the header is padded to a multiple of 64 bytes
    expect((10 + readFileSync(join(tmp, "x.npy")).readUInt16LE(8)) % 64).toBe(0);
  });

  test("parquet: image_path, sha256, embedding list<float32>, one row per image in path order, row groups of 8192", async () => {
    const rows = sample(8192 * 2 + 5);
    const db = makeDb("b.db", rows);
    expect((await cli("export", "--db", db, "--format", "parquet", "--out", "x.parquet")).code).toBe(0);
    const pq = readParquet(readFileSync(join(tmp, "x.parquet")));
    expect(pq.rows).toBe(rows.length);
    expect(pq.groups).toBe(3);
    expect(pq.schema).toEqual([
      { type: undefined, rep: undefined, name: "schema", children: 3, converted: undefined },
      { type: 6, rep: 0, name: "image_path", children: undefined, converted: 0 },
      { type: 6, rep: 0, name: "sha256", children: undefined, converted: 0 },
      { type: undefined, rep: 0, name: "embedding", children: 1, converted: 3 },
      { type: undefined, rep: 2, name: "list", children: 1, converted: undefined },
      { type: 4, rep: 0, name: "element", children: undefined, converted: undefined },
    ]);
    const want = sorted(rows);
    expect(pq.cols.image_path).toEqual(want.map((w) => w.path));
    expect(pq.cols.sha256).toEqual(want.map((w) => w.sha256));
    const bad = pq.cols.embedding.findIndex((e, i) => !Buffer.from((e as Float32Array).buffer).equals(Buffer.from(want[i].embedding.slice().buffer)));
    expect(bad, `row ${bad}: ${pq.cols.embedding[bad]} vs ${want[bad]?.embedding}`).toBe(-1);
  });

  test("an empty collection exports zero rows in both formats", async () => {
    const db = makeDb("empty.db", []);
    expect((await cli("export", "--db", db, "--format", "npy", "--out", "e.npy")).code).toBe(0);
    expect(readNpy(readFileSync(join(tmp, "e.npy"))).shape).toEqual([0, DIM]);
    expect(JSON.parse(readFileSync(join(tmp, "e.npy.paths.json"), "utf8"))).toEqual([]);
    expect((await cli("export", "--db", db, "--format", "parquet", "--out", "e.parquet")).code).toBe(0);
    expect(readParquet(readFileSync(join(tmp, "e.parquet"))).rows).toBe(0);
  });

  test("bad arguments are one-line errors; a failed export leaves the previous files as they were", async () => {
    const db = makeDb("c.db", sample(5));
    expect(await cli("export", "--db", db, "--format", "csv", "--out", "y")).toMatchObject({ code: 2, err: expect.stringMatching(/^clip-ts export: --format must be one of npy, parquet.*\n$/) });
    expect(await cli("export", "--format", "npy", "--out", "y")).toMatchObject({ code: 2, err: expect.stringContaining("missing --db") });
    expect(await cli("export", "--db", db, "--format", "npy")).toMatchObject({ code: 2, err: expect.stringContaining("missing --out") });
    writeFileSync(join(tmp, "keep.npy"), "old");
    const missing = await cli("export", "--db", join(tmp, "nope.db"), "--format", "npy", "--out", "keep.npy");
    expect(missing.code).toBe(1);
    expect(missing.err).toMatch(/^clip-ts export: --db: .*nope\.db: no collection there/);
    expect(missing.err.split("\n").length).toBe(2);
    expect(readFileSync(join(tmp, "keep.npy"), "utf8")).toBe("old");
    expect(existsSync(join(tmp, "nope.db"))).toBe(false);
    const dir = await cli("export", "--db", db, "--format", "parquet", "--out", ".");
    expect(dir).toMatchObject({ code: 1, err: expect.stringContaining("is a directory") });
    const help = await cli("help", "export");
    expect(help.out).toContain("clip-ts export --db PATH --format npy|parquet --out FILE");
  });
});
