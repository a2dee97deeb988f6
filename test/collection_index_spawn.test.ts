// `clip-ts index` as a child process killed with SIGKILL at random points: the same command run again completes
// the collection with every file exactly once and the bits of an uninterrupted run, and SQLite finds it intact.
import { spawn, spawnSync } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, expect, test } from "vitest";
import { CollectionDb } from "../src/collection/db.js";
import { ensureBuilt } from "./helpers/dist.js";

const root = process.cwd();
const main = resolve(root, "dist/src/cli/main.js");
const tmp = mkdtempSync(join(tmpdir(), "clip-ts-index-kill-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

beforeAll(() => ensureBuilt(["src/cli", "src", "src/collection"]));

const PNGS = readdirSync("examples").filter((f) => f.endsWith(".png")).sort();
const JPEGS = ["jpeg_420_160x120_n64.jpg", "jpeg_444_prog_150x200_n64.jpg", "cjpeg_420_restart_rows_90x70_n64.jpg"];
const COPIES = 3;
const IMAGES = COPIES * (PNGS.length + JPEGS.length);

function folder(): string {
  const dir = join(tmp, "photos");
  for (let c = 0; c < COPIES; c++) {
    mkdirSync(join(dir, `d${c}`), { recursive: true });
    for (const f of PNGS) copyFileSync(join("examples", f), join(dir, `d${c}`, f));
    for (const f of JPEGS) copyFileSync(join("test/golden/preprocess", f), join(dir, `d${c}`, f));
  }
  writeFileSync(join(dir, "d0", "cut.jpg"), readFileSync(join("test/golden/preprocess", JPEGS[0]!)).subarray(0, 300));
  return dir;
}

const args = (db: string) => ["index", "photos", "--db", db, "--batch", "2", "--errors", `${db}.errors`];
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

/** The rows a killed run left, counted in a copy (db and WAL) so the next run meets the files exactly as left. */
function leftBehind(db: string): number {
  const copy = join(tmp, "inspect.db");
  for (const s of ["", "-wal"]) {
    rmSync(copy + s, { force: true });
    if (existsSync(db + s)) copyFileSync(db + s, copy + s);
  }
  return rows(copy).length;
}

function run(db: string) {
  const r = spawnSync(process.execPath, [main, ...args(db)], { cwd: tmp, encoding: "utf8" });
  expect(r.stderr).toMatch(/\d+ files: /);
  expect(r.status).toBe(0);
}

/** Starts the command and SIGKILLs it after `ms`, or as soon as its write-ahead log has grown `walGrowths` times. */
function killed(db: string, kill: { ms?: number; walGrowths?: number }): Promise<{ signal: NodeJS.Signals | null }> {
  return new Promise((done) => {
    const child = spawn(process.execPath, [main, ...args(db)], { cwd: tmp, stdio: "ignore" });
    let growths = 0, size = -1;
    const poll = kill.walGrowths === undefined ? undefined : setInterval(() => {
      const s = statSync(`${db}-wal`, { throwIfNoEntry: false })?.size ?? -1;
      if (s > size && size >= 0 && ++growths >= kill.walGrowths!) child.kill("SIGKILL");
      size = s;
    }, 2);
    const timer = kill.ms === undefined ? undefined : setTimeout(() => child.kill("SIGKILL"), kill.ms);
    child.on("exit", (_code, signal) => {
      clearInterval(poll);
      clearTimeout(timer);
      done({ signal });
    });
  });
}

test("kill -9 at random points, then the same command: every file once, the bits of an uninterrupted run", async () => {
  folder();
  const reference = join(tmp, "reference.db");
  const t0 = performance.now();
  run(reference);
  const total = performance.now() - t0;
  const want = rows(reference);
  expect(want).toHaveLength(IMAGES);
  const wantErrors = readFileSync(`${reference}.errors`, "utf8");
  expect(wantErrors).toMatch(/cut\.jpg\t/);

  // Points in time across the run (model loading included), and points just after the n-th commit was seen.
  const kills: { ms?: number; walGrowths?: number }[][] = [
    [{ ms: total * 0.35 }], [{ ms: total * 0.6 }], [{ ms: total * 0.85 }],
    [{ walGrowths: 2 }], [{ walGrowths: 5 }], [{ walGrowths: 3 }, { walGrowths: 4 }, { ms: total * 0.5 }],
  ];
  const partial: number[] = [];
  for (const [i, plan] of kills.entries()) {
    const db = join(tmp, `killed${i}.db`);
    for (const k of plan) {
      const { signal } = await killed(db, k);
      if (signal === "SIGKILL" && existsSync(db)) partial.push(leftBehind(db)); // committed batches only
    }
    run(db);
    expect(rows(db), `kill plan ${i}`).toEqual(want);
    expect(readFileSync(`${db}.errors`, "utf8")).toBe(wantErrors);
  }
  // The kills did land while rows were being written, not only before or after.
  expect(partial.some((n) => n > 0 && n < IMAGES), `rows left by the killed runs: ${partial.join(", ")}`).toBe(true);
}, 600_000);
