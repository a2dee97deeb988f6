// `merge`: the union of part collections, every row bit for bit; refusals (widths, models, conflicting rows, an
// existing OUT) leave OUT untouched; OUT is replaced atomically, even under kill -9.
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { build } from "esbuild";
import { afterAll, describe, expect, test } from "vitest";
import { memoryIo, runCli } from "../src/cli/cli.js";
import { CollectionDb, type PhotoRow } from "../src/collection/db.js";
import { MergeError, mergeCollections } from "../src/collection/merge.js";
import { collectionRow, MODEL } from "./helpers/collection_rows.js";

const tmp = mkdtempSync(join(tmpdir(), "clip-ts-merge-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
let seq = 0;
const fresh = (name = "c") => join(tmp, `${name}${seq++}.db`);
const bits = (e: Float32Array) => Buffer.from(e.buffer, e.byteOffset, e.byteLength).toString("hex");
const flat = (r: PhotoRow) => ({ ...r, embedding: bits(r.embedding) });

function part(rows: PhotoRow[], dim = rows[0]?.embedding.length ?? 8): string {
  const file = fresh("part");
  const db = CollectionDb.open(file, { dim });
  if (rows.length) db.upsert(rows);
  db.close();
  return file;
}
function read(file: string): ReturnType<typeof flat>[] {
  const db = CollectionDb.open(file, { create: false });
  try {
    expect(db.integrity()).toBe("ok");
    return [...db.rows()].map(flat);
  } finally {
    db.close();
  }
}
/** Nothing but the given files in the directory: no temporary, WAL, pid or lock left behind. */
const leftovers = () => readdirSync(tmp).filter((n) => !/^(part|c|out)\d+\.db$/.test(n) && n !== "sub" && n !== "link.db");

describe("mergeCollections", () => {
  test("disjoint parts: the union, in path order, every field bit for bit", () => {
    const all = Array.from({ length: 40 }, (_, i) => collectionRow(i, 16));
    const parts = [0, 1, 2].map((k) => part(all.filter((_, i) => i % 3 === k)));
    const out = fresh("out");
    expect(mergeCollections(parts, out)).toEqual({ rows: 40, duplicates: 0 });
    expect(read(out)).toEqual(all.map(flat));
    expect(leftovers()).toEqual([]);
    // the parts are untouched
    expect(read(parts[1]!)).toEqual(all.filter((_, i) => i % 3 === 1).map(flat));
  });

  test("a row in two parts, identical, is written once; empty parts are fine", () => {
    const rows = [0, 1, 2, 3].map((i) => collectionRow(i, 8));
    const out = fresh("out");
    const r = mergeCollections([part(rows.slice(0, 3)), part(rows.slice(1)), part([], 8)], out);
    expect(r).toEqual({ rows: 4, duplicates: 2 });
    expect(read(out)).toEqual(rows.map(flat));
    const empty = fresh("out");
    expect(mergeCollections([part([], 8)], empty)).toEqual({ rows: 0, duplicates: 0 });
    const db = CollectionDb.open(empty, { create: false });
    expect([db.dim, db.count()]).toEqual([8, 0]);
    db.close();
  });

  const conflicts: [string, (r: PhotoRow) => PhotoRow, string][] = [
    ["embedding", (r) => ({ ...r, embedding: r.embedding.map((x, i) => (i === 3 ? Math.fround(x + 2 ** -20) : x)) }), "embedding"],
    ["file SHA-256", (r) => ({ ...r, sha256: "0".repeat(64) }), "file SHA-256"],
    ["size", (r) => ({ ...r, size: r.size + 1 }), "size"],
    ["mtime", (r) => ({ ...r, mtimeMs: r.mtimeMs + 0.5 }), "mtime"],
  ];
  test.each(conflicts)("a path in two parts with a different %s: refused, nothing written", (_, change, field) => {
    const rows = [0, 1, 2].map((i) => collectionRow(i, 8));
    const a = part(rows), b = part([collectionRow(5, 8), change(rows[1]!)]);
    const out = fresh("out");
    expect(() => mergeCollections([a, b], out)).toThrow(new MergeError(`"${rows[1]!.path}" is in ${a} and ${b} with a different ${field}: not merged`));
    expect(existsSync(out)).toBe(false);
    expect(leftovers()).toEqual([]);
  });

  test("parts of different widths or models: refused before anything is written", () => {
    const out = fresh("out");
    const a = part([collectionRow(0, 8)]), wide = part([collectionRow(1, 16)]);
    expect(() => mergeCollections([a, wide], out)).toThrow(`${wide} holds 16-wide embeddings, ${a} 8-wide: parts of different models cannot be merged`);
    const other = "f".repeat(64);
    const b = part([collectionRow(1, 8), collectionRow(2, 8, other)]);
    expect(() => mergeCollections([a, b], out)).toThrow(
      `${b} has rows of model ${other.slice(0, 12)}… ("photos/img000002.jpg"), ${a} of model ${MODEL.slice(0, 12)}…: parts of different models cannot be merged`,
    );
    expect(existsSync(out)).toBe(false);
    expect(leftovers()).toEqual([]);
  });

  test("an existing OUT: refused, unless force, which replaces only a collection no one has open", () => {
    const a = part([collectionRow(0, 8)]), b = part([collectionRow(1, 8), collectionRow(2, 8)]);
    const out = fresh("out");
    mergeCollections([a], out);
    expect(() => mergeCollections([b], out)).toThrow(new MergeError(`${out} exists; pass --force to replace it`));
    expect(read(out)).toEqual([flat(collectionRow(0, 8))]);
    const open = CollectionDb.open(out);
    expect(() => mergeCollections([b], out, { force: true })).toThrow(new RegExp(`^${out}: not replaced: .*is open in process ${process.pid} \\(this one\\); close it first$`));
    open.close();
    expect(mergeCollections([b], out, { force: true })).toEqual({ rows: 2, duplicates: 0 });
    expect(read(out).map((r) => r.path)).toEqual(["photos/img000001.jpg", "photos/img000002.jpg"]);
    // a file that is not a collection is never replaced
    const notes = fresh("c");
    writeFileSync(notes, "my notes");
    expect(() => mergeCollections([b], notes, { force: true })).toThrow(new RegExp(`^${notes}: not replaced: .*not a clip-ts collection`));
    expect(() => mergeCollections([b], tmp, { force: true })).toThrow(`${tmp} is a directory`);
    rmSync(notes);
    // a WAL with no database would be replayed into the new one
    const orphan = fresh("out");
    writeFileSync(`${orphan}-wal`, "x");
    expect(() => mergeCollections([b], orphan)).toThrow(`${orphan}-wal exists without a collection to belong to; remove it first`);
    rmSync(`${orphan}-wal`);
    expect(leftovers()).toEqual([]);
  });

  test("bad part lists: none, missing, not a collection, given twice (even via a symlink), OUT among them", () => {
    const a = part([collectionRow(0, 8)]);
    const out = fresh("out");
    expect(() => mergeCollections([], out)).toThrow("merge needs at least one part collection");
    expect(() => mergeCollections([join(tmp, "nope.db")], out)).toThrow(`${join(tmp, "nope.db")}: no such part collection`);
    const junk = fresh("c");
    writeFileSync(junk, "not sqlite at all, just text that is long enough to be a header".repeat(100));
    expect(() => mergeCollections([a, junk], out)).toThrow(MergeError);
    expect(() => mergeCollections([a, junk], out)).toThrow(new RegExp(`^${junk}: `));
    rmSync(junk);
    const link = join(tmp, "link.db");
    symlinkSync(a, link);
    expect(() => mergeCollections([a, link], out)).toThrow(`${link}: given twice (as ${a} too)`);
    rmSync(link);
    expect(() => mergeCollections([a], a, { force: true })).toThrow(`${a}: the output is also one of the parts; write to a new file`);
    const nowhere = join(tmp, "no-such-dir", "out.db");
    expect(() => mergeCollections([a], nowhere)).toThrow(`${nowhere}: no folder ${join(tmp, "no-such-dir")} to write it in`);
    expect(existsSync(out)).toBe(false);
    expect(leftovers()).toEqual([]);
  });

  test("kill -9 during a merge: OUT is the old collection or the whole new one, never part of one; temporaries are cleaned", async () => {
    const root = process.cwd();
    const child = resolve(root, ".cache", `merge-child-${process.pid}.mjs`);
    await build({ entryPoints: [resolve(root, "test/helpers/merge_child.ts")], bundle: true, platform: "node", format: "esm", outfile: child, external: ["node-sqlite3-wasm"], logLevel: "silent" });
    const dim = 512;
    const all = Array.from({ length: 3000 }, (_, i) => collectionRow(i, dim));
    const parts = [0, 1].map((k) => part(all.filter((_, i) => i % 2 === k), dim));
    const out = fresh("out");
    const old = part([collectionRow(7000, dim)], dim);
    mergeCollections([old], out);
    const want = all.map(flat);
    let seed = 99;
    const rand = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32);
    const outcomes = { old: 0, whole: 0, temporaries: 0 };
    const temporaries = () => readdirSync(tmp).filter((n) => n.includes(".merge-"));
    try {
      for (let kill = 0; kill < 6; kill++) {
        const p = spawn(process.execPath, [child, out, ...parts], { stdio: ["ignore", "pipe", "pipe"] });
        let stdout = "", stderr = "";
        p.stdout.on("data", (d) => (stdout += d));
        p.stderr.on("data", (d) => (stderr += d));
        const exited = new Promise((r) => p.on("exit", r));
        const t0 = Date.now();
        // killed before it writes, while it writes, or (the last time) after it is done
        const phase = kill === 5 ? "done" : kill % 2 ? "wrote" : "start";
        while (!stdout.includes(phase) && Date.now() - t0 < 60_000 && p.exitCode === null) await new Promise((r) => setTimeout(r, 2));
        await new Promise((r) => setTimeout(r, rand() * (phase === "wrote" ? 300 : 100)));
        p.kill("SIGKILL");
        await exited;
        expect(stderr).toBe("");
        if (temporaries().length) outcomes.temporaries++; // killed while writing its temporary file
        const got = read(out);
        if (got.length === 1) {
          expect(got).toEqual([flat(collectionRow(7000, dim))]);
          outcomes.old++;
        } else {
          expect(got.length).toBe(3000);
          expect(got).toEqual(want);
          outcomes.whole++;
          rmSync(out);
          mergeCollections([old], out);
        }
      }
      // the temporaries of the killed merges are removed by the next merge into the same OUT
      mergeCollections(parts, out, { force: true });
      expect(read(out)).toEqual(want);
      expect(temporaries()).toEqual([]);
      console.log(`merge kill -9: ${outcomes.old} left the old OUT, ${outcomes.whole} the whole new one; ${outcomes.temporaries} killed mid-write`);
      expect(outcomes.temporaries).toBeGreaterThan(0);
      expect(outcomes.whole).toBeGreaterThan(0);
    } finally {
      rmSync(child, { force: true });
    }
  }, 120_000);
});

describe("clip-ts merge", () => {
  async function run(...args: string[]) {
    const io = memoryIo(tmp);
    const code = await runCli(args, io);
    return { code, stdout: io.out(), stderr: io.err() };
  }

  test("merges, says how many rows; relative paths resolve against the working directory", async () => {
    const a = part([collectionRow(0, 8), collectionRow(1, 8)]), b = part([collectionRow(1, 8), collectionRow(2, 8)]);
    const rel = (f: string) => f.slice(tmp.length + 1);
    const out = fresh("out");
    expect(await run("merge", "--db", rel(out), rel(a), rel(b))).toEqual({
      code: 0, stdout: `merged 2 parts into ${out}: 3 rows (1 found in two parts, identical, kept once)\n`, stderr: "",
    });
    expect(read(out).map((r) => r.path)).toEqual([0, 1, 2].map((i) => collectionRow(i, 8).path));
    expect(await run("merge", "--db", rel(out), rel(a))).toEqual({ code: 1, stdout: "", stderr: `clip-ts merge: ${out} exists; pass --force to replace it\n` });
    expect((await run("merge", "--db", rel(out), "--force", rel(a))).stdout).toBe(`merged 1 part into ${out}: 2 rows\n`);
  });

  test("a bar on a terminal while it writes, erased at the end; none off a terminal", async () => {
    const rows = Array.from({ length: 1100 }, (_, i) => collectionRow(i, 8));
    const parts = [part(rows.slice(0, 600)), part(rows.slice(500))];
    const io = memoryIo(tmp, true);
    expect(await runCli(["merge", "--db", fresh("out"), ...parts], io)).toBe(0);
    expect(io.err()).toMatch(/^\rmerging \[#*\.*\] +\d+% 512\/1200\x1b\[K/);
    expect(io.err()).toMatch(/\/1200\x1b\[K\r\x1b\[K$/); // later draws are at most 10 a second
    expect(io.out()).toMatch(/: 1100 rows \(100 found in two parts, identical, kept once\)\n$/);
  });

  test("usage errors: status 2, one line", async () => {
    const a = part([collectionRow(0, 8)]);
    expect(await run("merge", a)).toEqual({ code: 2, stdout: "", stderr: "clip-ts merge: missing --db OUT (see clip-ts merge --help)\n" });
    expect(await run("merge", "--db", join(tmp, "x.db"))).toEqual({ code: 2, stdout: "", stderr: "clip-ts merge: missing the part collections to merge (PART.db...) (see clip-ts merge --help)\n" });
    expect((await run("merge", "--db", a, a)).stderr).toBe(`clip-ts merge: --db ${a} is also a part; write the merge to a new file (see clip-ts merge --help)\n`);
    const help = await run("help", "merge");
    expect(help.stdout).toMatch(/^Usage:\n  clip-ts merge --db OUT \[--force\] PART\.db\.\.\.\n/);
    expect(help.stdout).toContain("docs/collections-shards.md");
  });
});
