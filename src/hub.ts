// Models by name, as clip.load("ViT-B/32"): a download cache for Node. A name of MODELS or an http(s) URL becomes a
// file in the cache, downloaded once, streamed to disk while its SHA-256 is computed, verified, then renamed into
// place; anything else is passed through as a local path.
//
// Cache layout (cacheDir()):
//   <file>                    a complete, verified download (only ever created by a rename after verification)
//   <file>.sha256             its SHA-256 ("<hex>  <file>", as sha256sum writes), written just before that rename
//   <file>.lock               held by the one process (or call) downloading <file>: {"pid", "host", "token"}
//   <file>.partial            an interrupted download at rest, resumed with an HTTP Range request
//   <file>.partial-<pid>-<t>  the download in progress, private to the lock holder
// A URL's file is "<16 hex of the URL's SHA-256>-<its last path segment>"; a name's is its URL's last segment
// (ViT-B-32.pt, as clip.py's ~/.cache/clip).
//
// Re-verification: a cached file with a .sha256 that names the expected hash (and, for a name, of the table's size)
// is used without hashing it again (hashing 350 MB takes about a second per load). A file without one (copied in
// by hand, e.g. from ~/.cache/clip) is hashed once: it then gets its .sha256, or is downloaded again if it differs.
//
// Locking: the lock is created with O_EXCL. Waiters poll it and report the holder's progress; a lock is broken
// when its process is gone (same host) or it has not been refreshed (the holder touches it every few seconds)
// for lockStaleMs. The partial is taken over by renaming it to a private name, so even two holders (two waiters
// breaking the same stale lock at once) never write one file: they download twice and rename identical files.
import { createHash, randomBytes, type Hash } from "node:crypto";
import { createReadStream } from "node:fs";
import { mkdir, open, readdir, readFile, rename, rm, stat, unlink, utimes, writeFile } from "node:fs/promises";
import { homedir, hostname } from "node:os";
import { basename, join, posix, resolve, win32 } from "node:path";
import {
  checkSha256, checksumError, httpError, HubError, isHttpUrl, lookup, MODELS, modelUrl, offlineError, reason,
  type HubEnv, type ModelTable,
} from "./hub_models.js";

export {
  MODELS, availableModels, modelUrl, unknownModelMessage, formatBytes, HubError, isHttpUrl,
  type ModelEntry, type ModelTable, type HubEnv, type HubErrorKind,
} from "./hub_models.js";

export type ProgressCallback = (done: number, total: number | undefined) => void;

export interface ResolveOptions {
  /** The expected SHA-256 of a URL's file (a name's is the table's; giving another one for a name is an error). */
  sha256?: string;
  /** Default: cacheDir(env). */
  cacheDir?: string;
  /** CLIP_TS_MODEL_BASE_URL, CLIP_TS_CACHE (default process.env). */
  env?: HubEnv;
  /** The named models (default MODELS). */
  models?: ModelTable;
  /** Bytes done and the total (undefined when the server does not say), during a download or while waiting for
   *  another process's download of the same file. */
  onProgress?: ProgressCallback;
  fetch?: typeof globalThis.fetch;
  /** Ends the offline message "download <url> yourself and …" (default: "pass the file's path instead"). */
  offlineHint?: string;
  /** A download that receives nothing for this long fails (kept for resuming). Default 60 s. */
  stallMs?: number;
  /** A lock not refreshed for this long is broken. Default 60 s. */
  lockStaleMs?: number;
  /** How often a waiter looks at the lock. Default 250 ms. */
  pollMs?: number;
}

export interface ResolvedModel {
  /** The file to load: in the cache, or the source itself when it was neither a name nor a URL. */
  path: string;
  /** The model name, for a name. */
  name?: string;
  /** What was downloaded from (for a name: after CLIP_TS_MODEL_BASE_URL). */
  url?: string;
  /** The file's SHA-256, when verified or computed at download. */
  sha256?: string;
  /** True when this call downloaded the file (false: it was in the cache). */
  downloaded?: boolean;
}

const DEFAULTS = { stallMs: 60_000, lockStaleMs: 60_000, pollMs: 250, offlineHint: "pass the file's path instead" };

/**
 * The cache directory: CLIP_TS_CACHE if set; else the platform's user cache: $XDG_CACHE_HOME/clip-ts or
 * ~/.cache/clip-ts (Linux and others), ~/Library/Caches/clip-ts (macOS), %LOCALAPPDATA%\clip-ts (Windows).
 */
export function cacheDir(env: HubEnv = process.env, platform: NodeJS.Platform = process.platform, home = homedir()): string {
  if (env.CLIP_TS_CACHE) return resolve(env.CLIP_TS_CACHE);
  if (platform === "win32") return win32.join(env.LOCALAPPDATA || win32.join(home, "AppData", "Local"), "clip-ts");
  if (platform === "darwin") return posix.join(home, "Library", "Caches", "clip-ts");
  const xdg = env.XDG_CACHE_HOME;
  return posix.join(xdg && posix.isAbsolute(xdg) ? xdg : posix.join(home, ".cache"), "clip-ts"); // XDG: relative = unset
}

/** The cache file name of a URL: 16 hex digits of the URL's SHA-256, then its last path segment made file-safe. */
export function urlFileName(url: string): string {
  let last = new URL(url).pathname.split("/").pop() ?? "";
  try {
    last = decodeURIComponent(last);
  } catch { /* keep it encoded */ }
  const safe = last.replace(/[^A-Za-z0-9._-]/g, "_").replace(/^\.+/, "").slice(-100) || "model";
  return `${createHash("sha256").update(url).digest("hex").slice(0, 16)}-${safe}`;
}

interface Target {
  url: string;
  file: string;
  expected?: string;
  bytes?: number;
  name?: string;
}

function target(source: string, opts: ResolveOptions): Target | undefined {
  const models = opts.models ?? MODELS;
  const env = opts.env ?? process.env;
  const dir = opts.cacheDir ?? cacheDir(env);
  const sha256 = checkSha256(opts.sha256);
  if (Object.hasOwn(models, source)) {
    const m = lookup(source, models);
    if (sha256 !== undefined && sha256 !== m.sha256.toLowerCase()) {
      throw new HubError("bad-option", `sha256 ${sha256} is not the SHA-256 of ${source} (${m.sha256})`);
    }
    const file = join(dir, basename(new URL(m.url).pathname));
    return { url: modelUrl(source, env, models), file, expected: m.sha256.toLowerCase(), bytes: m.bytes, name: source };
  }
  if (isHttpUrl(source)) return { url: source, file: join(dir, urlFileName(source)), expected: sha256 };
  return undefined;
}

/** Where a name or URL is (or would be) cached; undefined for anything else. */
export function cachedPath(source: string, opts: Pick<ResolveOptions, "cacheDir" | "env" | "models"> = {}): string | undefined {
  return target(source, opts)?.file;
}

export interface CacheStatus {
  path: string;
  /** The complete file is there (not hashed here). */
  cached: boolean;
  /** Bytes of an interrupted or running download, if any. */
  partialBytes?: number;
}

/** What the cache holds for a name or URL, without hashing or downloading anything. */
export async function cacheStatus(source: string, opts: Pick<ResolveOptions, "cacheDir" | "env" | "models"> = {}): Promise<CacheStatus> {
  const t = target(source, opts);
  if (!t) throw new HubError("unknown-model", `"${source}" is neither a model name nor an http(s) URL`);
  const cached = (await statOrUndefined(t.file))?.isFile() ?? false;
  let partialBytes: number | undefined;
  for (const p of await partialsOf(t.file)) partialBytes = Math.max(partialBytes ?? 0, (await statOrUndefined(p))?.size ?? 0);
  return { path: t.file, cached, partialBytes };
}

/**
 * A name of the table → its cached file (downloaded and verified if absent); an http(s) URL → its cached file
 * (verified if `sha256` is given); anything else → `{ path: source }` unchanged (a local path for the caller).
 * Failures are HubErrors with one-line messages.
 */
export async function resolveModel(source: string, opts: ResolveOptions = {}): Promise<ResolvedModel> {
  const t = target(source, opts);
  if (!t) return { path: source };
  const o = { ...DEFAULTS, ...definedOnly(opts) };
  const dir = join(t.file, "..");
  try {
    await mkdir(dir, { recursive: true });
  } catch (e) {
    throw new HubError("cache", `cannot create the model cache ${dir} (${reason(e)}); set CLIP_TS_CACHE to a writable directory`);
  }
  const done = (sha256: string | undefined, downloaded: boolean): ResolvedModel =>
    ({ path: t.file, name: t.name, url: t.url, sha256, downloaded });
  for (let attempt = 0; attempt < 1000; attempt++) {
    const hit = await fromCache(t);
    if (hit.ok) return done(hit.sha256, false);
    const lock = await tryLock(t.file);
    if (!lock) {
      await waitOnLock(t, o);
      continue;
    }
    const refresh = setInterval(() => void utimes(lock.path, new Date(), new Date()).catch(() => {}), o.lockStaleMs / 4);
    refresh.unref();
    try {
      const again = await fromCache(t); // another holder may have finished between our look and our lock
      if (again.ok) return done(again.sha256, false);
      return done(await download(t, lock, o), true);
    } finally {
      clearInterval(refresh);
      await releaseLock(lock);
    }
  }
  throw new HubError("cache", `gave up waiting for other processes downloading ${t.file}`);
}

// ---- the cache

async function fromCache(t: Target): Promise<{ ok: boolean; sha256?: string }> {
  const st = await statOrUndefined(t.file);
  if (!st) return { ok: false };
  if (!st.isFile()) throw new HubError("cache", `${t.file} exists and is not a file`);
  const recorded = await readSidecar(t.file);
  if (t.expected === undefined) return { ok: true, sha256: recorded }; // a URL's file is only ever renamed in complete
  if (t.bytes !== undefined && st.size !== t.bytes) return { ok: false };
  if (recorded === t.expected) return { ok: true, sha256: recorded };
  const actual = await hashFile(t.file);
  if (actual !== t.expected) return { ok: false }; // downloaded again; the rename replaces it
  await writeSidecar(t.file, actual);
  return { ok: true, sha256: actual };
}

async function readSidecar(file: string): Promise<string | undefined> {
  try {
    return /^[0-9a-f]{64}\b/.exec(await readFile(`${file}.sha256`, "utf8"))?.[0];
  } catch {
    return undefined;
  }
}

async function writeSidecar(file: string, sha256: string): Promise<void> {
  await writeFile(`${file}.sha256`, `${sha256}  ${basename(file)}\n`);
}

async function hashFile(path: string): Promise<string> {
  return (await hashInto(createHash("sha256"), path)).digest("hex");
}

async function hashInto(hash: Hash, path: string): Promise<Hash> {
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) hash.update(chunk as Buffer);
  return hash;
}

/** The partial downloads of a file: the one at rest and those of holders (alive or not). */
async function partialsOf(file: string): Promise<string[]> {
  const prefix = `${basename(file)}.partial`;
  let names: string[];
  try {
    names = await readdir(join(file, ".."));
  } catch {
    return [];
  }
  return names.filter((n) => n === prefix || n.startsWith(`${prefix}-`)).map((n) => join(file, "..", n));
}

// ---- the lock

interface Lock {
  path: string;
  pid: number;
  host: string;
  token: string;
}

const privatePartial = (file: string, l: { pid: number; token: string }) => `${file}.partial-${l.pid}-${l.token}`;

async function tryLock(file: string): Promise<Lock | undefined> {
  const lock: Lock = { path: `${file}.lock`, pid: process.pid, host: hostname(), token: randomBytes(6).toString("hex") };
  try {
    await writeFile(lock.path, JSON.stringify({ pid: lock.pid, host: lock.host, token: lock.token }), { flag: "wx" });
    return lock;
  } catch (e) {
    if ((e as { code?: string }).code === "EEXIST") return undefined;
    throw new HubError("cache", `cannot lock ${lock.path} (${reason(e)}); set CLIP_TS_CACHE to a writable directory`);
  }
}

async function releaseLock(lock: Lock): Promise<void> {
  try {
    const held = JSON.parse(await readFile(lock.path, "utf8")) as { token?: string };
    if (held.token === lock.token) await unlink(lock.path); // not a lock someone took after breaking ours
  } catch { /* gone already */ }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as { code?: string }).code === "EPERM";
  }
}

/** One look at another holder's lock: break it if stale, else report its progress and sleep. */
async function waitOnLock(t: Target, o: ResolveOptions & typeof DEFAULTS): Promise<void> {
  const path = `${t.file}.lock`;
  let text: string, mtime: number;
  try {
    [text, mtime] = await Promise.all([readFile(path, "utf8"), stat(path).then((s) => s.mtimeMs)]);
  } catch {
    return; // released meanwhile
  }
  let held: Partial<Lock> = {};
  try {
    held = JSON.parse(text) as Partial<Lock>;
  } catch { /* being written: judged by its age */ }
  const dead = held.host === hostname() && typeof held.pid === "number" && !alive(held.pid);
  if (dead || Date.now() - mtime > o.lockStaleMs) {
    await unlink(path).catch(() => {});
    return;
  }
  if (o.onProgress && typeof held.pid === "number" && typeof held.token === "string") {
    const st = await statOrUndefined(privatePartial(t.file, { pid: held.pid, token: held.token }));
    if (st) o.onProgress(st.size, t.bytes);
  }
  await new Promise((r) => setTimeout(r, o.pollMs));
}

// ---- the download, by the lock holder

/** Takes over an interrupted download: the one at rest, else the largest left by a process that is gone. */
async function adoptPartial(t: Target, mine: string): Promise<number> {
  let best: { path: string; size: number } | undefined;
  for (const p of await partialsOf(t.file)) {
    const m = /\.partial-(\d+)-[0-9a-f]+$/.exec(p);
    if (m && alive(Number(m[1]))) continue; // another holder's (only after a broken lock) or ours
    const size = (await statOrUndefined(p))?.size;
    if (size === undefined) continue;
    if (!best || size > best.size) {
      if (best) await rm(best.path, { force: true });
      best = { path: p, size };
    } else {
      await rm(p, { force: true });
    }
  }
  if (!best) return 0;
  try {
    await rename(best.path, mine); // atomic: only one holder gets it
    return best.size;
  } catch {
    return 0;
  }
}

class Stalled extends Error {}

/** Downloads t.file under the lock; returns its SHA-256. On failure what was received is left at rest for resuming
 *  (a wrong download is deleted). */
async function download(t: Target, lock: Lock, o: ResolveOptions & typeof DEFAULTS, allowResume = true): Promise<string> {
  try {
    return await transfer(t, lock, o, allowResume);
  } catch (e) {
    await rename(privatePartial(t.file, lock), `${t.file}.partial`).catch(() => {});
    throw e;
  }
}

async function transfer(t: Target, lock: Lock, o: ResolveOptions & typeof DEFAULTS, allowResume: boolean): Promise<string> {
  const mine = privatePartial(t.file, lock);
  const discard = () => rm(mine, { force: true });
  let start = allowResume ? await adoptPartial(t, mine) : 0;
  if (t.bytes !== undefined && start > t.bytes) {
    await discard();
    start = 0;
  }
  let hash = createHash("sha256");
  if (start > 0) {
    try {
      await hashInto(hash, mine);
    } catch {
      await discard();
      return download(t, lock, o, false);
    }
  }
  let total = t.bytes;
  if (!(t.bytes !== undefined && start === t.bytes)) {
    // the watchdog: nothing for stallMs, from the request on, aborts
    const abort = new AbortController();
    let timer: NodeJS.Timeout | undefined;
    const kick = () => {
      clearTimeout(timer);
      timer = setTimeout(() => abort.abort(new Stalled()), o.stallMs);
    };
    let done = start;
    const failed = (e: unknown) => {
      const why = abort.signal.aborted ? `no data for ${o.stallMs >= 1000 ? `${Math.round(o.stallMs / 1000)} s` : `${o.stallMs} ms`}` : reason(e);
      return new HubError("interrupted", `download of ${t.url} broke off after ${done} of ${total ?? "?"} bytes (${why}); run again to resume`, t.url);
    };
    kick();
    try {
      let response: Response;
      try {
        response = await (o.fetch ?? globalThis.fetch)(t.url, {
          headers: { "Accept-Encoding": "identity", ...(start > 0 ? { Range: `bytes=${start}-` } : {}) }, signal: abort.signal,
        });
      } catch (e) {
        if (abort.signal.aborted) throw failed(e);
        throw offlineError(t.url, e, o.offlineHint);
      }
      const length = contentLength(response);
      if (start > 0 && response.status === 200) {
        // the server ignored the range: this response is the whole file
        await discard();
        start = done = 0;
        hash = createHash("sha256");
      } else if (start > 0 && !(response.status === 206 && rangeStart(response) === start)) {
        await response.body?.cancel().catch(() => {});
        if (response.status === 206 || response.status === 416) {
          // a range we did not ask for, or refused (the file changed?): from the beginning
          await discard();
          clearTimeout(timer);
          return download(t, lock, o, false);
        }
      }
      if (!response.ok) {
        await response.body?.cancel().catch(() => {});
        throw httpError(t.url, response.status, response.statusText);
      }
      if (length !== undefined) total = start + length;
      if (t.bytes !== undefined && total !== t.bytes) {
        await response.body?.cancel().catch(() => {});
        await discard();
        throw new HubError("checksum", `${t.url} is ${total} bytes, expected ${t.bytes} (the download was discarded)`, t.url);
      }
      o.onProgress?.(done, total);
      const out = await open(mine, start > 0 ? "a" : "w");
      try {
        if (!response.body) throw new Error("no response body");
        const reader = response.body.getReader();
        for (;;) {
          const { done: end, value } = await reader.read();
          if (end) break;
          kick();
          await out.write(value);
          hash.update(value);
          done += value.byteLength;
          o.onProgress?.(done, total);
        }
        if (total !== undefined && done !== total) throw new Error(`the server sent ${done - start} of ${total - start} bytes`);
        await out.sync();
      } catch (e) {
        await out.close().catch(() => {});
        throw e instanceof HubError ? e : failed(e);
      }
      await out.close();
    } finally {
      clearTimeout(timer);
    }
  }
  const actual = hash.digest("hex");
  if (t.expected !== undefined && actual !== t.expected) {
    await discard();
    if (start > 0) return download(t, lock, o, false); // a bad partial: once more from the beginning
    throw checksumError(t.url, t.expected, actual);
  }
  await writeSidecar(t.file, actual);
  try {
    await rename(mine, t.file);
  } catch (e) {
    // Windows refuses to replace a file in use: one a second holder (after a broken lock) put there, the same bytes
    if (!(await statOrUndefined(t.file))?.isFile()) throw e;
    await discard();
  }
  return actual;
}

function contentLength(r: Response): number | undefined {
  const v = r.headers.get("content-length");
  return v !== null && /^\d+$/.test(v) ? Number(v) : undefined;
}

function rangeStart(r: Response): number | undefined {
  const m = /^bytes (\d+)-\d+\/(\d+|\*)$/.exec(r.headers.get("content-range") ?? "");
  return m ? Number(m[1]) : undefined;
}

async function statOrUndefined(path: string) {
  try {
    return await stat(path);
  } catch {
    return undefined;
  }
}

function definedOnly<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
