// The browser half of the wasm backend (node_wasm.ts is the Node half): the module fetched by URL, workers as
// Web Workers made from a Blob of WORKER_LOOP. Threads share one WebAssembly.Memory, which a browser lets a page
// post to a worker only when it is cross-origin isolated (served with COOP: same-origin and COEP: require-corp).
import { WORKER_LOOP, type WasmPlatform, type WorkerHandle, type WorkerInit } from "./wasm_platform.js";

export interface BrowserPlatformOptions {
  /** The non-shared build (build/clip.wasm); default: ../../build/clip.wasm from the bundle (dist/browser/). */
  wasmUrl?: string | URL;
  /** The shared-memory build (build/clip-threads.wasm); default: clip-threads.wasm next to wasmUrl. */
  threadsWasmUrl?: string | URL;
}

// A dedicated worker receives its init by message (a Node worker gets it as workerData). The loop never returns
// until told to exit, so the worker blocks in it; Atomics.wait is allowed there (not on a page's main thread).
const WORKER_SOURCE = `
${WORKER_LOOP}
self.onmessage = (event) => {
  self.onmessage = null;
  const { init, tid } = event.data;
  let loop;
  try {
    loop = workerLoop(init, tid, (e) => console.error("wasm worker " + tid + ":", e));
  } catch (e) {
    self.postMessage({ error: String(e && e.stack || e) });
    return;
  }
  self.postMessage({ ready: true });
  loop();
};
`;

/** Whether this context may share wasm memory between threads. */
export function canShareMemory(): boolean {
  return globalThis.crossOriginIsolated === true && typeof SharedArrayBuffer === "function" && typeof Worker === "function";
}

export const NOT_ISOLATED_MESSAGE =
  "clip-ts: more than one thread needs a cross-origin isolated page (serve it with " +
  "'Cross-Origin-Opener-Policy: same-origin' and 'Cross-Origin-Embedder-Policy: require-corp'); running on 1 thread";

async function compileFromUrl(url: URL): Promise<WebAssembly.Module> {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`wasm backend: ${url.href} answered ${response.status} ${response.statusText} (run "npm run build:wasm"?)`);
  // compileStreaming insists on Content-Type application/wasm; a server that says otherwise still gets its bytes used
  if ((response.headers.get("content-type") ?? "").split(";")[0].trim() === "application/wasm") {
    return WebAssembly.compileStreaming(response);
  }
  return WebAssembly.compile(await response.arrayBuffer());
}

function startWorkers(init: WorkerInit, count: number): Promise<WorkerHandle[]> {
  if (!canShareMemory()) return Promise.reject(new Error(NOT_ISOLATED_MESSAGE.replace("; running on 1 thread", "")));
  const url = URL.createObjectURL(new Blob([WORKER_SOURCE], { type: "text/javascript" }));
  const started = Array.from({ length: count }, (_, i) => new Promise<Worker>((resolve, reject) => {
    const worker = new Worker(url, { name: `clip-ts wasm ${i + 1}` });
    worker.onmessage = (event: MessageEvent<{ ready?: true; error?: string }>) => {
      worker.onmessage = null;
      worker.onerror = null;
      if (event.data.ready) resolve(worker);
      else {
        worker.terminate();
        reject(new Error(`wasm backend: worker ${i + 1} failed to start: ${event.data.error}`));
      }
    };
    worker.onerror = (event) => {
      worker.terminate();
      reject(new Error(`wasm backend: worker ${i + 1} failed to start: ${event.message}`));
    };
    worker.postMessage({ init, tid: i + 1 });
  }));
  // a worker that did start must not outlive a sibling that did not
  return Promise.allSettled(started).then((results) => {
    URL.revokeObjectURL(url);
    const failed = results.find((r): r is PromiseRejectedResult => r.status === "rejected");
    const workers = results.flatMap((r) => (r.status === "fulfilled" ? [r.value] : []));
    if (failed) {
      for (const w of workers) w.terminate();
      throw failed.reason;
    }
    return workers.map((w) => {
      // A thread blocked in Atomics.wait runs no handler, and browsers expose no synchronous state of a worker: a
      // death reported by onerror is seen at the next call; one during a call, as a stall (see WasmBackend.run).
      let dead = false;
      w.onerror = () => { dead = true; };
      return { terminate: () => { dead = true; w.terminate(); }, isAlive: () => !dead };
    });
  });
}

/** A WasmPlatform for browsers (a page or a worker): fetch + WebAssembly.compileStreaming, Web Workers. */
export function browserPlatform(options: BrowserPlatformOptions = {}): WasmPlatform {
  const single = new URL(options.wasmUrl ?? new URL("../../build/clip.wasm", import.meta.url), globalThis.location?.href);
  const threaded = new URL(options.threadsWasmUrl ?? new URL("clip-threads.wasm", single));
  return {
    loadModule: (shared) => compileFromUrl(shared ? threaded : single),
    startWorkers,
    defaultThreads: () => (canShareMemory() ? Math.max(1, navigator.hardwareConcurrency || 1) : 1),
  };
}
