// Models by name in a browser: the bytes of a named model (or any URL), streamed with progress, verified, and kept
// in the Cache API so the next visit loads them without the network. No node: imports (the browser bundle).
import {
  checkSha256, checksumError, httpError, HubError, MODELS, modelUrl, offlineError, reason,
  type ModelTable,
} from "./hub_models.js";

export { MODELS, availableModels, unknownModelMessage, HubError, type ModelEntry, type ModelTable } from "./hub_models.js";

/** The Cache API's name for the stored model files. */
export const MODEL_CACHE_NAME = "clip-ts-models";

/** The part of the Cache API used here (window.caches / self.caches, or a stand-in). */
export interface CacheStorageLike {
  open(name: string): Promise<CacheLike>;
  delete?(name: string): Promise<boolean>;
}
export interface CacheLike {
  match(url: string): Promise<Response | undefined>;
  put(url: string, response: Response): Promise<void>;
}

export interface FetchModelOptions {
  /** Bytes done and the total (undefined when unknown), for the download or the read from the cache. */
  onProgress?: (done: number, total: number | undefined) => void;
  /** Keep the file in the Cache API and use it from there (default true; ignored where there is no Cache API). */
  cache?: boolean;
  /** Default: globalThis.caches. */
  caches?: CacheStorageLike;
  fetch?: typeof globalThis.fetch;
  /** A mirror for the named models, as CLIP_TS_MODEL_BASE_URL in Node: its scheme+host(+prefix) replace the
   *  published URL's, whose path is kept. */
  baseUrl?: string;
  /** The expected SHA-256 of a URL's bytes (a name's is the table's). */
  sha256?: string;
  /** The named models (default MODELS). */
  models?: ModelTable;
  /** Ends the offline message "download <url> yourself and …" (default: "pass its bytes instead"). */
  offlineHint?: string;
}

/** The URL and expected SHA-256 for a name of the table, or for a URL (absolute, or relative to the page). */
export function resolveModelUrl(source: string | URL, opts: Pick<FetchModelOptions, "baseUrl" | "sha256" | "models"> = {}): { url: string; sha256?: string; name?: string } {
  const models = opts.models ?? MODELS;
  const sha256 = checkSha256(opts.sha256);
  if (typeof source === "string" && Object.hasOwn(models, source)) {
    const expected = models[source].sha256.toLowerCase();
    if (sha256 !== undefined && sha256 !== expected) throw new HubError("bad-option", `sha256 ${sha256} is not the SHA-256 of ${source} (${expected})`);
    return { url: modelUrl(source, { CLIP_TS_MODEL_BASE_URL: opts.baseUrl }, models), sha256: expected, name: source };
  }
  const base = (globalThis as { location?: { href: string } }).location?.href;
  let url: URL;
  try {
    url = new URL(source, base);
  } catch {
    throw new HubError("unknown-model", `"${String(source)}" is neither a model name (${Object.keys(models).join(", ")}) nor a URL`);
  }
  return { url: url.href, sha256 };
}

/**
 * The bytes of a named model or a URL: from the Cache API if stored there, else downloaded (streamed, with
 * progress), checked against the SHA-256 (a name's, or `sha256`), then stored. Failures are one-line HubErrors.
 */
export async function fetchModelBytes(source: string | URL, opts: FetchModelOptions = {}): Promise<Uint8Array> {
  const { url, sha256 } = resolveModelUrl(source, opts);
  const cache = opts.cache === false ? undefined : await openCache(opts.caches);
  const stored = await cache?.match(url).catch(() => undefined);
  if (stored?.ok && stored.body) {
    try {
      return await readBody(stored, opts.onProgress); // verified before it was stored
    } catch { /* unreadable entry: download again */ }
  }
  let response: Response;
  try {
    response = await (opts.fetch ?? globalThis.fetch)(url);
  } catch (e) {
    throw offlineError(url, e, opts.offlineHint ?? "pass its bytes instead");
  }
  if (!response.ok) {
    await response.body?.cancel().catch(() => {});
    throw httpError(url, response.status, response.statusText);
  }
  let bytes: Uint8Array<ArrayBuffer>;
  try {
    bytes = await readBody(response, opts.onProgress);
  } catch (e) {
    throw e instanceof HubError ? e : new HubError("interrupted", `download of ${url} broke off (${reason(e)}); try again`, url);
  }
  if (sha256 !== undefined) {
    const actual = await digest(bytes);
    if (actual !== undefined && actual !== sha256) throw checksumError(url, sha256, actual);
  }
  if (cache) {
    const headers = { "content-type": "application/octet-stream", "content-length": String(bytes.byteLength) };
    await cache.put(url, new Response(bytes, { headers })).catch((e: unknown) => {
      console.warn(`clip-ts: could not keep ${url} in the browser cache (${reason(e)}); it will be downloaded again next time`);
    });
  }
  return bytes;
}

/** Removes every stored model (the "clip-ts-models" cache). */
export async function clearModelCache(caches?: CacheStorageLike): Promise<boolean> {
  const storage = caches ?? (globalThis as { caches?: CacheStorageLike }).caches;
  return (await storage?.delete?.(MODEL_CACHE_NAME)) ?? false;
}

async function openCache(injected?: CacheStorageLike): Promise<CacheLike | undefined> {
  const storage = injected ?? (globalThis as { caches?: CacheStorageLike }).caches;
  try {
    return await storage?.open(MODEL_CACHE_NAME); // absent or refused outside secure contexts
  } catch {
    return undefined;
  }
}

/** The whole body, one chunk at a time, into one buffer. Content-Length sizes the buffer and the progress total, as
 *  a hint only: a compressed response decodes to more (fetch itself fails a body cut short). */
async function readBody(response: Response, onProgress?: (done: number, total: number | undefined) => void): Promise<Uint8Array<ArrayBuffer>> {
  const header = response.headers.get("content-length");
  const total = header !== null && /^\d+$/.test(header) ? Number(header) : undefined;
  let buffer: Uint8Array<ArrayBuffer> = new Uint8Array(total ?? 1 << 20);
  let done = 0;
  onProgress?.(0, total);
  const reader = response.body!.getReader();
  for (;;) {
    const { done: end, value } = await reader.read();
    if (end) break;
    if (done + value.byteLength > buffer.byteLength) {
      const grown = new Uint8Array(Math.max(buffer.byteLength * 2, done + value.byteLength));
      grown.set(buffer.subarray(0, done));
      buffer = grown;
    }
    buffer.set(value, done);
    done += value.byteLength;
    onProgress?.(done, total !== undefined && done > total ? undefined : total);
  }
  return done === buffer.byteLength ? buffer : buffer.slice(0, done);
}

/** Hex SHA-256 by WebCrypto; undefined where it is missing (insecure contexts, which have no Cache API either). */
async function digest(bytes: Uint8Array<ArrayBuffer>): Promise<string | undefined> {
  const subtle = (globalThis as { crypto?: Crypto }).crypto?.subtle;
  if (!subtle) {
    console.warn("clip-ts: no crypto.subtle here (not a secure context): the model's SHA-256 is not checked");
    return undefined;
  }
  const h = new Uint8Array(await subtle.digest("SHA-256", bytes));
  return Array.from(h, (b) => b.toString(16).padStart(2, "0")).join("");
}
