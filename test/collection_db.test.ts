// The collection database adapter (src/collection/db.ts): rows round-trip bit for bit, upsert/delete in
// transactions, exact search equal to a brute-force reference with ties by path, one-line refusals, and a writer
// killed with SIGKILL at random points leaving exactly its committed rows.
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { build } from "esbuild";
import { afterAll, describe, expect, test } from "vitest";
import { CollectionDb, comparePaths, type PhotoRow } from "../src/collection/db.js";
import { collectionRow, MODEL } from "./helpers/collection_rows.js";

const tmp = mkdtempSync(join(tmpdir(), "clip-ts-collection-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
let seq = 0;
const fresh = () => join(tmp, `c${seq++}.db`);
const bits = (e: Float32Array) => Buffer.from(e.buffer, e.byteOffset, e.byteLength).toString("hex");
const rowsOf = (db: CollectionDb) => [...db.rows()];

function bruteForce(rows: PhotoRow[], q: Float32Array, k: number) {
  const scored = rows.map((r) => {
    let s = 0;
    for (let i = 0; i < q.length; i++) s += r.embedding[i] * q[i];
    return { path: r.path, score: Math.fround(s) };
  });
  scored.sort((a, b) => b.score - a.score || comparePaths(a.path, b.path));
  return scored.slice(0, k);
}

describe("rows", () => {
  test("upsert, close, reopen: every field back bit for bit, in path order", () => {
    const file = fresh();
    const rows = [5, 1, 3, 0, 2, 4].map((i) => collectionRow(i, 512));
    const db = CollectionDb.open(file, { dim: 512 });
    db.upsert(rows);
    db.close();
    const again = CollectionDb.open(file);
    expect(again.dim).toBe(512);
    expect(again.count()).toBe(6);
    const back = rowsOf(again);
    expect(back.map((r) => r.path)).toEqual([0, 1, 2, 3, 4, 5].map((i) => collectionRow(i, 512).path));
    for (const r of back) {
      const want = collectionRow(Number(r.path.slice(10, 16)), 512);
      expect({ ...r, embedding: bits(r.embedding) }).toEqual({ ...want, embedding: bits(want.embedding) });
    }
    expect(again.get(rows[0].path)!.sha256).toBe(rows[0].sha256);
    expect(again.get("nope")).toBeUndefined();
    expect([...again.rows({ embeddings: false })].every((r) => r.embedding.length === 0)).toBe(true);
    again.close();
    expect(existsSync(`${file}.pid`)).toBe(false);
    // the header: 16 KiB pages, and file format 2 (WAL), which the kill -9 safety rests on (bench/db/README.md)
    const header = readFileSync(file).subarray(0, 20);
    expect(header.subarray(0, 16).toString("latin1")).toBe("SQLite format 3\0");
    expect([header.readUInt16BE(16), header[18], header[19]]).toEqual([16384, 2, 2]);
  });

  test("upsert replaces by path; delete and deleteExcept remove rows and count them", () => {
    const db = CollectionDb.open(fresh(), { dim: 8 });
    db.upsert([0, 1, 2, 3].map((i) => collectionRow(i, 8)));
    const changed = { ...collectionRow(9, 8), path: collectionRow(1, 8).path };
    db.upsert([changed]);
    expect(db.count()).toBe(4);
    expect(bits(db.get(changed.path)!.embedding)).toBe(bits(changed.embedding));
    expect(db.get(changed.path)!.size).toBe(changed.size);
    expect(db.delete([collectionRow(0, 8).path, "not there"])).toBe(1);
    expect(db.deleteExcept(new Set([collectionRow(2, 8).path]))).toBe(2);
    expect(rowsOf(db).map((r) => r.path)).toEqual([collectionRow(2, 8).path]);
    db.close();
  });

  test("a batch with one bad row writes nothing", () => {
    const db = CollectionDb.open(fresh(), { dim: 8 });
    const bad = { ...collectionRow(3, 8), embedding: new Float32Array(8).fill(NaN) };
    expect(() => db.upsert([collectionRow(0, 8), collectionRow(1, 8), bad])).toThrow(/img000003\.jpg: embedding has NaN/);
    expect(db.count()).toBe(0);
    db.close();
  });
});

describe("exact search", () => {
  test("equals a brute-force reference, for k of 1, 10 and more than the rows", () => {
    const db = CollectionDb.open(fresh(), { dim: 64 });
    const rows = Array.from({ length: 300 }, (_, i) => collectionRow(i, 64));
    db.upsert(rows);
    for (let q = 0; q < 5; q++) {
      const query = collectionRow(1000 + q, 64).embedding;
      for (const k of [1, 10, 500]) expect(db.search(query, k)).toEqual(bruteForce(rows, query, k));
    }
    db.close();
  });

  test("ties are ordered by path as UTF-8 bytes (the order of rows()), whatever the insertion order", () => {
    const db = CollectionDb.open(fresh(), { dim: 16 });
    const same = collectionRow(7, 16).embedding;
    // "\u{1F600}" sorts before "\uFF5E" in UTF-16 code units but after it in UTF-8 bytes
    const paths = ["b.jpg", "a/z.jpg", "\u{1F600}.jpg", "\uFF5E.jpg", "a.jpg", "A.jpg", "a/b.jpg"];
    for (const p of paths) db.upsert([{ ...collectionRow(0, 16), path: p, embedding: same }]);
    db.upsert([collectionRow(1, 16), collectionRow(2, 16)]);
    const hits = db.search(same, paths.length);
    const byBytes = [...db.rows()].map((r) => r.path).filter((p) => paths.includes(p));
    expect(byBytes).toEqual(["A.jpg", "a.jpg", "a/b.jpg", "a/z.jpg", "b.jpg", "\uFF5E.jpg", "\u{1F600}.jpg"]);
    expect(hits.map((h) => h.path)).toEqual(byBytes);
    expect(new Set(hits.map((h) => h.score)).size).toBe(1);
    expect(db.search(same, 3).map((h) => h.path)).toEqual(byBytes.slice(0, 3));
    db.close();
  });

  test("modelSha256 restricts the search to one model's rows", () => {
    const db = CollectionDb.open(fresh(), { dim: 16 });
    const other = "a".repeat(64);
    db.upsert([collectionRow(0, 16), collectionRow(1, 16, other), collectionRow(2, 16, other)]);
    const q = collectionRow(1, 16).embedding;
    expect(db.search(q, 10).length).toBe(3);
    expect(db.search(q, 10, { modelSha256: other }).map((h) => h.path).sort()).toEqual([collectionRow(1, 16).path, collectionRow(2, 16).path]);
    expect(db.search(q, 10, { modelSha256: MODEL }).map((h) => h.path)).toEqual([collectionRow(0, 16).path]);
    db.close();
  });
});

describe("refusals: one line, naming what is wrong", () => {
  const db = CollectionDb.open(fresh(), { dim: 4 });
  afterAll(() => db.close());
  const ok = collectionRow(0, 4);
  test.each([
    [{ ...ok, path: "" }, /row path must be a non-empty string/],
    [{ ...ok, path: "a\0b" }, /without NUL/],
    [{ ...ok, size: -1 }, /size must be a non-negative integer, got -1/],
    [{ ...ok, size: 1.5 }, /size must be a non-negative integer/],
    [{ ...ok, mtimeMs: Infinity }, /mtimeMs must be a finite number/],
    [{ ...ok, sha256: "ABC" }, /sha256 must be 64 lowercase hex digits/],
    [{ ...ok, modelSha256: "0".repeat(63) }, /modelSha256 must be 64 lowercase hex/],
    [{ ...ok, embedding: new Float32Array(5) }, /embedding must be a Float32Array of 4 values, got 5/],
    [{ ...ok, embedding: [1, 2, 3, 4] as unknown as Float32Array }, /embedding must be a Float32Array of 4 values/],
    [{ ...ok, embedding: new Float32Array([1, Infinity, 0, 0]) }, /embedding has NaN or infinite/],
  ])("row %#", (row, msg) => {
    expect(() => db.upsert([row as PhotoRow])).toThrow(msg);
  });
  test("search arguments", () => {
    expect(() => db.search(new Float32Array(3), 10)).toThrow(/query must be a Float32Array of 4 values, got 3/);
    expect(() => db.search(new Float32Array([0, NaN, 0, 0]), 10)).toThrow(/NaN or infinite/);
    expect(() => db.search(new Float32Array(4), 0)).toThrow(/k must be an integer in 1\.\./);
    expect(() => db.search(new Float32Array(4), 2.5)).toThrow(/k must be an integer/);
    expect(() => db.search(new Float32Array(4), 1, { modelSha256: "x" })).toThrow(/modelSha256 must be 64/);
  });
  test("opening", () => {
    const file = fresh();
    expect(() => CollectionDb.open(file)).toThrow(/a new collection needs its embedding width/);
    expect(existsSync(`${file}.pid`)).toBe(false);
    expect(() => CollectionDb.open(fresh(), { dim: 0 })).toThrow(/dim must be an integer in 1\.\.65536, got 0/);
    expect(() => CollectionDb.open(fresh(), { create: false })).toThrow(/no collection there/);
    expect(() => CollectionDb.open("")).toThrow(/collection path must be a non-empty string/);
    const c = fresh();
    CollectionDb.open(c, { dim: 4 }).close();
    expect(() => CollectionDb.open(c, { dim: 8 })).toThrow(/holds 4-wide embeddings, asked for 8/);
    const junk = fresh();
    writeFileSync(junk, Buffer.alloc(4096, 7));
    expect(() => CollectionDb.open(junk)).toThrow(/not a clip-ts collection/);
    const other = fresh();
    const { Database } = createRequire(import.meta.url)("node-sqlite3-wasm");
    const raw = new Database(other);
    raw.exec("CREATE TABLE t (x)");
    raw.close();
    expect(() => CollectionDb.open(other)).toThrow(/an SQLite database, but not a clip-ts collection/);
    expect(() => CollectionDb.open(join(tmp, "no such dir", "c.db"), { dim: 4 })).toThrow(/c\.db: cannot create .*c\.db\.pid: ENOENT/);
    const dir = fresh();
    mkdirSync(dir);
    expect(() => CollectionDb.open(dir, { dim: 4 })).toThrow(/cannot open/);
  });
  test("a collection open here is refused a second time; a closed one refuses calls", () => {
    const file = fresh();
    const a = CollectionDb.open(file, { dim: 4 });
    expect(() => CollectionDb.open(file)).toThrow(new RegExp(`is open in process ${process.pid} \\(this one\\); close it first`));
    a.close();
    expect(() => a.count()).toThrow(/collection is closed/);
    a.close();
  });
});

describe("kill -9 while writing", () => {
  test("every reopen holds exactly the committed batches, rows intact, resumable; a live writer is refused", async () => {
    const root = process.cwd();
    const writer = resolve(root, ".cache", `collection-writer-${process.pid}.mjs`);
    // bundled so the child runs the TypeScript sources; under the repo so it finds node-sqlite3-wasm
    await build({ entryPoints: [resolve(root, "test/helpers/collection_writer.ts")], bundle: true, platform: "node", format: "esm", outfile: writer, external: ["node-sqlite3-wasm"], logLevel: "silent" });
    const file = fresh();
    const dim = 512, batch = 50;
    let seed = 12345;
    const rand = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32);
    let prev = 0;
    try {
      for (let kill = 0; kill < 10; kill++) {
        const child = spawn(process.execPath, [writer, file, String(dim), String(batch)], { stdio: ["ignore", "pipe", "pipe"] });
        let out = "", err = "";
        child.stdout.on("data", (d) => (out += d));
        child.stderr.on("data", (d) => (err += d));
        const exited = new Promise((r) => child.on("exit", r));
        const started = Date.now();
        while (!out.includes("committed") && Date.now() - started < 30_000 && child.exitCode === null) await new Promise((r) => setTimeout(r, 10));
        expect(err).toBe("");
        expect(out).toMatch(new RegExp(`^open ${prev}\\n`));
        expect(() => CollectionDb.open(file)).toThrow(new RegExp(`is open in process ${child.pid}`));
        await new Promise((r) => setTimeout(r, 10 + rand() * 300));
        child.kill("SIGKILL");
        await exited;
        const reported = Math.max(...[...out.matchAll(/committed (\d+)/g)].map((m) => Number(m[1])));
        const db = CollectionDb.open(file);
        const n = db.count();
        // the kill can land after a COMMIT returned and before its line was printed: one batch more
        expect([reported, reported + batch]).toContain(n);
        const rows = [...db.rows()];
        expect(rows.length).toBe(n);
        for (let i = 0; i < n; i += 1 + Math.floor(rand() * 7)) {
          const want = collectionRow(i, dim);
          expect(rows[i].path).toBe(want.path);
          expect(rows[i].sha256).toBe(want.sha256);
          expect(bits(rows[i].embedding)).toBe(bits(want.embedding));
        }
        expect(db.search(collectionRow(n - 1, dim).embedding, 1)[0].path).toBe(collectionRow(n - 1, dim).path);
        expect(db.integrity()).toBe("ok");
        db.close();
        expect(existsSync(`${file}.lock`)).toBe(false);
        expect(existsSync(`${file}.pid`)).toBe(false);
        prev = n;
      }
      expect(prev).toBeGreaterThan(0);
    } finally {
      rmSync(writer, { force: true });
    }
  }, 120_000);
});
