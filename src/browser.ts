// The browser entry of clip-ts (bundled into dist/browser/clip-ts.js): the shared API (src/core.ts), plus loading
// by URL, a wasm backend on fetch and Web Workers, and collections kept in IndexedDB. Nothing reachable from here imports a node: module except behind the
// Node-only paths (file paths, the Node platform), which the bundle replaces by stubs.
//
// With more than one thread, the wasm backend waits for its workers with Atomics.wait, which a page's main thread
// may not call: run the model in a dedicated worker (examples/web/ does).
import { assetUrl } from "./assets.js";
import type { Backend, Precision } from "./backend/backend.js";
import { browserPlatform, canShareMemory, NOT_ISOLATED_MESSAGE, type BrowserPlatformOptions } from "./backend/browser_wasm.js";
import { TsBackend } from "./backend/ts.js";
import { createWasmBackend } from "./backend/wasm.js";
import { checkpointFromBytes, EMBEDDED_HINTS, modelFromCheckpoint, OPENAI_VOCAB_SIZE, withTokenizer, type BackendName, type LoadedClip } from "./clip.js";
import type { HyperParamOptions } from "./config.js";
import type { Towers } from "./model.js";
import { fetchModelBytes } from "./hub_browser.js";
import { loadTokenizer, type TokenizerSource } from "./simple_tokenizer.js";

export * from "./core.js"; // not ./index.js: its collections are Node-only (the page has BrowserCollection)
export { fetchModelBytes, clearModelCache, MODEL_CACHE_NAME } from "./hub_browser.js";
export { browserPlatform, canShareMemory, NOT_ISOLATED_MESSAGE, type BrowserPlatformOptions } from "./backend/browser_wasm.js";
export {
  BrowserCollection, PHOTOS_DB_NAME, planIndex, topK, type FailedEntry, type IndexPlan, type PhotoEntry, type PickedFile,
} from "./collection/browser_store.js";

export interface BrowserBackendOptions extends BrowserPlatformOptions {
  /** "wasm" (default) or "ts"; both give the same bits. */
  backend?: BackendName;
  /** Threads of the wasm backend, the calling one included (default: navigator.hardwareConcurrency, at most 8,
   *  when the page is cross-origin isolated, else 1). More than 1 without isolation falls back to 1 with a warning. */
  threads?: number;
}

/** A backend for this browser context. The wasm backend's `threads` tells how many it really got. */
export async function createBrowserBackend(options: BrowserBackendOptions = {}): Promise<Backend> {
  const name = options.backend ?? "wasm";
  if (name === "ts") return new TsBackend();
  if (name !== "wasm") throw new Error(`unknown backend "${name as string}" (expected "ts" or "wasm")`);
  let threads = options.threads;
  if (threads !== undefined && threads > 1 && !canShareMemory()) {
    console.warn(NOT_ISOLATED_MESSAGE);
    threads = 1;
  }
  return createWasmBackend({ threads, platform: browserPlatform(options) });
}

/** Where bytes come from in a browser: a URL (relative to the page or worker) or the bytes themselves. */
export type BytesSource = string | URL | Uint8Array | ArrayBuffer;

export async function fetchBytes(source: BytesSource): Promise<Uint8Array> {
  if (source instanceof Uint8Array) return source;
  if (source instanceof ArrayBuffer) return new Uint8Array(source);
  const url = new URL(source, globalThis.location?.href);
  const response = await fetch(url);
  if (!response.ok) throw new Error(`${url.href}: ${response.status} ${response.statusText}`);
  return new Uint8Array(await response.arrayBuffer());
}

export interface BrowserLoadOptions extends BrowserBackendOptions, HyperParamOptions {
  /** The tokenizer's vocab: a URL or bytes of a merges file (.txt, .txt.gz) or tokenizer.json, or any
   *  non-path TokenizerSource. Default with the embedded model: its vocab.txt.gz; required otherwise. */
  vocab?: BytesSource | Exclude<TokenizerSource, string | Uint8Array>;
  /** Images with more pixels are refused before decoding (decompression bombs). */
  maxPixels?: number;
  maxBatch?: number;
  /** "image" or "text": load that tower only (see LoadOptions.towers); default "both". */
  towers?: Towers;
  /** "int8": the transformers' linear layers and the ViT patch embedding in int8 (see LoadOptions.precision); default "f32". */
  precision?: Precision;
  maxTensorBytes?: number;
  maxTotalBytes?: number;
  /** Download progress of the weights (bytes so far, total if known), from the network or the Cache API. */
  onProgress?: (done: number, total: number | undefined) => void;
  /** Keep downloaded weights in the Cache API ("clip-ts-models") and load them from there (default true). */
  cache?: boolean;
  /** The expected SHA-256 of a weights URL (a name's comes from clip.py's table). */
  sha256?: string;
  /** A mirror for the named models (scheme, host and prefix; the published path is kept). */
  baseUrl?: string;
}

/** The embedded tiny model, relative to the bundle (dist/browser/clip-ts.js → weights/ of the package). */
export const EMBEDDED_MODEL_URLS = {
  weights: assetUrl("embeddedWeights").href,
  vocab: assetUrl("embeddedVocab").href,
};

/** OpenAI's vocab as shipped in the package, relative to the bundle. */
export const OPENAI_VOCAB_URL = assetUrl("openaiVocab").href;

/**
 * load() of the Node API for browsers: the model, tokenizer and image transform from a name of clip.load
 * ("ViT-B/32"), a checkpoint URL or bytes (without one, the embedded tiny model), on the browser wasm backend.
 * Downloads are streamed with onProgress, checked against their SHA-256 and kept in the Cache API. A config.json
 * cannot be found beside a URL: pass it as options.config (or options.arch).
 */
export async function loadInBrowser(source?: BytesSource, options: BrowserLoadOptions = {}): Promise<LoadedClip> {
  const embedded = source === undefined;
  const weights = embedded
    ? await fetchBytes(EMBEDDED_MODEL_URLS.weights)
    : typeof source === "string" || source instanceof URL
      ? await fetchModelBytes(source, { onProgress: options.onProgress, cache: options.cache, sha256: options.sha256, baseUrl: options.baseUrl })
      : await fetchBytes(source!);
  const ck = checkpointFromBytes(weights, options);
  if (embedded) ck.hints.push(EMBEDDED_HINTS);
  const model = modelFromCheckpoint(ck, await createBrowserBackend(options), options);
  try {
    let vocab = options.vocab ?? (embedded ? EMBEDDED_MODEL_URLS.vocab : undefined);
    if (vocab === undefined) {
      if (model.config.vocabSize !== OPENAI_VOCAB_SIZE) throw new Error(`loadInBrowser: pass options.vocab for a model of ${model.config.vocabSize} tokens`);
      vocab = OPENAI_VOCAB_URL;
    }
    const isBytesSource = typeof vocab === "string" || vocab instanceof URL || vocab instanceof Uint8Array || vocab instanceof ArrayBuffer;
    const tokenizer = await (isBytesSource ? fetchBytes(vocab as BytesSource).then((b) => loadTokenizer(b)) : loadTokenizer(vocab as TokenizerSource));
    return withTokenizer(model, tokenizer, options.maxPixels);
  } catch (e) {
    model.dispose();
    throw e;
  }
}
