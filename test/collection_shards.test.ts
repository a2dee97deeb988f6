// Issue 12 point 6, end to end with the built CLI: 4 processes `index --shard i/4` started by xargs -P 4 (the
// recipe of docs/collections-shards.md), then `merge`, give the collection one process gives, bit for bit, from a
// folder of images and WebDataset tars (Python tarfile's pax format, as img2dataset writes, and GNU tar's).
import { spawnSync } from "node:child_process";
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, expect, test } from "vitest";
import { CollectionDb } from "../src/collection/db.js";
import { inShard } from "../src/collection/shard.js";
import { listTar } from "../src/collection/tar.js";
import { ensureBuilt } from "./helpers/dist.js";

const root = process.cwd();
const main = resolve(root, "dist/src/cli/main.js");
const tmp = mkdtempSync(join(tmpdir(), "clip-ts-shards-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

beforeAll(() => ensureBuilt(["src/cli", "src", "src/collection"]));

const PNGS = readdirSync("examples").filter((f) => f.endsWith(".png")).sort();
const JPEGS = ["jpeg_420_160x120_n64.jpg", "jpeg_444_prog_150x200_n64.jpg", "cjpeg_420_restart_rows_90x70_n64.jpg"];
const hex = (e: Float32Array) => Buffer.from(e.buffer, e.byteOffset, e.byteLength).toString("hex");

function rows(db: string) {
  const c = CollectionDb.open(db, { create: false });
  try {
    expect(c.integrity()).toBe("ok");
    return [...c.rows()].map((r) => ({ ...r, embedding: hex(r.embedding) }));
  } finally {
    c.close();
  }
}

/** photos/: the images in two levels, a text file; wds-00000.tar (Python tarfile, pax) and gnu.tar (GNU tar). */
function inputs(): string[] {
  const photos = join(tmp, "photos");
  mkdirSync(join(photos, "2019", "beach"), { recursive: true });
  for (const f of PNGS) copyFileSync(join("examples", f), join(photos, f));
  for (const f of JPEGS) copyFileSync(join("test/golden/preprocess", f), join(photos, "2019", "beach", f));
  writeFileSync(join(photos, "notes.txt"), "not an image\n");
  // img2dataset's layout: per sample an image, its caption and its metadata, mtime a float (a pax header each)
  const wds = join(tmp, "wds-00000.tar");
  const py = `
import io, json, sys, tarfile
files = sys.argv[2:]
with tarfile.open(sys.argv[1], "w") as t:
    for i, f in enumerate(files):
        key = f"{i:09d}"
        for name, data in [(key + (".png" if f.endswith(".png") else ".jpg"), open(f, "rb").read()),
                           (key + ".txt", f"caption {i}".encode()), (key + ".json", json.dumps({"key": key}).encode())]:
            ti = tarfile.TarInfo(name); ti.size = len(data); ti.mtime = 1700000000.5 + i
            t.addfile(ti, io.BytesIO(data))
`;
  const images = [...PNGS.map((f) => join("examples", f)), ...JPEGS.map((f) => join("test/golden/preprocess", f))];
  const r = spawnSync("/usr/bin/python3", ["-c", py, wds, ...images], { encoding: "utf8" });
  expect(r.stderr).toBe("");
  expect(listTar(wds).length).toBe(3 * images.length);
  const gnu = join(tmp, "gnu.tar");
  expect(spawnSync("tar", ["--format=gnu", "-cf", gnu, "-C", photos, "."]).status).toBe(0);
  return ["photos", "wds-00000.tar", "gnu.tar"];
}

function clip(args: string[]) {
  return spawnSync(process.execPath, [main, ...args], { cwd: tmp, encoding: "utf8", env: { ...process.env, CLIP_TS_DEBUG: "" } });
}

test("4 processes with --shard i/4 (xargs -P 4), then merge = one process, every row bit for bit", () => {
  const args = inputs();
  const images = 3 * (PNGS.length + JPEGS.length);
  // one process, 2 threads
  const whole = clip(["index", ...args, "--db", "whole.db", "--threads", "2"]);
  expect(whole.status, whole.stderr).toBe(0);
  // four at once, 1 thread each, as the docs run them
  mkdirSync(join(tmp, "parts"));
  const quote = (s: string) => `'${s}'`;
  const cmd = `seq 0 3 | xargs -P 4 -I{} ${quote(process.execPath)} ${quote(main)} index ${args.join(" ")} --db parts/part-{}.db --shard {}/4 --threads 1`;
  const four = spawnSync("sh", ["-c", cmd], { cwd: tmp, encoding: "utf8" });
  expect(four.status, four.stderr).toBe(0);
  const merged = clip(["merge", "--db", "merged.db", ...[0, 1, 2, 3].map((i) => `parts/part-${i}.db`)]);
  expect(merged.stderr).toBe("");
  expect(merged.stdout).toBe(`merged 4 parts into ${join(tmp, "merged.db")}: ${images} rows\n`);

  const want = rows(join(tmp, "whole.db"));
  expect(want.length).toBe(images);
  expect(want.filter((r) => r.path.includes(".tar#")).length).toBe(2 * (PNGS.length + JPEGS.length));
  const got = rows(join(tmp, "merged.db"));
  expect(got.map((r) => r.path)).toEqual(want.map((r) => r.path));
  for (const [i, r] of got.entries()) expect(r, r.path).toEqual(want[i]); // path, size, mtime, both SHA-256s, embedding bits

  // every part holds exactly its shard, chosen by relative path; none is empty
  const relOf = (path: string) => {
    for (const a of args) {
      const base = join(tmp, a);
      if (path.startsWith(`${base}/`)) return path.slice(base.length + 1);
      if (path.startsWith(`${base}#`)) return `${a}${path.slice(base.length)}`;
    }
    throw new Error(`no input holds ${path}`);
  };
  const sizes = [0, 1, 2, 3].map((i) => {
    const part = rows(join(tmp, "parts", `part-${i}.db`));
    for (const r of part) expect(inShard(relOf(r.path), { index: i, count: 4 }), r.path).toBe(true);
    return part.length;
  });
  expect(sizes.every((n) => n > 0)).toBe(true);
  expect(sizes.reduce((a, b) => a + b)).toBe(images);
  console.log(`shards of ${images} images (folder + 2 tars): ${sizes.join(" + ")}`);

  // a part's owner can be run again: unchanged, nothing re-embedded
  const again = clip(["index", ...args, "--db", "parts/part-2.db", "--shard", "2/4"]);
  expect(again.status).toBe(0);
  expect(again.stderr).toContain(`: 0 added, 0 updated, 0 removed, ${sizes[2]} unchanged, `);
}, 300_000);
