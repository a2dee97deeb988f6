// The browser collection's logic without a browser (its IndexedDB side: test/browser/photos.e2e.ts): its ranking is
// CollectionDb.search's (same scores, ties by UTF-8 path), and a pick of a folder is planned incrementally.
import { fc, test as fcTest } from "@fast-check/vitest";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, test } from "vitest";
import { comparePaths, planIndex, topK, type FailedEntry } from "../src/collection/browser_store.js";
import { CollectionDb } from "../src/collection/db.js";

const A = "a".repeat(64), B = "b".repeat(64);

describe("comparePaths", () => {
  fcTest.prop([fc.string({ unit: "binary" }), fc.string({ unit: "binary" })])("orders as UTF-8 bytes (SQLite's BINARY)", (a, b) => {
    expect(Math.sign(comparePaths(a, b))).toBe(Math.sign(Buffer.compare(Buffer.from(a, "utf8"), Buffer.from(b, "utf8"))));
  });
  test("an astral character sorts after U+FFFD, where UTF-16 order would put it before", () => {
    expect(comparePaths("x/\u{1F600}.png", "x/\uFFFD.png")).toBeGreaterThan(0);
    expect("x/\u{1F600}.png" < "x/\uFFFD.png").toBe(true);
  });
});

describe("topK", () => {
  test("gives CollectionDb.search's hits and scores, ties included, for every k", () => {
    const dir = mkdtempSync(join(tmpdir(), "clip-ts-bstore-"));
    const db = CollectionDb.open(join(dir, "c.db"), { dim: 8 });
    try {
      let seed = 7;
      const rand = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31) * 2 - 1;
      const names = ["b.png", "a.png", "\u{1F600}.jpg", "\uFFFD.jpg", "é.png", "z/1.png", "Z.png", "a.png.png"];
      const rows = names.map((name, i) => {
        const embedding = Float32Array.from({ length: 8 }, rand);
        return { path: `p/${name}`, size: i, mtimeMs: i, sha256: A, modelSha256: B, embedding };
      });
      rows.push({ ...rows[0], path: "p/tie-of-b.png" }, { ...rows[2], path: "p/\u{1F601}.jpg" }); // equal scores
      db.upsert(rows);
      const queries = [Float32Array.from({ length: 8 }, rand), rows[0].embedding, new Float32Array(8)];
      for (const q of queries) {
        for (const k of [1, 2, 3, 5, rows.length, rows.length + 3]) expect(topK(rows, q, k)).toEqual(db.search(q, k));
      }
      expect(topK(rows, queries[2], 3).map((h) => h.path)).toEqual(["p/Z.png", "p/a.png", "p/a.png.png"]); // all 0: path order
    } finally {
      db.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("bad queries are one-line errors", () => {
    const rows = [{ path: "a", embedding: new Float32Array(4) }];
    expect(() => topK(rows, new Float32Array(4), 0)).toThrow(/^search k must be an integer in 1\.\.100000, got 0$/);
    expect(() => topK(rows, new Float32Array(4), 1.5)).toThrow(/k must be an integer/);
    expect(() => topK(rows, Float32Array.of(0, NaN, 0, 0), 1)).toThrow(/^search query has NaN or infinite values$/);
    expect(() => topK(rows, new Float32Array(3), 1)).toThrow(/^a: embedding of 4 values, the query has 3$/);
    expect(() => topK(rows, new Float32Array(0), 1)).toThrow(/non-empty Float32Array/);
  });
});

describe("planIndex", () => {
  const row = (path: string, size = 1, lastModified = 10, modelSha256 = A) => [path, { path, size, lastModified, modelSha256 }] as const;
  const stored = new Map([row("p/same.png"), row("p/bigger.png"), row("p/touched.png"), row("p/other-model.png", 1, 10, B), row("p/gone.png"), row("q/elsewhere.png")]);
  const failure = (path: string, size = 1): FailedEntry => ({ path, size, lastModified: 10, modelSha256: A, error: "bad" });
  const failed = new Map([["p/bad.png", failure("p/bad.png")], ["p/fixed.png", failure("p/fixed.png")], ["p/bad-gone.png", failure("p/bad-gone.png")]]);
  const picked = [
    { path: "p/same.png", size: 1, lastModified: 10 },
    { path: "p/bigger.png", size: 2, lastModified: 10 },
    { path: "p/touched.png", size: 1, lastModified: 11 },
    { path: "p/other-model.png", size: 1, lastModified: 10 },
    { path: "p/new.png", size: 1, lastModified: 10 },
    { path: "p/bad.png", size: 1, lastModified: 10 },
    { path: "p/fixed.png", size: 5, lastModified: 10 },
    { path: "p/same.png", size: 1, lastModified: 10 }, // listed twice: once
  ];

  test("new, changed and other-model files are embedded; unchanged ones and unchanged failures are not", () => {
    const plan = planIndex(picked, stored, failed, A);
    expect(plan.embed.map((f) => f.path)).toEqual(["p/bigger.png", "p/touched.png", "p/other-model.png", "p/new.png", "p/fixed.png"]);
    expect(plan.unchanged).toBe(1);
    expect(plan.failed.map((f) => f.path)).toEqual(["p/bad.png"]);
  });

  test("only files under a picked folder that are no longer there are removed", () => {
    expect(planIndex(picked, stored, failed, A).removed).toEqual(["p/bad-gone.png", "p/gone.png"]);
    expect(planIndex([], stored, failed, A).removed).toEqual([]);
  });

  test("with another model everything is embedded again, failures retried", () => {
    const plan = planIndex(picked, stored, failed, B);
    expect(plan.embed.map((f) => f.path)).toEqual(["p/same.png", "p/bigger.png", "p/touched.png", "p/new.png", "p/bad.png", "p/fixed.png"]);
    expect(plan.unchanged).toBe(1); // other-model.png is B's
  });
});
