// The approximate index (src/collection/ivf.ts): deterministic centroids whatever the insertion order, recall@10
// against exact search on clustered data, kept correct through upserts and deletes, built / rebuilt / dropped at its
// thresholds, and exact search unchanged by it.
import { createHash } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, test } from "vitest";
import { CollectionDb, comparePaths, type PhotoRow } from "../src/collection/db.js";
import { assignList, halfNorms, kmeans, listCount, nearest, probeLists, train } from "../src/collection/ivf.js";
import { ClusteredData } from "./helpers/clustered_rows.js";

const tmp = mkdtempSync(join(tmpdir(), "clip-ts-ivf-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
let seq = 0;
const fresh = () => join(tmp, `c${seq++}.db`);
const DIM = 64;
const data = new ClusteredData(DIM, 60, 3);
const rows = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => data.row(from + i));

function bruteForce(all: PhotoRow[], q: Float32Array, k: number) {
  const scored = all.map((r) => {
    let s = 0;
    for (let i = 0; i < q.length; i++) s += r.embedding[i] * q[i];
    return { path: r.path, score: Math.fround(s) };
  });
  scored.sort((a, b) => b.score - a.score || comparePaths(a.path, b.path));
  return scored.slice(0, k);
}
/** The index's tables as they are in the file: centroids' bytes, and each path's list. */
function snapshot(db: CollectionDb) {
  const h = (db as unknown as { handle: { all(sql: string): Record<string, unknown>[] } }).handle;
  const centroids = createHash("sha256");
  for (const r of h.all("SELECT centroid FROM ivf_groups ORDER BY grp")) centroids.update(r.centroid as Uint8Array);
  for (const r of h.all("SELECT grp, centroid FROM ivf_centroids ORDER BY list")) centroids.update(String(r.grp)).update(r.centroid as Uint8Array);
  const lists = new Map(h.all("SELECT path, id FROM ivf_rows").map((r) => [String(r.path), Math.floor(Number(r.id) / 2 ** 32)]));
  return { centroids: centroids.digest("hex"), lists };
}

describe("k-means", () => {
  test("nearest: the least L2 distance, ties to the lower index; the blocked loop = one at a time", () => {
    const c = new Float32Array([0, 1, 1, 0, 0, 1, 0.6, 0.8, -1, 0, 0, 3]);
    const h = halfNorms(c, 6, 2);
    expect([...h]).toEqual([0.5, 0.5, 0.5, Math.fround(0.6) ** 2 / 2 + Math.fround(0.8) ** 2 / 2, 0.5, 4.5]);
    expect(nearest(new Float32Array([0.6, 0.8]), 0, c, h, 6, 2)).toBe(3);
    expect(nearest(new Float32Array([0, 1]), 0, c, h, 6, 2)).toBe(0); // lists 0 and 2 tie
    expect(nearest(new Float32Array([-1, 0]), 0, c, h, 6, 2)).toBe(4); // the tail after the blocks of four
    expect(nearest(new Float32Array([0, 2.1]), 0, c, h, 6, 2)).toBe(5); // by distance, not by dot product alone
    expect(nearest(new Float32Array([0, 1.9]), 0, c, h, 6, 2)).toBe(0);
    expect(nearest(new Float32Array([-1, 0]), 0, c, h, 2, 2, 4)).toBe(0); // centroids from an offset
    expect(probeLists(new Float32Array([0, 1]), c, h, 6, 2, 3)).toEqual([0, 2, 3]);
  });

  test("the same sample gives the same centroids, bit for bit: the mean of their rows; every list used", () => {
    const sample = new Float32Array(400 * DIM);
    for (let i = 0; i < 400; i++) data.sample(i, sample.subarray(i * DIM, i * DIM + DIM));
    const a = kmeans(sample, 400, DIM, 20), b = kmeans(sample.slice(), 400, DIM, 20);
    expect(Buffer.from(a.buffer).equals(Buffer.from(b.buffer))).toBe(true);
    const t = train(sample, DIM, 20, 400);
    expect(t.lists).toBe(20);
    expect(t.first[t.first.length - 1]).toBe(20);
    const used = new Set(Array.from({ length: 400 }, (_, r) => assignList(t, sample, r * DIM, DIM)));
    expect(used.size).toBeGreaterThan(15);
    // after the last round each centroid is within float32 rounding of the mean of the rows nearest to it then
    const one = kmeans(sample, 400, DIM, 5, 1);
    const seeds = kmeans(sample, 400, DIM, 5, 0), hs = halfNorms(seeds, 5, DIM);
    const members = Array.from({ length: 400 }, (_, r) => r).filter((r) => nearest(sample, r * DIM, seeds, hs, 5, DIM) === 2);
    const mean = (i: number) => members.reduce((s, r) => s + sample[r * DIM + i], 0) / members.length;
    for (let i = 0; i < DIM; i++) expect(one[2 * DIM + i]).toBe(Math.fround(mean(i)));
    expect(() => kmeans(sample, 10, DIM, 11)).toThrow("11 lists for 10 rows");
  });
});

describe("the index in a collection", () => {
  test("built when the collection reaches minRows, rebuilt at 2×, dropped under half; exact below it", () => {
    const db = CollectionDb.open(fresh(), { dim: DIM, ivf: { minRows: 400 } });
    db.upsert(rows(0, 399));
    expect(db.ivf.active).toBe(false);
    db.upsert(rows(399, 400));
    expect(db.ivf.info).toEqual({ lists: listCount(400), builtRows: 400 });
    db.upsert(rows(400, 799));
    expect(db.ivf.info!.builtRows).toBe(400);
    db.upsert(rows(799, 800));
    expect(db.ivf.info).toEqual({ lists: listCount(800), builtRows: 800 });
    db.delete(rows(0, 600).map((r) => r.path));
    expect(db.ivf.active).toBe(true); // 200 rows: not under half of 400 yet
    db.delete([rows(600, 601)[0].path]);
    expect(db.ivf.active).toBe(false);
    expect(db.integrity()).toBe("ok");
    db.close();
  });

  test("the same rows in another order, or built on reopen, give the same centroids and lists", () => {
    const all = rows(0, 1500);
    const a = CollectionDb.open(fresh(), { dim: DIM, ivf: { minRows: 1500 } });
    a.upsert(all);
    const b = CollectionDb.open(fresh(), { dim: DIM, ivf: { minRows: 1500 } });
    const shuffled = [...all].sort((x, y) => comparePaths(createHash("md5").update(x.path).digest("hex"), createHash("md5").update(y.path).digest("hex")));
    for (let i = 0; i < shuffled.length; i += 100) b.upsert(shuffled.slice(i, i + 100));
    expect(a.ivf.active && b.ivf.active).toBe(true);
    const sa = snapshot(a), sb = snapshot(b);
    expect(sb.centroids).toBe(sa.centroids);
    expect(sb.lists).toEqual(sa.lists);
    expect(sa.lists.size).toBe(1500);
    // pinned: a change to the training (sample, seeds, order of sums) shows here
    expect(sa.centroids).toBe("041ee6f86d9f76cd497f897ae38bf00167fa9f3893e0aee05e9bb1314a58f6a2");
    const file = a.file;
    a.close();
    const again = CollectionDb.open(file);
    expect(again.ivf.info).toEqual({ lists: listCount(1500), builtRows: 1500 });
    const q = data.query(7);
    expect(again.search(q, 10)).toEqual(b.search(q, 10));
    again.close();
    b.close();
  });

  test("recall@10 ≥ 0.95 against exact at the default nprobe; nprobe 1 reads fewer rows; exact: true is exact", () => {
    const all = rows(0, 4000);
    const db = CollectionDb.open(fresh(), { dim: DIM, ivf: { minRows: 1000 } });
    for (let i = 0; i < all.length; i += 500) db.upsert(all.slice(i, i + 500));
    expect(db.ivf.info!.lists).toBe(listCount(4000));
    let hit = 0, hitOne = 0;
    const Q = 40;
    for (let j = 0; j < Q; j++) {
      const q = data.query(j);
      const want = bruteForce(all, q, 10);
      expect(db.search(q, 10, { exact: true })).toEqual(want);
      const got = db.search(q, 10);
      // what it returns is ranked exactly: true scores, best first, ties by path
      for (const h of got) expect(h.score).toBe(bruteForce(all.filter((r) => r.path === h.path), q, 1)[0].score);
      expect(got).toEqual([...got].sort((x, y) => y.score - x.score || comparePaths(x.path, y.path)));
      const set = new Set(want.map((h) => h.path));
      hit += got.filter((h) => set.has(h.path)).length;
      hitOne += db.search(q, 10, { nprobe: 1 }).filter((h) => set.has(h.path)).length;
      expect(db.search(q, 10, { nprobe: 10_000 })).toEqual(want); // every list: exact again
    }
    expect(hit / (10 * Q)).toBeGreaterThanOrEqual(0.95);
    expect(hitOne / (10 * Q)).toBeLessThan(hit / (10 * Q)); // it is approximate: one list misses some
    expect(() => db.search(data.query(0), 10, { nprobe: 0 })).toThrow("nprobe must be a positive integer");
    // k more than the probed lists hold: the exact answer, not a short list
    expect(db.search(data.query(1), 3000, { nprobe: 1 })).toEqual(bruteForce(all, data.query(1), 3000));
    db.close();
  });

  test("upsert and delete keep it correct: new rows in their nearest list, replaced rows moved, deleted rows gone", () => {
    const db = CollectionDb.open(fresh(), { dim: DIM, ivf: { minRows: 1000 } });
    db.upsert(rows(0, 1000));
    const info = db.ivf.info!;
    // a new row equal to a query is found first with score ~1, through the index
    const q = data.query(3);
    const extra: PhotoRow = { ...data.row(5000), path: "/new/exactly-the-query.jpg", embedding: q };
    db.upsert([extra]);
    expect(db.ivf.info).toEqual(info); // assigned, not rebuilt
    expect(db.search(q, 1, { nprobe: 1 })[0].path).toBe(extra.path);
    // a replaced embedding moves: row 0 now holds the query too
    const moved = { ...data.row(0), embedding: q };
    db.upsert([moved]);
    const top2 = db.search(q, 2, { nprobe: 1 }).map((h) => h.path).sort(comparePaths);
    expect(top2).toEqual([extra.path, moved.path].sort(comparePaths));
    db.delete([extra.path]);
    expect(db.search(q, 1, { nprobe: 1 })[0].path).toBe(moved.path);
    db.delete(rows(1, 300).map((r) => r.path));
    const left = [moved, ...rows(300, 1000)];
    // the tables hold exactly the rows left, each in the list assignList gives it
    const snap = snapshot(db);
    expect([...snap.lists.keys()].sort(comparePaths)).toEqual(left.map((r) => r.path).sort(comparePaths));
    const state = (db.ivf as unknown as { state: Parameters<typeof assignList>[0] }).state;
    for (const r of left) expect(snap.lists.get(r.path)).toBe(assignList(state, r.embedding, 0, DIM));
    for (let j = 0; j < 10; j++) {
      const got = db.search(data.query(j), 10, { nprobe: 10_000 });
      expect(got).toEqual(bruteForce(left, data.query(j), 10));
    }
    // another model's rows are left out through the index too
    const other = "f".repeat(64);
    db.upsert([{ ...data.row(6000), path: "/other.jpg", modelSha256: other, embedding: q }]);
    expect(db.search(q, 1, { nprobe: 1, modelSha256: other })).toEqual([{ path: "/other.jpg", score: expect.any(Number) }]);
    expect(db.search(q, 3, { nprobe: 1, modelSha256: data.row(0).modelSha256 }).map((h) => h.path)).not.toContain("/other.jpg");
    expect(db.integrity()).toBe("ok");
    db.close();
  });

  test("rows written behind its back (not through upsert) leave it inactive until the next write rebuilds it", () => {
    const file = fresh();
    const db = CollectionDb.open(file, { dim: DIM, ivf: { minRows: 300 } });
    db.upsert(rows(0, 300));
    const extra = { ...data.row(9000), embedding: data.query(4) };
    const e = extra.embedding;
    (db as unknown as { handle: { run(sql: string, v: unknown[]): void } }).handle.run("INSERT INTO photos VALUES (?, ?, ?, ?, ?, ?)",
      [extra.path, extra.size, extra.mtimeMs, extra.sha256, extra.modelSha256, new Uint8Array(e.buffer, e.byteOffset, e.byteLength)]);
    db.close();
    const again = CollectionDb.open(file, { ivf: { minRows: 300 } });
    expect(again.ivf.active).toBe(false);
    expect(again.search(extra.embedding, 1)[0].path).toBe(extra.path);
    again.upsert(rows(300, 301));
    expect(again.ivf.info).toEqual({ lists: listCount(302), builtRows: 302 });
    expect(again.search(extra.embedding, 1, { nprobe: 1 })[0].path).toBe(extra.path);
    again.close();
  });

  test("a damaged index is refused in one line", () => {
    const file = fresh();
    const db = CollectionDb.open(file, { dim: DIM, ivf: { minRows: 200 } });
    db.upsert(rows(0, 200));
    (db as unknown as { handle: { exec(sql: string): void } }).handle.exec("DELETE FROM ivf_centroids WHERE list = 3");
    db.close();
    expect(() => CollectionDb.open(file)).toThrow(/approximate index is damaged \(13 centroids for 14 lists\).*drop tables ivf_rows/);
    expect(() => CollectionDb.open(fresh(), { dim: DIM, ivf: { minRows: 0 } })).toThrow("ivf minRows must be a positive integer");
  });
});
