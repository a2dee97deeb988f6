// The model cache (src/hub.ts), the browser fetcher (src/hub_browser.ts) and `clip-ts models`, against a real HTTP
// server on 127.0.0.1 that serves small fake "model" files and misbehaves on request.
import { execFile, spawn, spawnSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from "node:fs";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, test } from "vitest";
import { memoryIo, runCli } from "../src/cli/cli.js";
import { downloadProgress, Progress } from "../src/cli/progress.js";
import {
  availableModels, cachedPath, cacheDir, cacheStatus, HubError, MODELS, modelUrl, resolveModel, unknownModelMessage,
  urlFileName, type ModelTable,
} from "../src/hub.js";
import { fetchModelBytes, resolveModelUrl, type CacheLike, type CacheStorageLike } from "../src/hub_browser.js";

const tmp = mkdtempSync(join(tmpdir(), "clip-ts-hub-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
let dirs = 0;
const freshDir = () => join(tmp, `cache${dirs++}`);
const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

// ---- the server: serves FILES[path]; `mode` makes it misbehave

type Mode = "ok" | "ignore-range" | "cut-half" | "stall-half" | "slow" | "wrong-bytes";
interface Seen { method: string; url: string; range?: string }

class FakeHub {
  server!: Server;
  port = 0;
  mode: Mode = "ok";
  slowMs = 60;
  seen: Seen[] = [];
  files = new Map<string, Uint8Array>();

  async start(): Promise<void> {
    this.server = createServer((req, res) => this.handle(req, res));
    await new Promise<void>((r) => this.server.listen(0, "127.0.0.1", r));
    this.port = (this.server.address() as { port: number }).port;
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise((r) => this.server.close(r));
  }

  get base(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    this.seen.push({ method: req.method!, url: req.url!, range: req.headers.range });
    const file = this.files.get(req.url!);
    if (!file) {
      res.writeHead(404, { "Content-Type": "text/plain" }).end("no such model");
      return;
    }
    const body = this.mode === "wrong-bytes" ? Uint8Array.from(file, (b) => b ^ 1) : file;
    const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? "");
    if (range && this.mode !== "ignore-range") {
      const start = Number(range[1]);
      if (start >= body.length) {
        res.writeHead(416, { "Content-Range": `bytes */${body.length}` }).end();
        return;
      }
      res.writeHead(206, { "Content-Length": body.length - start, "Content-Range": `bytes ${start}-${body.length - 1}/${body.length}` });
      res.end(body.subarray(start));
      return;
    }
    res.writeHead(200, { "Content-Length": body.length, "Content-Type": "application/octet-stream" });
    const half = body.subarray(0, body.length >> 1);
    if (this.mode === "cut-half") {
      res.write(half, () => setTimeout(() => res.destroy(), 20));
    } else if (this.mode === "stall-half") {
      res.write(half); // and nothing more, ever
    } else if (this.mode === "slow") {
      let i = 0;
      const step = body.length >> 2;
      const next = () => {
        if (i >= body.length) return void res.end();
        res.write(body.subarray(i, i + step));
        i += step;
        setTimeout(next, this.slowMs);
      };
      next();
    } else {
      res.end(body);
    }
  }
}

const hub = new FakeHub();
const MODEL = randomBytes(300_000);
const MODEL_SHA = sha(MODEL);
// A table like MODELS with one fake model: its published URL has the OpenAI host, so reaching the loopback server
// at all goes through the CLIP_TS_MODEL_BASE_URL rule.
const TABLE: ModelTable = {
  "Fake-B/32": { url: `https://openaipublic.azureedge.net/clip/models/${MODEL_SHA}/Fake-B-32.pt`, sha256: MODEL_SHA, bytes: MODEL.length },
};
const SERVED = `/mirror/clip/models/${MODEL_SHA}/Fake-B-32.pt`;

beforeAll(async () => {
  await hub.start();
  hub.files.set(SERVED, MODEL);
});
afterAll(() => hub.stop());
afterEach(() => {
  hub.mode = "ok";
  hub.slowMs = 60;
  hub.seen = [];
});

function opts(dir: string, extra: Parameters<typeof resolveModel>[1] = {}) {
  return { cacheDir: dir, models: TABLE, env: { CLIP_TS_MODEL_BASE_URL: `${hub.base}/mirror/` }, pollMs: 20, ...extra };
}

async function failure(p: Promise<unknown>): Promise<HubError> {
  const e = await p.then(() => undefined, (x: unknown) => x);
  expect(e).toBeInstanceOf(HubError);
  expect((e as Error).message).not.toContain("\n");
  return e as HubError;
}

describe("the table", () => {
  test("clip.py's nine names in its order; each SHA-256 is its URL's second-to-last segment; sizes", () => {
    expect(availableModels()).toEqual(["RN50", "RN101", "RN50x4", "RN50x16", "RN50x64", "ViT-B/32", "ViT-B/16", "ViT-L/14", "ViT-L/14@336px"]);
    for (const [name, m] of Object.entries(MODELS)) {
      const parts = new URL(m.url).pathname.split("/");
      expect(m.url.startsWith("https://openaipublic.azureedge.net/clip/models/"), name).toBe(true);
      expect(parts.at(-2), name).toBe(m.sha256);
      expect(m.sha256, name).toMatch(/^[0-9a-f]{64}$/);
      expect(m.bytes, name).toBeGreaterThan(200e6);
    }
    expect(MODELS["ViT-B/32"]).toEqual({
      url: "https://openaipublic.azureedge.net/clip/models/40d365715913c9da98579312b702a82c18be219cc2a73407c4526f58eba950af/ViT-B-32.pt",
      sha256: "40d365715913c9da98579312b702a82c18be219cc2a73407c4526f58eba950af",
      bytes: 353_976_522,
    });
  });

  test("CLIP_TS_MODEL_BASE_URL replaces scheme and host, keeping the path; bad values are refused", () => {
    const path = "/clip/models/40d365715913c9da98579312b702a82c18be219cc2a73407c4526f58eba950af/ViT-B-32.pt";
    expect(modelUrl("ViT-B/32", {})).toBe(`https://openaipublic.azureedge.net${path}`);
    expect(modelUrl("ViT-B/32", { CLIP_TS_MODEL_BASE_URL: "http://10.0.0.2:8080" })).toBe(`http://10.0.0.2:8080${path}`);
    expect(modelUrl("ViT-B/32", { CLIP_TS_MODEL_BASE_URL: "https://mirror.example/ai/openai/" })).toBe(`https://mirror.example/ai/openai${path}`);
    expect(() => modelUrl("ViT-B/32", { CLIP_TS_MODEL_BASE_URL: "ftp://x" })).toThrow(/CLIP_TS_MODEL_BASE_URL must be an http/);
    expect(() => modelUrl("ViT-B/32", { CLIP_TS_MODEL_BASE_URL: "not a url" })).toThrow(/CLIP_TS_MODEL_BASE_URL must be an http/);
  });

  test("names are clip.py's exactly; the unknown-name message lists them and names a near miss", async () => {
    expect(() => modelUrl("ViT-B-32")).toThrow(HubError);
    const m = unknownModelMessage("ViT-B-32");
    expect(m).toContain('did you mean "ViT-B/32"?');
    expect(m).toContain("RN50, RN101, RN50x4, RN50x16, RN50x64, ViT-B/32, ViT-B/16, ViT-L/14, ViT-L/14@336px");
    expect(unknownModelMessage("resnet")).not.toContain("did you mean");
    // neither a name nor a URL: handed back as a path, nothing touched
    expect(await resolveModel("ViT-B-32", { cacheDir: join(tmp, "never") })).toEqual({ path: "ViT-B-32" });
    expect(existsSync(join(tmp, "never"))).toBe(false);
    expect((await failure(resolveModel("RN50", { sha256: "abc" }))).message).toBe('sha256 must be 64 hex digits, got "abc"');
    expect((await failure(resolveModel("RN50", { sha256: "0".repeat(64), cacheDir: join(tmp, "never") }))).message).toMatch(/is not the SHA-256 of RN50/);
  });

  test("cacheDir: CLIP_TS_CACHE, else the platform's user cache", () => {
    expect(cacheDir({ CLIP_TS_CACHE: "/data/m" }, "linux", "/home/u")).toBe("/data/m");
    expect(cacheDir({}, "linux", "/home/u")).toBe("/home/u/.cache/clip-ts");
    expect(cacheDir({ XDG_CACHE_HOME: "/xdg" }, "linux", "/home/u")).toBe("/xdg/clip-ts");
    expect(cacheDir({ XDG_CACHE_HOME: "rel" }, "linux", "/home/u")).toBe("/home/u/.cache/clip-ts"); // XDG: relative is ignored
    expect(cacheDir({}, "darwin", "/Users/u")).toBe("/Users/u/Library/Caches/clip-ts");
    expect(cacheDir({ LOCALAPPDATA: "C:\\Users\\u\\AppData\\Local" }, "win32", "C:\\Users\\u")).toBe("C:\\Users\\u\\AppData\\Local\\clip-ts");
    expect(cacheDir({}, "win32", "C:\\Users\\u")).toBe("C:\\Users\\u\\AppData\\Local\\clip-ts");
  });

  test("a URL's cache name: 16 hex of the URL's hash, then its file name", () => {
    expect(urlFileName("https://h.example/a/ViT%20B.pt?download=1")).toMatch(/^[0-9a-f]{16}-ViT_B\.pt$/);
    expect(urlFileName("https://h.example/a/x.pt")).not.toBe(urlFileName("https://g.example/a/x.pt"));
    expect(urlFileName("https://h.example/")).toMatch(/^[0-9a-f]{16}-model$/);
    expect(cachedPath("ViT-B/32", { cacheDir: "/c" })).toBe("/c/ViT-B-32.pt");
  });
});

describe("resolveModel: downloads", () => {
  test("a name: downloaded through the mirror, verified, renamed into place with its .sha256; then from the cache", async () => {
    const dir = freshDir();
    const calls: [number, number | undefined][] = [];
    const r = await resolveModel("Fake-B/32", opts(dir, { onProgress: (d, t) => void calls.push([d, t]) }));
    expect(r).toEqual({ path: join(dir, "Fake-B-32.pt"), name: "Fake-B/32", url: `${hub.base}/mirror${SERVED.slice(7)}`, sha256: MODEL_SHA, downloaded: true });
    expect(hub.seen.map((s) => s.url)).toEqual([SERVED]);
    expect(readFileSync(r.path).equals(MODEL)).toBe(true);
    expect(readdirSync(dir).sort()).toEqual(["Fake-B-32.pt", "Fake-B-32.pt.sha256"]);
    expect(readFileSync(`${r.path}.sha256`, "utf8")).toBe(`${MODEL_SHA}  Fake-B-32.pt\n`);
    expect(calls.at(-1)).toEqual([MODEL.length, MODEL.length]);
    expect(calls.every(([d], i) => i === 0 || d >= calls[i - 1][0])).toBe(true);

    // from the cache: no request, not even with the server unreachable
    hub.seen = [];
    const again = await resolveModel("Fake-B/32", opts(dir, { env: { CLIP_TS_MODEL_BASE_URL: "http://127.0.0.1:9" } }));
    expect(again).toMatchObject({ path: r.path, downloaded: false, sha256: MODEL_SHA });
    expect(hub.seen).toEqual([]);
  });

  test("a file put in the cache by hand is hashed once (then trusted by its .sha256); a wrong one is replaced", async () => {
    const dir = freshDir();
    mkdirSync(dir);
    const file = join(dir, "Fake-B-32.pt");
    writeFileSync(file, MODEL);
    expect(await resolveModel("Fake-B/32", opts(dir))).toMatchObject({ path: file, downloaded: false });
    expect(readFileSync(`${file}.sha256`, "utf8").startsWith(MODEL_SHA)).toBe(true);
    expect(hub.seen).toEqual([]);

    const wrong = Uint8Array.from(MODEL, (b) => b ^ 0xff);
    writeFileSync(file, wrong);
    rmSync(`${file}.sha256`);
    expect(await resolveModel("Fake-B/32", opts(dir))).toMatchObject({ path: file, downloaded: true });
    expect(readFileSync(file).equals(MODEL)).toBe(true);
  });

  test("an interrupted download is kept and resumed with a Range request", async () => {
    const dir = freshDir();
    hub.mode = "cut-half";
    const e = await failure(resolveModel("Fake-B/32", opts(dir)));
    expect(e.kind).toBe("interrupted");
    expect(e.message).toMatch(new RegExp(`^download of http://127\\.0\\.0\\.1:${hub.port}/mirror/.*Fake-B-32\\.pt broke off after \\d+ of ${MODEL.length} bytes \\(.+\\); run again to resume$`));
    expect(readdirSync(dir)).toEqual(["Fake-B-32.pt.partial"]);
    const kept = statSync(join(dir, "Fake-B-32.pt.partial")).size;
    expect(kept).toBeGreaterThan(0);
    expect(kept).toBeLessThanOrEqual(MODEL.length >> 1);

    hub.mode = "ok";
    hub.seen = [];
    const calls: number[] = [];
    const r = await resolveModel("Fake-B/32", opts(dir, { onProgress: (d) => void calls.push(d) }));
    expect(hub.seen).toEqual([{ method: "GET", url: SERVED, range: `bytes=${kept}-` }]);
    expect(calls[0]).toBe(kept);
    expect(readFileSync(r.path).equals(MODEL)).toBe(true);
    expect(readdirSync(dir).sort()).toEqual(["Fake-B-32.pt", "Fake-B-32.pt.sha256"]);
  });

  test("a server that ignores Range (200) restarts the download from zero", async () => {
    const dir = freshDir();
    mkdirSync(dir);
    writeFileSync(join(dir, "Fake-B-32.pt.partial"), Uint8Array.from(MODEL.subarray(0, 1000), (b) => b ^ 1)); // wrong bytes: must not survive
    hub.mode = "ignore-range";
    const r = await resolveModel("Fake-B/32", opts(dir));
    expect(hub.seen.map((s) => s.range)).toEqual(["bytes=1000-"]);
    expect(readFileSync(r.path).equals(MODEL)).toBe(true);
    expect(readdirSync(dir).sort()).toEqual(["Fake-B-32.pt", "Fake-B-32.pt.sha256"]);
  });

  test("a bad partial (resumed, checksum wrong) is downloaded once more from zero", async () => {
    const dir = freshDir();
    mkdirSync(dir);
    writeFileSync(join(dir, "Fake-B-32.pt.partial"), Uint8Array.from(MODEL.subarray(0, 1000), (b) => b ^ 1));
    const r = await resolveModel("Fake-B/32", opts(dir));
    expect(hub.seen.map((s) => s.range)).toEqual(["bytes=1000-", undefined]);
    expect(readFileSync(r.path).equals(MODEL)).toBe(true);
  });

  test("a checksum mismatch names expected, actual and the URL, and leaves nothing in the cache", async () => {
    const dir = freshDir();
    hub.mode = "wrong-bytes";
    const e = await failure(resolveModel("Fake-B/32", opts(dir)));
    const actual = sha(Uint8Array.from(MODEL, (b) => b ^ 1));
    expect(e.kind).toBe("checksum");
    expect(e.message).toBe(`SHA-256 mismatch for ${hub.base}${SERVED}: expected ${MODEL_SHA}, got ${actual} (the download was discarded)`);
    expect(readdirSync(dir)).toEqual([]);
  });

  test("a file of another size than the table's is refused before it is downloaded", async () => {
    const dir = freshDir();
    const table = { "Fake-B/32": { ...TABLE["Fake-B/32"], bytes: MODEL.length + 1 } };
    const e = await failure(resolveModel("Fake-B/32", opts(dir, { models: table })));
    expect(e.message).toBe(`${hub.base}${SERVED} is ${MODEL.length} bytes, expected ${MODEL.length + 1} (the download was discarded)`);
    expect(readdirSync(dir)).toEqual([]);
  });

  test("HTTP 404: one line with the status and the URL", async () => {
    const dir = freshDir();
    const e = await failure(resolveModel("Fake-B/32", opts(dir, { env: { CLIP_TS_MODEL_BASE_URL: `${hub.base}/elsewhere` } })));
    expect(e.kind).toBe("http");
    expect(e.message).toBe(`HTTP 404 Not Found from ${hub.base}/elsewhere${SERVED.slice(7)}`);
    expect(readdirSync(dir)).toEqual([]);
  });

  test("an unreachable host: the offline line, ending with the caller's hint", async () => {
    const closed = createServer();
    await new Promise<void>((r) => closed.listen(0, "127.0.0.1", r));
    const port = (closed.address() as { port: number }).port;
    await new Promise((r) => closed.close(r));
    const dir = freshDir();
    const e = await failure(resolveModel("Fake-B/32", opts(dir, { env: { CLIP_TS_MODEL_BASE_URL: `http://127.0.0.1:${port}` }, offlineHint: "pass --model PATH" })));
    expect(e.kind).toBe("offline");
    expect(e.message).toBe(`could not reach 127.0.0.1:${port} (ECONNREFUSED); download http://127.0.0.1:${port}${SERVED.slice(7)} yourself and pass --model PATH`);
    expect(readdirSync(dir)).toEqual([]);

    // an interrupted download that cannot be resumed now stays for later
    mkdirSync(join(dir, "b"));
    writeFileSync(join(dir, "b", "Fake-B-32.pt.partial"), MODEL.subarray(0, 10));
    await failure(resolveModel("Fake-B/32", opts(join(dir, "b"), { env: { CLIP_TS_MODEL_BASE_URL: `http://127.0.0.1:${port}` } })));
    expect(readdirSync(join(dir, "b"))).toEqual(["Fake-B-32.pt.partial"]);
  });

  test("a download that stops sending fails after stallMs and is kept for resuming", async () => {
    const dir = freshDir();
    hub.mode = "stall-half";
    const t0 = Date.now();
    const e = await failure(resolveModel("Fake-B/32", opts(dir, { stallMs: 300 })));
    expect(Date.now() - t0).toBeLessThan(10_000);
    expect(e.message).toMatch(/broke off after \d+ of 300000 bytes \(no data for 300 ms\); run again to resume$/);
    expect(readdirSync(dir)).toEqual(["Fake-B-32.pt.partial"]);
    hub.server.closeAllConnections();
  });

  test("a URL: cached under its hash and name; verified only when sha256 is given", async () => {
    const dir = freshDir();
    const other = randomBytes(5000);
    hub.files.set("/files/weights.bin", other);
    const url = `${hub.base}/files/weights.bin`;
    const r = await resolveModel(url, { cacheDir: dir });
    expect(r).toEqual({ path: join(dir, urlFileName(url)), url, sha256: sha(other), downloaded: true, name: undefined });
    expect(readFileSync(r.path).equals(other)).toBe(true);
    hub.seen = [];
    expect(await resolveModel(url, { cacheDir: dir })).toMatchObject({ path: r.path, downloaded: false });
    expect(await resolveModel(url, { cacheDir: dir, sha256: sha(other).toUpperCase() })).toMatchObject({ path: r.path, downloaded: false });
    expect(hub.seen).toEqual([]);

    const dir2 = freshDir();
    const e = await failure(resolveModel(url, { cacheDir: dir2, sha256: "1".repeat(64) }));
    expect(e.message).toBe(`SHA-256 mismatch for ${url}: expected ${"1".repeat(64)}, got ${sha(other)} (the download was discarded)`);
    expect(readdirSync(dir2)).toEqual([]);
    expect(await resolveModel(url, { cacheDir: dir2, sha256: sha(other) })).toMatchObject({ downloaded: true, sha256: sha(other) });
  });
});

describe("resolveModel: concurrent downloads", () => {
  test("two calls for the same name: one download, both get the one correct file", async () => {
    const dir = freshDir();
    hub.mode = "slow";
    const waited: number[] = [];
    const [a, b] = await Promise.all([
      resolveModel("Fake-B/32", opts(dir)),
      resolveModel("Fake-B/32", opts(dir, { onProgress: (d) => void waited.push(d) })),
    ]);
    expect(a.path).toBe(b.path);
    expect([a.downloaded, b.downloaded].sort()).toEqual([false, true]);
    expect(hub.seen.filter((s) => s.url === SERVED)).toHaveLength(1);
    expect(readFileSync(a.path).equals(MODEL)).toBe(true);
    expect(readdirSync(dir).sort()).toEqual(["Fake-B-32.pt", "Fake-B-32.pt.sha256"]);
  });

  // src/hub.ts bundled for child processes (node cannot import .ts itself)
  let bundle: string;
  beforeAll(async () => {
    const { build } = await import("esbuild");
    bundle = join(tmp, "hub.mjs");
    await build({ entryPoints: ["src/hub.ts"], bundle: true, platform: "node", format: "esm", outfile: bundle, logLevel: "error" });
  });
  const CHILD = "const { resolveModel } = await import(process.argv[1]); console.log(JSON.stringify(await resolveModel(process.argv[2], JSON.parse(process.argv[3]))));";
  const childArgs = (dir: string) => ["--input-type=module", "-e", CHILD, bundle, "Fake-B/32", JSON.stringify(opts(dir))];

  test("two processes downloading the same name: one download, one correct file", async () => {
    const dir = freshDir();
    hub.mode = "slow";
    const child = () => new Promise<string>((res, rej) => execFile(process.execPath, childArgs(dir), { timeout: 30_000 }, (e, out, err) => (e ? rej(new Error(`${e.message} ${err}`)) : res(out))));
    const [a, b] = (await Promise.all([child(), child()])).map((o) => JSON.parse(o) as { path: string; downloaded: boolean });
    expect(a.path).toBe(join(dir, "Fake-B-32.pt"));
    expect(b.path).toBe(a.path);
    expect([a.downloaded, b.downloaded].sort()).toEqual([false, true]);
    expect(hub.seen.filter((s) => s.url === SERVED)).toHaveLength(1);
    expect(readFileSync(a.path).equals(MODEL)).toBe(true);
    expect(readdirSync(dir).sort()).toEqual(["Fake-B-32.pt", "Fake-B-32.pt.sha256"]);
  });

  test("a process killed (SIGKILL) mid-download: the next call breaks its lock and resumes its partial", async () => {
    const dir = freshDir();
    hub.mode = "slow";
    hub.slowMs = 1000; // killed after the first chunk, long before the second
    const child = spawn(process.execPath, childArgs(dir), { stdio: "ignore" });
    const exited = new Promise((r) => child.on("exit", r));
    let partial: string | undefined;
    for (let i = 0; i < 200 && !partial; i++) {
      await new Promise((r) => setTimeout(r, 50));
      const name = existsSync(dir) ? readdirSync(dir).find((n) => n.startsWith(`Fake-B-32.pt.partial-${child.pid}-`)) : undefined;
      if (name && statSync(join(dir, name)).size > 0) partial = name;
    }
    child.kill("SIGKILL");
    await exited;
    expect(partial).toBeDefined();
    expect(existsSync(join(dir, "Fake-B-32.pt.lock"))).toBe(true);
    const kept = statSync(join(dir, partial!)).size;
    expect(kept).toBeLessThan(MODEL.length);
    hub.mode = "ok";
    hub.seen = [];
    const r = await resolveModel("Fake-B/32", opts(dir));
    expect(hub.seen.map((s) => s.range)).toEqual([`bytes=${kept}-`]);
    expect(readFileSync(r.path).equals(MODEL)).toBe(true);
    expect(readdirSync(dir).sort()).toEqual(["Fake-B-32.pt", "Fake-B-32.pt.sha256"]);
  });

  test("a download killed mid-way (its lock and partial left by a process that is gone) is resumed", async () => {
    const dir = freshDir();
    mkdirSync(dir);
    const dead = spawnSync(process.execPath, ["-e", ""]).pid!;
    writeFileSync(join(dir, "Fake-B-32.pt.lock"), JSON.stringify({ pid: dead, host: hostname(), token: "0badc0de" }));
    writeFileSync(join(dir, `Fake-B-32.pt.partial-${dead}-0badc0de`), MODEL.subarray(0, 100_000));
    const r = await resolveModel("Fake-B/32", opts(dir));
    expect(hub.seen.map((s) => s.range)).toEqual(["bytes=100000-"]);
    expect(readFileSync(r.path).equals(MODEL)).toBe(true);
    expect(readdirSync(dir).sort()).toEqual(["Fake-B-32.pt", "Fake-B-32.pt.sha256"]);
  });

  test("a lock of a live process that is not refreshed for lockStaleMs is broken", async () => {
    const dir = freshDir();
    mkdirSync(dir);
    const lock = join(dir, "Fake-B-32.pt.lock");
    writeFileSync(lock, JSON.stringify({ pid: process.pid, host: hostname(), token: "feedface" }));
    const old = new Date(Date.now() - 3_600_000);
    utimesSync(lock, old, old);
    const r = await resolveModel("Fake-B/32", opts(dir, { lockStaleMs: 5_000 }));
    expect(readFileSync(r.path).equals(MODEL)).toBe(true);
    expect(existsSync(lock)).toBe(false);
  });
});

// ---- the browser counterpart, with a Cache API stand-in

class MemoryCaches implements CacheStorageLike {
  stores = new Map<string, Map<string, Uint8Array>>();
  async open(name: string): Promise<CacheLike> {
    const store = this.stores.get(name) ?? new Map<string, Uint8Array>();
    this.stores.set(name, store);
    return {
      match: async (url) => (store.has(url) ? new Response(store.get(url)!.slice(), { headers: { "content-length": String(store.get(url)!.length) } }) : undefined),
      put: async (url, response) => void store.set(url, new Uint8Array(await response.arrayBuffer())),
    };
  }
}

describe("hub_browser: fetchModelBytes", () => {
  test("a name: streamed with progress, verified, stored in the Cache API; then served from it", async () => {
    const caches = new MemoryCaches();
    const calls: [number, number | undefined][] = [];
    const bytes = await fetchModelBytes("Fake-B/32", { caches, models: TABLE, baseUrl: `${hub.base}/mirror`, onProgress: (d, t) => void calls.push([d, t]) });
    expect(Buffer.from(bytes).equals(MODEL)).toBe(true);
    expect(calls[0]).toEqual([0, MODEL.length]);
    expect(calls.at(-1)).toEqual([MODEL.length, MODEL.length]);
    const stored = caches.stores.get("clip-ts-models")!;
    expect([...stored.keys()]).toEqual([`${hub.base}${SERVED}`]);

    hub.seen = [];
    const cached = await fetchModelBytes("Fake-B/32", { caches, models: TABLE, baseUrl: `${hub.base}/mirror`, fetch: () => Promise.reject(new Error("no network")) });
    expect(Buffer.from(cached).equals(MODEL)).toBe(true);
    expect(hub.seen).toEqual([]);
  });

  test("checksum mismatch, 404 and an unreachable host fail in one line; nothing is stored", async () => {
    const caches = new MemoryCaches();
    hub.mode = "wrong-bytes";
    const e = await failure(fetchModelBytes("Fake-B/32", { caches, models: TABLE, baseUrl: `${hub.base}/mirror` }));
    expect(e.message).toMatch(new RegExp(`^SHA-256 mismatch for ${hub.base}${SERVED}: expected ${MODEL_SHA}, got [0-9a-f]{64}`));
    hub.mode = "ok";
    expect((await failure(fetchModelBytes(`${hub.base}/nothing.pt`, { caches }))).message).toBe(`HTTP 404 Not Found from ${hub.base}/nothing.pt`);
    const offline = await failure(fetchModelBytes("http://127.0.0.1:9/m.pt", { caches }));
    expect(offline.message).toMatch(/^could not reach 127\.0\.0\.1:9 \(.+\); download http:\/\/127\.0\.0\.1:9\/m\.pt yourself and pass its bytes instead$/);
    expect(caches.stores.get("clip-ts-models")?.size ?? 0).toBe(0);
  });

  test("cache: false, and no Cache API at all, still fetch; a URL with sha256 is checked", async () => {
    const caches = new MemoryCaches();
    const other = randomBytes(777);
    hub.files.set("/files/b.bin", other);
    const url = `${hub.base}/files/b.bin`;
    expect(Buffer.from(await fetchModelBytes(url, { caches, cache: false })).equals(other)).toBe(true);
    expect(caches.stores.size).toBe(0);
    expect(Buffer.from(await fetchModelBytes(url, { sha256: sha(other) })).equals(other)).toBe(true); // Node 20: no globalThis.caches
    await expect(fetchModelBytes(url, { sha256: "2".repeat(64), caches })).rejects.toThrow(/expected 2{64}, got/);
    expect(resolveModelUrl("ViT-B/32").url).toBe(MODELS["ViT-B/32"].url);
    expect(() => resolveModelUrl("ViT-B/32", { sha256: "3".repeat(64) })).toThrow(/is not the SHA-256 of ViT-B\/32/);
  });
});

test("hub_browser bundles for browsers without any node: import", async () => {
  const { build } = await import("esbuild");
  const out = await build({ entryPoints: ["src/hub_browser.ts"], bundle: true, platform: "browser", format: "esm", write: false, logLevel: "error" });
  const code = out.outputFiles[0].text;
  expect(code).toContain("clip-ts-models");
  expect(code).not.toMatch(/["']node:/);
});

// ---- the CLI

describe("clip-ts models", () => {
  const saved = { cache: process.env.CLIP_TS_CACHE, base: process.env.CLIP_TS_MODEL_BASE_URL };
  afterEach(() => {
    for (const [k, v] of [["CLIP_TS_CACHE", saved.cache], ["CLIP_TS_MODEL_BASE_URL", saved.base]] as const) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  });

  async function run(...argv: string[]) {
    const io = memoryIo();
    const code = await runCli(argv, io);
    return { code, stdout: io.out(), stderr: io.err() };
  }

  test("lists the nine names with sizes, what is cached (and partly), and where; --json", async () => {
    const dir = freshDir();
    mkdirSync(dir);
    process.env.CLIP_TS_CACHE = dir;
    writeFileSync(join(dir, "RN50.pt"), "x");
    writeFileSync(join(dir, "ViT-B-16.pt.partial"), new Uint8Array(3 * 2 ** 20));
    const r = await run("models");
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toBe("");
    const lines = r.stdout.trimEnd().split("\n");
    expect(lines[0]).toBe(`cache: ${dir}`);
    expect(lines[2]).toMatch(/^name\s+size\s+cached\s+path$/);
    expect(lines.slice(3).map((l) => l.split(/\s{2,}/)[0])).toEqual(availableModels());
    expect(lines.find((l) => l.startsWith("RN50 "))).toMatch(new RegExp(`^RN50 +244 MiB  yes +${join(dir, "RN50.pt")}$`));
    expect(lines.find((l) => l.startsWith("ViT-B/32 "))).toMatch(/ 338 MiB  no +\S+ViT-B-32\.pt$/);
    expect(lines.find((l) => l.startsWith("ViT-B/16 "))).toMatch(/ 335 MiB  partial 3\.0 MiB +\S+ViT-B-16\.pt$/);

    process.env.CLIP_TS_MODEL_BASE_URL = "http://10.1.2.3:81/m";
    const j = JSON.parse((await run("models", "--json")).stdout) as { cacheDir: string; models: Record<string, unknown>[] };
    expect(j.cacheDir).toBe(dir);
    expect(j.models).toHaveLength(9);
    expect(j.models[0]).toEqual({
      name: "RN50", url: `http://10.1.2.3:81/m${new URL(MODELS.RN50.url).pathname}`, sha256: MODELS.RN50.sha256,
      bytes: 255_827_503, cached: true, path: join(dir, "RN50.pt"), partialBytes: null,
    });
    expect(j.models[6]).toMatchObject({ name: "ViT-B/16", cached: false, partialBytes: 3 * 2 ** 20 });
    expect(await cacheStatus("ViT-B/16", { cacheDir: dir })).toEqual({ path: join(dir, "ViT-B-16.pt"), cached: false, partialBytes: 3 * 2 ** 20 });
  });

  test("--download: a URL prints its cached path; a wrong file and an unknown name fail in one line", async () => {
    const dir = freshDir();
    process.env.CLIP_TS_CACHE = dir;
    const url = `${hub.base}/files/weights.bin`;
    hub.files.set("/files/weights.bin", randomBytes(100));
    const ok = await run("models", "--download", url);
    expect(ok).toEqual({ code: 0, stdout: `${join(dir, urlFileName(url))}\n`, stderr: "" });

    // the real ViT-B/32 entry, from a "mirror" serving other bytes: refused by its SHA-256
    process.env.CLIP_TS_MODEL_BASE_URL = `${hub.base}/bad`;
    hub.files.set(`/bad${new URL(MODELS["ViT-B/32"].url).pathname}`, randomBytes(1000));
    const bad = await run("models", "--download", "ViT-B/32");
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/^clip-ts models: .* is 1000 bytes, expected 353976522 \(the download was discarded\)\n$/);

    const unknown = await run("models", "--download", "ViT-B-32");
    expect(unknown.code).toBe(2);
    expect(unknown.stderr.trimEnd().split("\n")).toHaveLength(1);
    expect(unknown.stderr).toMatch(/^clip-ts models: --download: no model named "ViT-B-32" \(did you mean "ViT-B\/32"\?\); names are openai\/CLIP's: RN50, /);
  });
});

describe("progress for downloads", () => {
  test("bytes, rate and time left; no bar while the total is unknown; the old units render as before", () => {
    let now = 0;
    const writes: string[] = [];
    const sink = { write: (s: string) => void writes.push(s), isTTY: true, columns: 100 };
    const bar = new Progress(sink, "downloading RN50", 100 * 2 ** 20, "download", () => now);
    bar.update(10 * 2 ** 20); // a resumed download: the rate counts from here
    now = 2000;
    bar.update(30 * 2 ** 20);
    expect(writes[0]).toMatch(/^\rdownloading RN50 \[#+\.+\]  10% 10\/100 MiB\x1b\[K$/);
    expect(writes[1]).toMatch(/^\rdownloading RN50 \[#+\.+\]  30% 30\/100 MiB  10 MiB\/s  ETA 0:07\x1b\[K$/);
    expect(new Progress(sink, "d", 0, "download", () => 0).render(5 * 2 ** 20)).toBe("d 5.0 MiB");

    const p = downloadProgress(sink, "dl", () => now);
    writes.length = 0;
    p.onProgress(0, undefined);
    p.onProgress(2 ** 20, 2 * 2 ** 20);
    p.finish();
    expect(writes.at(-1)).toBe("\r\x1b[K");
    expect(writes.some((w) => /dl \[#+\.+\]  50% 1\.0\/2\.0 MiB/.test(w))).toBe(true);
    const quiet: string[] = [];
    downloadProgress({ write: (s) => void quiet.push(s), isTTY: false }, "dl").onProgress(1, 2);
    expect(quiet).toEqual([]);
  });
});
