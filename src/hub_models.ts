// OpenAI's published CLIP checkpoints by name, as clip.load(name) knows them (clip/clip.py _MODELS), and what the
// Node cache (hub.ts) and the browser fetcher (hub_browser.ts) share: URL rewriting for mirrors and the one-line
// errors. No node: imports here; the browser bundle includes this file.

export interface ModelEntry {
  /** Where OpenAI publishes the file; its second-to-last path segment is the file's SHA-256. */
  url: string;
  /** SHA-256 of the file, lowercase hex (clip.py verifies the same). */
  sha256: string;
  /** File size in bytes, where known (shown by `clip-ts models`; a cached file of another size is re-hashed). */
  bytes?: number;
}

export type ModelTable = Readonly<Record<string, ModelEntry>>;

const ORIGIN = "https://openaipublic.azureedge.net/clip/models";

function entry(sha256: string, file: string, bytes: number): ModelEntry {
  return { url: `${ORIGIN}/${sha256}/${file}`, sha256, bytes };
}

/**
 * clip.py's nine names, in its order (available_models() lists them so). Sizes: the bytes of each file as
 * published (several independent records of the same SHA-256s; ViT-B/32 is 353,976,522 bytes).
 */
export const MODELS: ModelTable = Object.freeze({
  "RN50": entry("afeb0e10f9e5a86da6080e35cf09123aca3b358a0c3e3b6c78a7b63bc04b6762", "RN50.pt", 255_827_503),
  "RN101": entry("8fa8567bab74a42d41c5915025a8e4538c3bdbe8804a470a72f30b0d94fab599", "RN101.pt", 291_791_292),
  "RN50x4": entry("7e526bd135e493cef0776de27d5f42653e6b4c8bf9e0f653bb11773263205fdd", "RN50x4.pt", 421_854_225),
  "RN50x16": entry("52378b407f34354e150460fe41077663dd5b39c54cd0bfd2b27167a4a06ec9aa", "RN50x16.pt", 661_125_706),
  "RN50x64": entry("be1cfb55d75a9666199fb2206c106743da0f6468c9d327f3e0d0a543a9919d9c", "RN50x64.pt", 1_353_500_174),
  "ViT-B/32": entry("40d365715913c9da98579312b702a82c18be219cc2a73407c4526f58eba950af", "ViT-B-32.pt", 353_976_522),
  "ViT-B/16": entry("5806e77cd80f8b59890b7e101eabd078d9fb84e6937f9e85e4ecb61988df416f", "ViT-B-16.pt", 350_837_078),
  "ViT-L/14": entry("b8cca3fd41ae0c99ba7e8951adf17d267cdb84cd88be6f7c2e0eca1737a03836", "ViT-L-14.pt", 932_768_134),
  "ViT-L/14@336px": entry("3035c92b350959924f9f00213499208652fc7ea050643e8b385c2dac08641f02", "ViT-L-14-336px.pt", 934_088_680),
});

/** The model names, as clip.available_models(). */
export function availableModels(models: ModelTable = MODELS): string[] {
  return Object.keys(models);
}

/** The environment variables the hub reads (process.env in Node; a plain object elsewhere). */
export interface HubEnv {
  /** A mirror for the named models: replaces the scheme and host of each URL, keeping its path (see modelUrl). */
  CLIP_TS_MODEL_BASE_URL?: string;
  /** The Node cache directory (see cacheDir in hub.ts). */
  CLIP_TS_CACHE?: string;
  [key: string]: string | undefined;
}

export type HubErrorKind = "unknown-model" | "bad-option" | "offline" | "http" | "checksum" | "interrupted" | "cache";

/** A one-line failure of the hub that a CLI can print as it is; `kind` tells callers what happened. */
export class HubError extends Error {
  override name = "HubError";
  constructor(readonly kind: HubErrorKind, message: string, readonly url?: string) {
    super(message);
  }
}

export function isHttpUrl(source: string): boolean {
  return /^https?:\/\//i.test(source);
}

/**
 * The URL a named model is downloaded from. With CLIP_TS_MODEL_BASE_URL set to B, the scheme and host of the
 * published URL are replaced by B and its path is kept: B = "http://mirror:8080/clip-ts" turns
 * https://openaipublic.azureedge.net/clip/models/<sha256>/RN50.pt into http://mirror:8080/clip-ts/clip/models/<sha256>/RN50.pt.
 * So a mirror is a copy of the origin's tree (`clip/models/<sha256>/<file>`) under any prefix; the SHA-256 checked
 * stays the table's. B must be an http(s) URL; a trailing "/" is ignored.
 */
export function modelUrl(name: string, env: HubEnv = defaultEnv(), models: ModelTable = MODELS): string {
  const model = lookup(name, models);
  const base = env.CLIP_TS_MODEL_BASE_URL;
  if (base === undefined || base === "") return model.url;
  let parsed: URL | undefined;
  try {
    parsed = new URL(base);
  } catch {
    parsed = undefined;
  }
  if (!parsed || !/^https?:$/.test(parsed.protocol) || parsed.search || parsed.hash) {
    throw new HubError("bad-option", `CLIP_TS_MODEL_BASE_URL must be an http:// or https:// URL without query, got "${base}"`);
  }
  return `${base.replace(/\/+$/, "")}${new URL(model.url).pathname}`;
}

/** The table's entry for a name, or the unknown-name error. */
export function lookup(name: string, models: ModelTable = MODELS): ModelEntry {
  if (!Object.hasOwn(models, name)) throw new HubError("unknown-model", unknownModelMessage(name, models, "no model named"));
  return models[name];
}

/**
 * `<what> "X"` (default "no model file or model named", for a loader whose source is neither a file nor a name)
 * with the names (openai/CLIP's, exactly: "ViT-B/32", not open_clip's architecture name "ViT-B-32") and the near
 * miss if there is one.
 */
export function unknownModelMessage(source: string, models: ModelTable = MODELS, what = "no model file or model named"): string {
  const fold = (s: string) => s.toLowerCase().replace(/[-/_ ]/g, "");
  const near = availableModels(models).find((n) => fold(n) === fold(source));
  const hint = near ? ` (did you mean "${near}"?)` : "";
  return `${what} "${source}"${hint}; names are openai/CLIP's: ${availableModels(models).join(", ")}`;
}

export function checkSha256(sha256: string | undefined): string | undefined {
  if (sha256 === undefined) return undefined;
  if (!/^[0-9a-fA-F]{64}$/.test(sha256)) throw new HubError("bad-option", `sha256 must be 64 hex digits, got "${sha256}"`);
  return sha256.toLowerCase();
}

// ---- the one-line messages of a download

export function httpError(url: string, status: number, statusText: string): HubError {
  return new HubError("http", `HTTP ${status}${statusText ? ` ${statusText}` : ""} from ${url}`, url);
}

/** `hint` finishes "download <url> yourself and …" (a CLI says "pass --model PATH"). */
export function offlineError(url: string, cause: unknown, hint: string): HubError {
  return new HubError("offline", `could not reach ${new URL(url).host} (${reason(cause)}); download ${url} yourself and ${hint}`, url);
}

export function checksumError(url: string, expected: string, actual: string): HubError {
  return new HubError("checksum", `SHA-256 mismatch for ${url}: expected ${expected}, got ${actual} (the download was discarded)`, url);
}

/** Why a fetch failed, in a few words: the system error code under undici's "fetch failed" if there is one. */
export function reason(e: unknown): string {
  for (let c: unknown = e, depth = 0; c && depth < 5; c = (c as { cause?: unknown }).cause, depth++) {
    const code = (c as { code?: unknown }).code;
    if (typeof code === "string" && code) return code;
  }
  for (let c: unknown = e, depth = 0; c && depth < 5; c = (c as { cause?: unknown }).cause, depth++) {
    const inner = (c as { cause?: unknown }).cause;
    if (!inner) return oneLine((c as Error).message ?? String(c));
  }
  return oneLine(String(e));
}

function oneLine(s: string): string {
  return s.replace(/\s*\n\s*/g, " ").slice(0, 200);
}

function defaultEnv(): HubEnv {
  return (globalThis as { process?: { env?: HubEnv } }).process?.env ?? {};
}

export function formatBytes(n: number | undefined): string {
  if (n === undefined) return "?";
  if (n < 1024) return `${n} B`;
  const units = ["KiB", "MiB", "GiB", "TiB"];
  let v = n / 1024, i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`;
}
