// The decode pool (src/collection/decode_pool.ts): results in input order, pixels bit-identical to the in-process
// transform embed-image uses, one-line errors, a bounded window, dead workers replaced, and no handle left open.
// Its workers run the compiled dist/src/collection/decode_worker.js (rebuilt here when a source is newer).
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { createDecodePool, defaultDecodeThreads, type Decoded, type InputItem } from "../src/collection/decode_pool.js";
import { TEST_CRASH } from "../src/collection/decode_worker.js";
import { preprocess } from "../src/image/index.js";
import { ensureBuilt } from "./helpers/dist.js";

const root = process.cwd();
const worker = resolve(root, "dist/src/collection/decode_worker.js");
const tmp = mkdtempSync(join(tmpdir(), "clip-ts-pool-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

beforeAll(() => ensureBuilt(["src/collection", "src/image"], worker));

const R = 64;
const dir = "test/golden/preprocess";
// every PNG and JPEG golden but the 3000x2000 one (slow to decode twice on a shared machine)
const files = readdirSync(dir).filter((f) => /\.(png|jpe?g)$/.test(f) && !f.includes("3000x2000")).sort().map((f) => join(dir, f));
const jpeg = files.find((f) => f.endsWith("jpeg_420_160x120_n64.jpg"))!;
const png = files.find((f) => f.endsWith("rgba_150x90_n64.png"))!;

function item(key: string, bytes: () => Uint8Array | Promise<Uint8Array>): InputItem {
  return { key, rel: key, size: 0, mtimeMs: 0, read: async () => bytes() };
}
const fileItem = (path: string) => item(resolve(path), () => new Uint8Array(readFileSync(path)));
const bytesItem = (key: string, b: Uint8Array) => item(key, () => b.slice());
const crashItem = (how: string) => bytesItem(`crash-${how}`, new TextEncoder().encode(TEST_CRASH + how));
const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

/** What embed-image computes in process for these bytes: pixels, or the error's message. */
function inProcess(bytes: Uint8Array): { pixels?: Float32Array; exact?: boolean; error?: string } {
  try {
    const t = preprocess(bytes, { size: R });
    return { pixels: t.data, exact: t.exact };
  } catch (e) {
    return { error: (e as Error).message };
  }
}

async function all(it: AsyncIterable<Decoded>): Promise<Decoded[]> {
  const out: Decoded[] = [];
  for await (const d of it) out.push(d);
  return out;
}

const bits = (a: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

describe("results", () => {
  const truncatedJpeg = readFileSync(jpeg).subarray(0, 700);
  const truncatedPng = readFileSync(png).subarray(0, 300);

  test("in input order, with the in-process transform's bits, hashes and errors (PNG, JPEG, broken files)", async () => {
    const pool = createDecodePool({ threads: 2, resolution: R, window: 5 });
    try {
      const items = [
        ...files.map(fileItem),
        bytesItem("truncated.jpg", truncatedJpeg),
        bytesItem("truncated.png", truncatedPng),
        bytesItem("text.txt", new TextEncoder().encode("not an image")),
      ];
      items.splice(3, 0, items.pop()!); // a failure among the first
      async function* source() {
        for (const it of items) yield it; // an async iterable, as a directory walk gives
      }
      const out = await all(pool.decode(source()));
      expect(out.map((d) => d.key)).toEqual(items.map((i) => i.key));
      let compared = 0, failed = 0;
      for (const [i, d] of out.entries()) {
        const bytes = await items[i].read();
        const want = inProcess(bytes);
        expect(d.sha256).toBe(sha(bytes));
        if (want.error !== undefined) {
          expect(d).toEqual({ key: items[i].key, sha256: sha(bytes), error: want.error });
          expect(d.error).not.toMatch(/\n/);
          failed++;
        } else {
          expect(d.exact).toBe(want.exact);
          expect(d.pixels!.length).toBe(3 * R * R);
          expect(bits(d.pixels!).equals(bits(want.pixels!)), items[i].key).toBe(true);
          compared++;
        }
      }
      expect(compared).toBeGreaterThan(60);
      expect(failed).toBeGreaterThanOrEqual(3);
      for (const key of ["truncated.jpg", "truncated.png", "text.txt"]) expect(out.find((d) => d.key === key)!.error).toBeTruthy();
      expect(out.some((d) => d.key.endsWith(".jpg") && d.pixels)).toBe(true);
      expect(out.some((d) => d.key.endsWith(".png") && d.pixels)).toBe(true);
    } finally {
      await pool.close();
    }
  });

  test("one-line errors for unreadable items, files over maxFileBytes and limits of the decoders", async () => {
    const pool = createDecodePool({ threads: 1, resolution: R, nice: 19, limits: { maxFileBytes: 50_000, maxPixels: 1000 } });
    try {
      const big = { ...fileItem(png), key: "big", size: 60_000 };
      const liar = bytesItem("liar", new Uint8Array(50_001)); // says size 0, reads more
      const missing: InputItem = { key: "/no/such", rel: "x", size: 0, mtimeMs: 0, read: () => Promise.reject(new Error("ENOENT: no such file,\nopen '/no/such'")) };
      const out = await all(pool.decode([big, liar, missing, fileItem(jpeg)]));
      expect(out[0]).toEqual({ key: "big", sha256: "", error: "file of 60000 bytes, more than the limit of 50000 (maxFileBytes)" });
      expect(out[1]).toEqual({ key: "liar", sha256: sha(new Uint8Array(50_001)), error: "file of 50001 bytes, more than the limit of 50000 (maxFileBytes)" });
      expect(out[2]).toEqual({ key: "/no/such", sha256: "", error: "cannot read: ENOENT: no such file, open '/no/such'" });
      expect(out[3].error).toMatch(/160x120 = 19200 pixels, more than the limit of 1000 \(maxPixels\)/);
    } finally {
      await pool.close();
    }
  });

  test("bad options are refused by name", () => {
    expect(() => createDecodePool({ threads: 0, resolution: R })).toThrow(/threads must be an integer in \[1, 64\], got 0/);
    expect(() => createDecodePool({ threads: 1, resolution: 2.5 })).toThrow(/resolution must be an integer/);
    expect(() => createDecodePool({ threads: 1, resolution: R, window: 0 })).toThrow(/window must be an integer/);
    expect(() => createDecodePool({ threads: 1, resolution: R, limits: { maxPixels: NaN } })).toThrow(/invalid option maxPixels/);
    expect(() => createDecodePool({ threads: 1, resolution: R, nice: 20 })).toThrow(/nice must be an integer in \[0, 19\]/);
    expect(defaultDecodeThreads(1)).toBe(1);
    expect(defaultDecodeThreads(2)).toBe(1);
    expect(defaultDecodeThreads(6)).toBe(Math.min(2, defaultDecodeThreads(64)));
  });
});

describe("flow", () => {
  test("the window bounds the items taken from the source but not yet handed out, whatever the input count", async () => {
    const window = 6;
    const pool = createDecodePool({ threads: 2, resolution: R, window });
    const bytes = new Uint8Array(readFileSync(png));
    let pulled = 0, handed = 0, worst = 0;
    function* source() {
      for (let i = 0; i < 300; i++) {
        pulled++;
        worst = Math.max(worst, pulled - handed);
        yield bytesItem(`p${i}`, bytes);
      }
    }
    try {
      for await (const d of pool.decode(source())) {
        expect(d.key).toBe(`p${handed}`);
        handed++;
        if (handed % 50 === 0) await new Promise((r) => setTimeout(r, 50)); // a slow consumer: the pool waits
      }
      expect(handed).toBe(300);
      expect(worst).toBeLessThanOrEqual(window + 1); // +1: the item being pulled as one is handed out
      expect(worst).toBeGreaterThanOrEqual(window); // and the pool does read ahead
    } finally {
      await pool.close();
    }
  });

  test("a consumer that stops early closes the source; the pool goes on with the next decode()", async () => {
    const pool = createDecodePool({ threads: 1, resolution: R, window: 4 });
    let closedSource = false;
    function* source() {
      try {
        for (const f of files) yield fileItem(f);
      } finally {
        closedSource = true;
      }
    }
    try {
      let n = 0;
      for await (const d of pool.decode(source())) {
        expect(d.key).toBe(resolve(files[n]));
        if (++n === 2) break;
      }
      expect(closedSource).toBe(true);
      const again = await all(pool.decode([fileItem(jpeg)]));
      expect(bits(again[0].pixels!).equals(bits(inProcess(readFileSync(jpeg)).pixels!))).toBe(true);
    } finally {
      await pool.close();
    }
  });

  test("a source that throws ends the decode with its error", async () => {
    const pool = createDecodePool({ threads: 1, resolution: R });
    async function* source() {
      yield fileItem(jpeg);
      throw new Error("walk failed");
    }
    try {
      await expect(all(pool.decode(source()))).rejects.toThrow("walk failed");
    } finally {
      await pool.close();
    }
  });
});

describe("dead workers", () => {
  test("a worker that exits, runs out of heap or throws gives an error for its item, and is replaced", async () => {
    const pool = createDecodePool({ threads: 2, resolution: R, window: 8, testCrash: true, limits: { workerHeapMb: 32 } });
    try {
      const good = files.slice(0, 12).map(fileItem);
      const items = [crashItem("exit"), ...good.slice(0, 4), crashItem("oom"), ...good.slice(4, 8), crashItem("throw"), ...good.slice(8)];
      const out = await all(pool.decode(items));
      expect(out.map((d) => d.key)).toEqual(items.map((i) => i.key));
      const crashed = out.filter((d) => d.key.startsWith("crash-"));
      expect(crashed.map((d) => d.error)).toEqual([
        "the decoder's worker thread died on this file (exit code 3)",
        expect.stringMatching(/^the decoder's worker thread died on this file \(.*memory limit.*\)$/),
        "the decoder's worker thread died on this file (test: uncaught in the decode worker)",
      ]);
      for (const d of crashed) expect(d.sha256).toBe(sha(await items.find((i) => i.key === d.key)!.read()));
      for (const d of out.filter((d) => !d.key.startsWith("crash-"))) {
        const want = inProcess(readFileSync(d.key));
        if (want.pixels) expect(bits(d.pixels!).equals(bits(want.pixels)), d.key).toBe(true);
        else expect(d.error).toBe(want.error);
      }
      // the pool still works with its replacement workers
      expect((await all(pool.decode([fileItem(png)])))[0].pixels).toBeInstanceOf(Float32Array);
    } finally {
      await pool.close();
    }
  });
});

describe("close and handles", () => {
  test("close() ends a running decode with one line; decode() after close is refused", async () => {
    const pool = createDecodePool({ threads: 1, resolution: R, window: 4 });
    const it = pool.decode(files.map(fileItem))[Symbol.asyncIterator]();
    expect((await it.next()).done).toBe(false);
    await pool.close();
    await expect(it.next()).rejects.toThrow("decode pool: closed");
    await expect(all(pool.decode([fileItem(png)]))).rejects.toThrow("decode pool: closed");
    await pool.close(); // twice is fine
  });

  test("a process using the pool exits by itself, closed or not", () => {
    const script = join(tmp, "use_pool.mjs");
    const url = (p: string) => new URL(`file://${resolve(p)}`).href;
    for (const close of [true, false]) {
      writeFileSync(script, `
        import { readFileSync } from "node:fs";
        import { createDecodePool } from ${JSON.stringify(url("dist/src/collection/decode_pool.js"))};
        const pool = createDecodePool({ threads: 2, resolution: ${R} });
        const item = { key: "k", rel: "k", size: 0, mtimeMs: 0, read: async () => new Uint8Array(readFileSync(${JSON.stringify(resolve(jpeg))})) };
        let n = 0;
        for await (const d of pool.decode([item, item, item])) if (d.pixels) n++;
        ${close ? "await pool.close();" : ""}
        console.log(n);
      `);
      const r = spawnSync(process.execPath, [script], { encoding: "utf8", timeout: 30_000 });
      expect({ status: r.status, signal: r.signal, stdout: r.stdout.trim() }).toEqual({ status: 0, signal: null, stdout: "3" });
    }
  });
});
