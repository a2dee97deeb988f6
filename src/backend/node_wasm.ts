// The Node half of the wasm backend: the module from build/ via fs, workers via worker_threads. A browser
// adapter would implement the same WasmPlatform with fetch and Web Workers.
import { readFile } from "node:fs/promises";
import { availableParallelism } from "node:os";
import { fileURLToPath } from "node:url";
import { Worker } from "node:worker_threads";
import { WORKER_LOOP, type WasmPlatform, type WorkerHandle, type WorkerInit } from "./wasm_platform.js";

// src/backend/ when run from source, dist/src/backend/ when compiled: build/ is at the project root either way
const CANDIDATE_DIRS = ["../../build/", "../../../build/"];

const WORKER_SOURCE = `
const { parentPort, workerData } = require("node:worker_threads");
${WORKER_LOOP}
const loop = workerLoop(workerData.init, workerData.tid, (e) => console.error("wasm worker " + workerData.tid + ":", e));
parentPort.postMessage("ready");
loop();
`;

async function loadModule(threaded: boolean): Promise<WebAssembly.Module> {
  const name = threaded ? "clip-threads.wasm" : "clip.wasm";
  const tried: string[] = [];
  for (const dir of CANDIDATE_DIRS) {
    const path = fileURLToPath(new URL(dir + name, import.meta.url));
    tried.push(path);
    let bytes: Buffer;
    try {
      bytes = await readFile(path);
    } catch {
      continue;
    }
    return WebAssembly.compile(new Uint8Array(bytes));
  }
  throw new Error(`wasm backend: ${name} not found (run "npm run build:wasm"); looked at ${tried.join(", ")}`);
}

function startWorkers(init: WorkerInit, count: number): Promise<WorkerHandle[]> {
  return Promise.all(
    Array.from({ length: count }, (_, i) => new Promise<WorkerHandle>((resolve, reject) => {
      const worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { init, tid: i + 1 } });
      let exited = false;
      // these run only when this thread's event loop does, i.e. between calls; during a call, isAlive asks below
      worker.once("exit", (code) => {
        exited = true;
        reject(new Error(`wasm backend: worker ${i + 1} exited (code ${code}) before it started`)); // no-op once started
      });
      worker.on("error", (e) => { exited = true; reject(e); }); // a lasting listener: a later crash is not uncaught
      // one message only: a lasting 'message' listener would ref the worker again and hold the process open
      worker.once("message", () => {
        worker.unref(); // from now on an idle pool must not keep the process alive
        resolve(nodeHandle(worker, () => exited));
      });
    })),
  );
}

/**
 * A worker's handle. isAlive must answer while this thread is blocked in Atomics.wait, when the 'exit' event
 * cannot be delivered: the worker's event-loop utilization reads its native state, which reports an idle time of
 * −1 as soon as the thread has stopped (tested in test/wasm_threads.test.ts). `worker` is there for that test.
 */
function nodeHandle(worker: Worker, exited: () => boolean): WorkerHandle & { worker: Worker } {
  return {
    worker,
    exitSeenWhileBlocked: true,
    terminate: () => void worker.terminate(),
    isAlive: () => !exited() && worker.performance.eventLoopUtilization().idle !== -1,
  };
}

export const nodePlatform: WasmPlatform = {
  loadModule,
  startWorkers,
  defaultThreads: () => availableParallelism(),
};
