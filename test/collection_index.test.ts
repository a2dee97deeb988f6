// Photo collections (src/collection/indexer.ts, index.ts, inputs.ts; the index and search commands in-process):
// rows are the bits of embed-image --normalize whatever the batch, re-runs are incremental, bad files are listed
// and skipped, search ranks by cosine with ties by path, and wrong models or databases get one-line errors.
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { embeddedModelPaths, loadModel } from "../src/clip.js";
import { runCli, memoryIo } from "../src/cli/cli.js";
import { CollectionDb, comparePaths } from "../src/collection/db.js";
import { openIndex } from "../src/collection/index.js";
import { createDecoder, imageKind, indexFiles, modelSha256, type IndexModel, type IndexOptions } from "../src/collection/indexer.js";
import { enumerateInputs } from "../src/collection/inputs.js";
import { inShard, parseShard } from "../src/collection/shard.js";
import { listTar } from "../src/collection/tar.js";
import { readNpyFloat32 } from "../src/npy.js";
import * as api from "../src/index.js";

const root = process.cwd();
const tmp = mkdtempSync(join(tmpdir(), "clip-ts-index-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
let seq = 0;
const freshDb = () => join(tmp, `c${seq++}.db`);

const PNGS = readdirSync("examples").filter((f) => f.endsWith(".png")).sort();
const JPEGS = ["jpeg_420_160x120_n64.jpg", "jpeg_444_prog_150x200_n64.jpg", "cjpeg_420_restart_rows_90x70_n64.jpg"];
const jpegPath = (f: string) => join(root, "test/golden/preprocess", f);
const hex = (e: Float32Array) => Buffer.from(e.buffer, e.byteOffset, e.byteLength).toString("hex");
const rowsOf = (file: string) => {
  const db = CollectionDb.open(file, { create: false });
  try {
    return [...db.rows()].map((r) => ({ ...r, embedding: hex(r.embedding) }));
  } finally {
    db.close();
  }
};

/** A folder of 7 PNGs and 3 JPEGs in two levels, a text file, a truncated PNG and a cut-off JPEG. */
function photoFolder(name: string): string {
  const dir = join(tmp, name);
  mkdirSync(join(dir, "sub"), { recursive: true });
  for (const f of PNGS) copyFileSync(join("examples", f), join(dir, f));
  for (const f of JPEGS) copyFileSync(jpegPath(f), join(dir, "sub", f));
  writeFileSync(join(dir, "notes.txt"), "not an image\n");
  writeFileSync(join(dir, "sub", "truncated.png"), readFileSync(join("examples", PNGS[0]!)).subarray(0, 100));
  writeFileSync(join(dir, "sub", "cut.jpg"), readFileSync(jpegPath(JPEGS[0]!)).subarray(0, 300));
  return dir;
}
const GOOD = PNGS.length + JPEGS.length;
/** stderr less the tiny ViT's note that its activation was assumed. */
const withoutNotes = (s: string) => s.split("\n").filter((l) => !l.startsWith("note: ")).join("\n");

let model: IndexModel;
beforeAll(async () => {
  const { weights } = await embeddedModelPaths();
  model = { model: await loadModel(weights, { towers: "image" }), sha256: await modelSha256() };
});
afterAll(() => model?.model.dispose());
const index = (inputs: string[], db: string, more: Partial<IndexOptions> = {}) => indexFiles(inputs, { db, model, batch: 4, ...more });

describe("rows", () => {
  test("every image once, with its size, mtime, SHA-256s and the bits of embed-image --normalize, whatever the batch", async () => {
    const dir = photoFolder("bits");
    const db = freshDb();
    const r = await index([dir], db, { batch: 3 });
    expect(r).toMatchObject({ files: GOOD + 3, added: GOOD, updated: 0, removed: 0, unchanged: 0, failed: 2, skipped: 1 });
    const rows = rowsOf(db);
    const files = [...PNGS.map((f) => join(dir, f)), ...JPEGS.map((f) => join(dir, "sub", f))].sort(comparePaths);
    expect(rows.map((x) => x.path)).toEqual(files);
    const io = memoryIo(tmp);
    expect(await runCli(["embed-image", "--normalize", "--out", join(tmp, "bits.npy"), ...files], io)).toBe(0);
    const y = readNpyFloat32(readFileSync(join(tmp, "bits.npy")));
    expect(y.shape).toEqual([files.length, 64]);
    rows.forEach((row, i) => {
      expect(row.embedding).toBe(hex(y.data.subarray(i * 64, (i + 1) * 64)));
      expect(row.sha256).toBe(createHash("sha256").update(readFileSync(row.path)).digest("hex"));
      expect(row.modelSha256).toBe(createHash("sha256").update(readFileSync(join(root, "weights/clip-tiny-rn.safetensors"))).digest("hex"));
    });
    const one = freshDb();
    await index([dir], one, { batch: 1 });
    expect(rowsOf(one)).toEqual(rows); // batches of 1 and of 3: the same bits
  });

  test("incremental: unchanged files are not read; changed, new and deleted files are updated, added, removed", async () => {
    const dir = photoFolder("incr");
    const db = freshDb();
    await index([dir], db);
    const read: string[] = [];
    const decode = createDecoder({ resolution: 64 });
    const spy: IndexOptions["decoder"] = (items) => decode((async function* () {
      for await (const it of items) {
        read.push(it.rel);
        yield it;
      }
    })());
    const again = await index([dir], db, { decoder: spy });
    expect(again).toMatchObject({ added: 0, updated: 0, removed: 0, unchanged: GOOD, failed: 2, skipped: 1 });
    expect(read.sort()).toEqual(["sub/cut.jpg", "sub/truncated.png"]); // only the files that failed are tried again

    copyFileSync(join("examples", PNGS[1]!), join(dir, PNGS[0]!)); // changed content
    utimesSync(join(dir, PNGS[0]!), new Date(1.6e12), new Date(1.6e12));
    rmSync(join(dir, PNGS[2]!));
    copyFileSync(jpegPath("jpeg_422_5x3_n32.jpg"), join(dir, "sub", "new.jpg"));
    read.length = 0;
    const third = await index([dir], db, { decoder: spy });
    expect(third).toMatchObject({ added: 1, updated: 1, removed: 1, unchanged: GOOD - 2, failed: 2, skipped: 1 });
    expect(read.sort()).toEqual([PNGS[0], "sub/cut.jpg", "sub/new.jpg", "sub/truncated.png"]);
    const fresh = freshDb();
    await index([dir], fresh);
    expect(rowsOf(db)).toEqual(rowsOf(fresh)); // as if indexed from scratch
  });

  test("a file that turns bad loses its row; inputs that shrink remove rows; the db's own files are not inputs", async () => {
    const dir = photoFolder("turns-bad");
    const db = join(dir, "photos.db"); // inside the indexed folder
    await index([dir], db);
    writeFileSync(join(dir, PNGS[0]!), "garbage");
    const r = await index([dir], db);
    expect(r).toMatchObject({ removed: 1, failed: 3, skipped: 1 });
    expect(r.problems.some((p) => p.path.endsWith("photos.db"))).toBe(false);
    const sub = await index([join(dir, "sub")], db);
    expect(sub).toMatchObject({ files: 5, unchanged: 3, removed: GOOD - 4 });
    expect(rowsOf(db).map((x) => x.path)).toEqual(JPEGS.map((f) => join(dir, "sub", f)).sort(comparePaths));
  });
});

describe("bad files", () => {
  test("listed with a one-line reason, sorted; other files skipped; too big fails unread", async () => {
    const dir = photoFolder("bad");
    const r = await index([dir], freshDb(), { maxFileBytes: 80_000 });
    const big = PNGS.filter((f) => readFileSync(join(dir, f)).length > 80_000).map((f) => join(dir, f));
    expect(big.length).toBeGreaterThan(0);
    expect(r.problems.map((p) => p.path)).toEqual([join(dir, "notes.txt"), ...big, join(dir, "sub/cut.jpg"), join(dir, "sub/truncated.png")].sort(comparePaths));
    for (const p of r.problems) expect(p.message).toMatch(/^[^\n]{5,300}$/);
    expect(r.problems.find((p) => p.path.endsWith("notes.txt"))).toEqual({ path: join(dir, "notes.txt"), message: "not a PNG or JPEG", skipped: true });
    for (const b of big) expect(r.problems.find((p) => p.path === b)!.message).toMatch(/^too big: \d+ bytes/);
    expect(r.problems.find((p) => p.path.endsWith("truncated.png"))!.message).toMatch(/^PNG: /);
    expect(r.failed).toBe(2 + big.length);
  });

  test("an unreadable file fails, the rest is indexed", async () => {
    const dir = photoFolder("unreadable");
    const db = freshDb();
    const r = await indexFiles([dir], {
      db, model, decoder: (items) => (async function* () {
        for await (const d of createDecoder({ resolution: 64 })(items)) yield d.key.endsWith(PNGS[3]!) ? { key: d.key, sha256: "", error: "cannot read: EACCES" } : d;
      })(),
    });
    expect(r).toMatchObject({ added: GOOD - 1, failed: 3 });
    expect(r.problems.find((p) => p.path.endsWith(PNGS[3]!))!.message).toBe("cannot read: EACCES");
  });

  test("PNG and JPEG are told by their bytes", () => {
    expect(imageKind(readFileSync(join("examples", PNGS[0]!)))).toBe("png");
    expect(imageKind(readFileSync(jpegPath(JPEGS[0]!)))).toBe("jpeg");
    expect(imageKind(new TextEncoder().encode("GIF89a.."))).toBeUndefined();
    expect(imageKind(new Uint8Array(0))).toBeUndefined();
  });
});

describe("inputs", () => {
  test("folders recursive and sorted, files, globs, duplicates once, symlink loops end", () => {
    const dir = photoFolder("inputs");
    symlinkSync(dir, join(dir, "sub", "loop"));
    const all = enumerateInputs([dir, join(dir, PNGS[0]!)]).items;
    expect(all.map((i) => i.key)).toEqual([...all.map((i) => i.key)].sort(comparePaths));
    expect(new Set(all.map((i) => i.key)).size).toBe(all.length);
    expect(all).toHaveLength(GOOD + 3);
    expect(all.find((i) => i.key === join(dir, "sub", JPEGS[0]!))!.rel).toBe(`sub/${JPEGS[0]}`);
    expect(enumerateInputs([join(dir, PNGS[0]!)]).items[0]!.rel).toBe(PNGS[0]);
    const globbed = enumerateInputs(["*.png", "sub/*.jp*g"], { cwd: dir }).items;
    expect(globbed.map((i) => i.key)).toEqual([...PNGS, ...["cut.jpg", ...JPEGS].map((f) => `sub/${f}`)].map((f) => join(dir, f)).sort(comparePaths));
    expect(globbed.find((i) => i.key.endsWith("cut.jpg"))!.rel).toBe("cut.jpg"); // relative to the folder before the wildcard
    expect(enumerateInputs(["**/cut.jpg"], { cwd: dir }).items.map((i) => i.key)).toEqual([join(dir, "sub/cut.jpg")]);
    expect(() => enumerateInputs([join(dir, "nope")])).toThrow(/^no such file or directory ".*nope"$/);
    expect(() => enumerateInputs(["*.gif"], { cwd: dir })).toThrow('"*.gif" matches no file');
  });

  test("a .tar shard: members indexed as <tar>#<name>, the same bits as the files", async () => {
    const dir = photoFolder("tarred");
    const tar = join(tmp, "shard.tar");
    const r = spawnSync("tar", ["-cf", tar, "-C", dir, PNGS[0]!, PNGS[1]!, "notes.txt", "sub"]);
    expect(r.status).toBe(0);
    expect(listTar(tar).map((e) => e.name)).toContain(`sub/${JPEGS[0]}`);
    const db = freshDb();
    const report = await index([tar], db);
    expect(report).toMatchObject({ added: 2 + JPEGS.length, failed: 2, skipped: 1 });
    const rows = rowsOf(db);
    const good = readFileSync(tar);
    writeFileSync(tar, good.subarray(0, 1000)); // now cut short: listed as a problem, its rows left as they were
    const cut = await index([tar], db);
    expect(cut).toMatchObject({ files: 0, removed: 0, failed: 1 });
    expect(cut.problems).toEqual([{ path: tar, message: expect.stringMatching(/truncated tar/) }]);
    expect(rowsOf(db)).toEqual(rows);
    writeFileSync(tar, good);
    const direct = freshDb();
    await index([join(dir, PNGS[0]!), join(dir, "sub", JPEGS[1]!)], direct);
    for (const d of rowsOf(direct)) {
      const name = d.path.slice(dir.length + 1);
      const t = rows.find((x) => x.path === `${tar}#${name}`)!;
      expect(t.embedding).toBe(d.embedding);
      expect(t.sha256).toBe(d.sha256);
    }
  });

  test("--shard I/N: parts disjoint, their union the whole", async () => {
    expect(parseShard("1/3")).toEqual({ index: 1, count: 3 });
    for (const bad of ["3/3", "1", "a/b", "-1/2", "0/0"]) expect(() => parseShard(bad)).toThrow(/shard/);
    const dir = photoFolder("sharded");
    const whole = freshDb();
    await index([dir], whole);
    const parts = await Promise.all([0, 1, 2].map(async (i) => {
      const db = freshDb();
      await index([dir], db, { shard: `${i}/3` });
      return rowsOf(db);
    }));
    const union = parts.flat().sort((a, b) => comparePaths(a.path, b.path));
    expect(union).toEqual(rowsOf(whole));
    for (const [i, part] of parts.entries()) for (const row of part) expect(inShard(row.path.slice(dir.length + 1), { index: i, count: 3 })).toBe(true);
  });
});

describe("search", () => {
  let db: string, dir: string;
  beforeAll(async () => {
    dir = photoFolder("search");
    copyFileSync(join(dir, PNGS[2]!), join(dir, "sub", `copy-${PNGS[2]}`)); // the same image at two paths: a tie
    db = freshDb();
    await index([dir], db);
  });

  test("an image searched by itself scores 1; best first; ties by path; the API's three queries", async () => {
    const stored = rowsOf(db);
    const ix = openIndex(db);
    try {
      expect(ix.count()).toBe(GOOD + 1);
      expect(ix.modelSha256).toBe(model.sha256);
      const hits = await ix.search({ image: join(dir, PNGS[2]!) }, { top: 5 });
      expect(hits).toHaveLength(5);
      expect(hits.slice(0, 2).map((h) => h.path)).toEqual([join(dir, PNGS[2]!), join(dir, "sub", `copy-${PNGS[2]}`)]);
      expect(hits[0]!.score).toBe(hits[1]!.score);
      expect(Math.abs(hits[0]!.score - 1)).toBeLessThan(1e-6);
      for (let i = 1; i < hits.length; i++) expect(hits[i]!.score).toBeLessThanOrEqual(hits[i - 1]!.score);
      expect(await ix.search({ image: new Uint8Array(readFileSync(join(dir, PNGS[2]!))) }, { top: 5 })).toEqual(hits);
      const row = stored.find((r) => r.path === join(dir, PNGS[4]!))!;
      const e = new Float32Array(new Uint8Array(Buffer.from(row.embedding, "hex")).buffer);
      const scaled = e.map((x) => x * 3); // a query is normalised: its length does not matter
      const byEmbedding = await ix.search({ embedding: scaled }, { top: 1 });
      expect(byEmbedding[0]!.path).toBe(row.path);
      expect(Math.abs(byEmbedding[0]!.score - 1)).toBeLessThan(1e-6);
      const text = await ix.search({ text: "a blue star" }, { top: GOOD + 1 });
      expect(text).toHaveLength(GOOD + 1);
      expect(text[0]!.path).toBe(join(dir, "blue_star.png"));
      await expect(ix.search({ text: "x", image: "y" } as never)).rejects.toThrow("exactly one of text, image, embedding");
      await expect(ix.search({ embedding: new Float32Array(64) })).rejects.toThrow("cannot be normalised");
      await expect(ix.search({ text: "x" }, { top: 0 })).rejects.toThrow("top must be an integer");
    } finally {
      ix.close();
    }
    expect(api.openIndex).toBe(openIndex);
  });

  test("CLI: --json is [{path, score}] best first; plain is score TAB path; the same order", async () => {
    const io = memoryIo(dir);
    expect(await runCli(["search", "--db", db, "--image", PNGS[2]!, "--top", "3", "--json"], io)).toBe(0);
    expect(io.err()).toBe("");
    const json = JSON.parse(io.out()) as { path: string; score: number }[];
    expect(json.map((h) => Object.keys(h))).toEqual([["path", "score"], ["path", "score"], ["path", "score"]]);
    expect(json[0]!.path).toBe(join(dir, PNGS[2]!));
    expect(json[0]!.score).toBeCloseTo(1, 6);
    const plain = memoryIo(dir);
    expect(await runCli(["search", "--db", db, "--image", PNGS[2]!, "--top", "3"], plain)).toBe(0);
    expect(plain.out().trimEnd().split("\n").map((l) => l.split("\t"))).toEqual(json.map((h) => [h.score.toFixed(6), h.path]));
    const text = memoryIo(dir);
    expect(await runCli(["search", "--db", db, "--text", "a red diamond", "--json"], text)).toBe(0);
    expect(JSON.parse(text.out())).toHaveLength(10);
  });

  test("a query by another model, a missing or foreign database: one-line errors", async () => {
    const vit = join(root, "weights/clip-tiny-vit.safetensors");
    const io = memoryIo(dir);
    expect(await runCli(["search", "--db", db, "--text", "a star", "--model", vit], io)).toBe(1);
    expect(withoutNotes(io.err())).toMatch(/^clip-ts search: .* was indexed with another model \(weights SHA-256 [0-9a-f]{12}…; --model .* is [0-9a-f]{12}…\): pass the --model that indexed it\n$/);
    const ix = openIndex(db, { model: vit });
    await expect(ix.search({ text: "a star" })).rejects.toThrow(/indexed with another model/);
    ix.close();
    const missing = memoryIo(dir);
    expect(await runCli(["search", "--db", join(tmp, "nope.db"), "--text", "a"], missing)).toBe(1);
    expect(missing.err()).toMatch(/^clip-ts search: .*nope\.db: no collection there .*\n$/);
    const foreign = memoryIo(dir);
    expect(await runCli(["search", "--db", join(dir, PNGS[0]!), "--text", "a"], foreign)).toBe(1);
    expect(foreign.err()).toMatch(/^clip-ts search: .* not a clip-ts collection.*\n$/);
    const emptyDb = freshDb();
    CollectionDb.open(emptyDb, { dim: 64 }).close();
    const empty = memoryIo(dir);
    expect(await runCli(["search", "--db", emptyDb, "--text", "a", "--json"], empty)).toBe(0);
    expect(empty.out()).toBe("[]\n");
    const usage = memoryIo(dir);
    expect(await runCli(["search", "--db", db], usage)).toBe(2);
    expect(usage.err()).toMatch(/give one of --text or --image/);
  });
});

describe("index command", () => {
  test("summary on stderr (nothing else off a TTY), --errors written, the model's SHA-256 and db checked", async () => {
    const dir = photoFolder("cli");
    const db = join(tmp, "cli.db");
    const io = memoryIo(dir);
    expect(await runCli(["index", ".", "--db", db, "--errors", "errors.tsv", "--batch", "5"], io)).toBe(0);
    expect(io.out()).toBe("");
    expect(io.err()).toMatch(new RegExp(`^${db.replace(/[.]/g, "\\.")}: ${GOOD + 3} files: ${GOOD} added, 0 updated, 0 removed, 0 unchanged, 2 failed, 1 skipped \\(not PNG/JPEG\\) in [\\d.]+ s, [\\d.]+ files/s\\nfailed and skipped files are listed in errors\\.tsv\\n$`));
    const lines = readFileSync(join(dir, "errors.tsv"), "utf8").split("\n");
    expect(lines.pop()).toBe("");
    expect(lines.map((l) => l.split("\t")[0])).toEqual(["notes.txt", "sub/cut.jpg", "sub/truncated.png"].map((f) => join(dir, f)));
    expect(lines.every((l) => l.split("\t").length === 2)).toBe(true);
    expect(rowsOf(db)).toHaveLength(GOOD);

    const vit = memoryIo(dir);
    expect(await runCli(["index", ".", "--db", db, "--model", join(root, "weights/clip-tiny-vit.safetensors")], vit)).toBe(1);
    expect(withoutNotes(vit.err())).toMatch(/^clip-ts index: .*cli\.db was indexed with another model \(weights SHA-256 [0-9a-f]{12}…, this one is [0-9a-f]{12}…\): index into a new --db, or delete this one to re-index with this model\n$/);

    const tty = memoryIo(dir, true);
    rmSync(join(dir, PNGS[0]!));
    expect(await runCli(["index", ".", "--db", db], tty)).toBe(0);
    expect(tty.err()).toMatch(/indexing \[/);
    expect(tty.err()).toMatch(/1 removed, /);
    expect(tty.err()).toMatch(/failed: .*cut\.jpg: /);

    for (const [args, status, message] of [
      [[".", "--db", join(tmp, "no/such/dir/x.db")], 1, /^clip-ts index: .*x\.db: cannot create the collection: no such directory .*no\/such\/dir\n$/],
      [[".", "--db", join(dir, PNGS[1]!)], 1, /^clip-ts index: .*: an SQLite database, but|not a clip-ts collection/],
      [["missing-folder", "--db", db], 1, /^clip-ts index: no such file or directory ".*missing-folder"\n$/],
      [[".", "--db", db, "--shard", "2/2"], 2, /^clip-ts index: --shard: shard 2\/2: needs 0 ≤ I < N/],
      [["--db", db], 2, /missing the folders, files or globs/],
    ] as const) {
      const e = memoryIo(dir);
      expect(await runCli(["index", ...args], e), args.join(" ")).toBe(status);
      expect(e.err()).toMatch(message);
      expect(e.err().split("\n")).toHaveLength(2);
    }
    const help = memoryIo(dir);
    expect(await runCli(["help", "index"], help)).toBe(0);
    expect(help.out()).toMatch(/--db PATH/);
  });
});

test("the index's files are resolved from the cwd given", async () => {
  const dir = photoFolder("cwd");
  const r = await indexFiles(["sub"], { db: "rel.db", cwd: dir }); // the embedded model by default
  expect(r.db).toBe(resolve(dir, "rel.db"));
  expect(r.modelSha256).toBe(model.sha256);
  expect(rowsOf(join(dir, "rel.db")).map((x) => x.path)).toEqual(JPEGS.map((f) => join(dir, "sub", f)).sort(comparePaths));
});

test("the indexing bar: files done/total, files/s and the time left", async () => {
  const { Progress } = await import("../src/cli/progress.js");
  const out: string[] = [];
  let t = 0;
  const bar = new Progress({ write: (s) => void out.push(s), isTTY: true, columns: 100 }, "indexing", 200, "files", () => t);
  bar.update(0);
  t = 2000;
  bar.update(50);
  expect(out.at(-1)).toMatch(/^\rindexing \[#+\.+\]  25% 50\/200  25 files\/s  ETA 0:06\x1b\[K$/);
  const quiet: string[] = [];
  new Progress({ write: (s) => void quiet.push(s), isTTY: false }, "indexing", 200, "files").update(100);
  expect(quiet).toEqual([]);
});

test("a --db that cannot be a collection, is open elsewhere or holds another model's rows fails before the model loads", async () => {
  const dir = photoFolder("early");
  let loads = 0;
  const lazy = async () => {
    loads++;
    return model;
  };
  await expect(indexFiles([dir], { db: join(dir, PNGS[0]!), model: lazy })).rejects.toThrow(/not a clip-ts collection/);
  await expect(indexFiles([dir], { db: dir, model: lazy })).rejects.toThrow(/: not a file$/);
  await expect(indexFiles([dir], { db: join(dir, "none", "x.db"), model: lazy })).rejects.toThrow(/no such directory/);
  const db = freshDb();
  await index([join(dir, PNGS[0]!)], db);
  const other = { sha256: "0".repeat(64), load: async () => (loads++, model.model) };
  await expect(indexFiles([dir], { db, model: other })).rejects.toThrow(/was indexed with another model \(weights SHA-256 [0-9a-f]{12}…, this one is 000000000000…\)/);
  const open = CollectionDb.open(db);
  try {
    await expect(indexFiles([dir], { db, model: lazy })).rejects.toThrow(/is open in process \d+ \(this one\); close it first/);
  } finally {
    open.close();
  }
  expect(loads).toBe(0);
});
