// What the wasm backend needs from its host, so that Node (node_wasm.ts: fs, worker_threads) and a
// browser (browser_wasm.ts: fetch, Web Workers) each provide it; and the layout of the control block both sides share.
import type { KernelName } from "./kernels.generated.js";

export interface WorkerInit {
  module: WebAssembly.Module;
  memory: WebAssembly.Memory; // shared
  ctrl: number; // byte offset of the control block in memory
  kernels: readonly KernelName[]; // KERNEL_NAMES of kernels.generated.ts: a job's FN indexes it
}

export interface WorkerHandle {
  terminate(): void;
  /**
   * False once the thread has ended (crashed, ran out of memory, was terminated). Asked while the calling thread
   * is blocked waiting for a job, when no event handler can run: Node reads the worker's native state; a browser
   * only knows what the worker's onerror told it between calls (see browser_wasm.ts).
   */
  isAlive(): boolean;
  /** Whether isAlive sees a death while the calling thread is blocked (Node); if not, a long stall counts as one. */
  readonly exitSeenWhileBlocked?: boolean;
}

export interface WasmPlatform {
  /** The compiled module: the shared-memory build (atomics enabled) when `threaded`. */
  loadModule(threaded: boolean): Promise<WebAssembly.Module>;
  /** Starts `count` workers running the loop of WORKER_LOOP; resolves once each has instantiated the module. */
  startWorkers(init: WorkerInit, count: number): Promise<WorkerHandle[]>;
  defaultThreads(): number;
}

/** Control block: Int32 slots at OFFSET, the f64 arguments at OFFSET + ARGS_BYTE, the workers' acknowledgements at OFFSET + ACK_BYTE. */
export const CTRL = {
  OFFSET: 256,
  GEN: 0, // bumped by the main thread for each job (and to stop)
  DONE: 1, // workers that finished the current job
  FN: 2, // index into init.kernels; −1: exit
  NARGS: 3, // the f64 arguments, in the kernel's parameter order (POSITIONAL of kernels.generated.ts)
  NEXT: 4, // first unit not yet taken
  U1: 5, // end of the units
  CHUNK: 6, // units taken at a time
  ERROR: 7,
  ACK_BYTE: 256, // then an Int32 per worker thread (index tid): the last GEN it finished, exits included
  MAX_THREADS: 256,
  SLICE_MS: 50, // the calling thread waits in slices this long, checking after each that no worker has died
  CHUNKS_PER_THREAD: 16, // enough to even out a slow thread, few enough to keep each call's setup negligible
  ARGS_BYTE: 64,
  MAX_ARGS: 24,
  SPINS: 100000, // polls before sleeping in Atomics.wait: jobs come back to back within a forward pass
} as const;

/**
 * The body of a worker as plain JavaScript source (a worker runs a script, not this module): the host wraps it
 * with its own way of receiving `init` (see node_wasm.ts). Workers never allocate wasm memory: they only take
 * chunks of the job the main thread posts in the control block until none is left, then count themselves done.
 */
export const WORKER_LOOP = `
function workerLoop(init, tid, onError) {
  const { module, memory, ctrl, kernels } = init;
  const C = ${JSON.stringify(CTRL)};
  const exports = new WebAssembly.Instance(module, { env: { memory } }).exports;
  const fns = kernels.map((name) => exports[name]);
  const i32 = new Int32Array(memory.buffer, ctrl, 16);
  const f64 = new Float64Array(memory.buffer, ctrl + C.ARGS_BYTE, C.MAX_ARGS);
  const ack = new Int32Array(memory.buffer, ctrl + C.ACK_BYTE, C.MAX_THREADS);
  const finished = () => {
    Atomics.store(ack, tid, gen);
    Atomics.add(i32, C.DONE, 1);
    Atomics.notify(i32, C.DONE);
  };
  let gen = Atomics.load(i32, C.GEN);
  return function loop() {
    for (;;) {
      for (let spin = 0; Atomics.load(i32, C.GEN) === gen; spin++) {
        if (spin > C.SPINS) Atomics.wait(i32, C.GEN, gen);
      }
      gen = Atomics.load(i32, C.GEN);
      const fn = i32[C.FN];
      if (fn < 0) return finished();
      const u1 = i32[C.U1], chunk = i32[C.CHUNK];
      try { // whatever fails, the job is counted done below: the main thread waits for every worker
        const args = Array.from(f64.subarray(0, i32[C.NARGS]));
        for (let a = Atomics.add(i32, C.NEXT, chunk); a < u1; a = Atomics.add(i32, C.NEXT, chunk)) {
          fns[fn](...args, tid, a, Math.min(u1, a + chunk)); // every kernel ends with (tid, u0, u1)
        }
      } catch (e) {
        Atomics.store(i32, C.ERROR, 1);
        onError(e);
      }
      finished();
    }
  };
}
`;
