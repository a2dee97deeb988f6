// The browser entry of clip-ts (bundled into dist/browser/clip-ts.js): the whole API, plus loading by URL and a
// wasm backend on fetch and Web Workers. Nothing reachable from here imports a node: module except behind the
// Node-only paths (file paths, the Node platform), which the bundle replaces by stubs.
//
// With more than one thread, the wasm backend waits for its workers with Atomics.wait, which a page's main thread
// may not call: run the model in a dedicated worker (examples/web/ does).
import type { Backend } from "./backend/backend.js";
import { browserPlatform, canShareMemory, NOT_ISOLATED_MESSAGE, type BrowserPlatformOptions } from "./backend/browser_wasm.js";
import { TsBackend } from "./backend/ts.js";
import { createWasmBackend } from "./backend/wasm.js";
import { checkpointFromBytes, EMBEDDED_HINTS, modelFromCheckpoint, withTokenizer, type BackendName, type LoadedClip } from "./clip.js";
import type { HyperParamOptions } from "./config.js";
import { loadTokenizer, type TokenizerSource } from "./simple_tokenizer.js";

export * from "./index.js";
export { browserPlatform, canShareMemory, NOT_ISOLATED_MESSAGE, type BrowserPlatformOptions } from "./backend/browser_wasm.js";

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
  maxTensorBytes?: number;
  maxTotalBytes?: number;
}

/** The embedded tiny model, relative to the bundle (dist/browser/clip-ts.js → weights/ of the package). */
export const EMBEDDED_MODEL_URLS = {
  weights: new URL("../../weights/clip-tiny-rn.safetensors", import.meta.url).href,
  vocab: new URL("../../weights/vocab.txt.gz", import.meta.url).href,
};

/**
 * load() of the Node API for browsers: the model, tokenizer and image transform from a checkpoint URL or bytes
 * (without one, the embedded tiny model), on the browser wasm backend. A config.json cannot be found beside a URL:
 * pass it as options.config (or options.arch).
 */
export async function loadInBrowser(source?: BytesSource, options: BrowserLoadOptions = {}): Promise<LoadedClip> {
  let vocab = options.vocab;
  const embedded = source === undefined;
  if (source === undefined) {
    source = EMBEDDED_MODEL_URLS.weights;
    vocab ??= EMBEDDED_MODEL_URLS.vocab;
  }
  if (vocab === undefined) throw new Error("loadInBrowser: pass options.vocab (a URL or the bytes of the tokenizer's vocab)");
  const isBytesSource = typeof vocab === "string" || vocab instanceof URL || vocab instanceof Uint8Array || vocab instanceof ArrayBuffer;
  const [weights, tokenizer] = await Promise.all([
    fetchBytes(source),
    isBytesSource ? fetchBytes(vocab as BytesSource).then((b) => loadTokenizer(b)) : loadTokenizer(vocab as TokenizerSource),
  ]);
  const ck = checkpointFromBytes(weights, options);
  if (embedded) ck.hints.push(EMBEDDED_HINTS);
  const model = modelFromCheckpoint(ck, await createBrowserBackend(options), options);
  try {
    return withTokenizer(model, tokenizer, options.maxPixels);
  } catch (e) {
    model.dispose();
    throw e;
  }
}
