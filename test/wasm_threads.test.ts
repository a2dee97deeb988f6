// The worker-pool machinery of the wasm backend: instances that share one memory must not touch it on start-up,
// an idle pool must not keep the process alive, dispose() ends it, and the split never depends on timing.
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { afterAll, describe, expect, test } from "vitest";
import type { Worker } from "node:worker_threads";
import type { LinearWeights } from "../src/backend/backend.js";
import { TsBackend } from "../src/backend/ts.js";
import { createWasmBackend, type WasmBackend } from "../src/backend/wasm.js";
import { nodePlatform } from "../src/backend/node_wasm.js";
import type { KernelArgs } from "../src/backend/kernels.generated.js";
import type { WasmPlatform, WorkerHandle } from "../src/backend/wasm_platform.js";
import { buildModel } from "../src/model.js";
import type { Tensor } from "../src/tensor.js";
import { parseSafetensors } from "../src/weights/safetensors.js";
import { bitsEqual, goldenDir, npy } from "./helpers/golden.js";

const builds = ["build/clip.wasm", "build/clip-threads.wasm"];

/**
 * Runs `source`, an ES module importing the TypeScript sources by file URL, in a child Node process with the
 * committed loader hooks (test/helpers/ts_register.mjs), optionally under a shell prefix such as a ulimit; stderr
 * without Node's experimental warnings.
 */
function runChild(source: string, shellPrefix = ""): { stdout: string; stderr: string; status: number | null } {
  const args = ["--import", pathToFileURL("test/helpers/ts_register.mjs").href, "test/helpers/run_source.mjs", source];
  const r = shellPrefix
    ? spawnSync("/bin/sh", ["-c", `${shellPrefix}; exec "$0" "$@"`, process.execPath, ...args], { encoding: "utf8", timeout: 30_000 })
    : spawnSync(process.execPath, args, { encoding: "utf8", timeout: 30_000 });
  return { stdout: r.stdout, stderr: r.stderr.replace(/.*ExperimentalWarning.*\n|.*--trace-warnings.*\n/g, ""), status: r.status };
}

/**
 * Blocks this thread (no event can run) until `dead()`, sleeping 1 ms between probes rather than spinning: a spin
 * here would hold a core the dying thread may need on a 2-core machine, and, unbounded, would hang the whole file
 * (vitest's timeouts cannot fire during synchronous code). 10 s without a death fails the test.
 */
function untilDead(dead: () => boolean, ms = 10_000): void {
  const nap = new Int32Array(new SharedArrayBuffer(4));
  const t0 = Date.now();
  while (!dead()) {
    if (Date.now() - t0 > ms) throw new Error(`test: a terminated worker still looked alive after ${ms} ms`);
    Atomics.wait(nap, 0, 0, 1);
  }
}

/** Section ids of a wasm binary (1 type, 2 import, 3 function, 7 export, 8 start, 10 code, 11 data, 12 data count). */
function sections(bytes: Uint8Array): number[] {
  const ids: number[] = [];
  let p = 8;
  const leb = () => {
    let v = 0, shift = 0, b: number;
    do {
      b = bytes[p++];
      v += (b & 0x7f) * 2 ** shift;
      shift += 7;
    } while (b & 0x80);
    return v;
  };
  while (p < bytes.length) {
    ids.push(bytes[p++]);
    const size = leb();
    p += size;
  }
  return ids;
}

describe("the module", () => {
  test.each(builds)("%s has no data segments and no start function, and imports its memory", (file) => {
    const bytes = new Uint8Array(readFileSync(file));
    const ids = sections(bytes);
    expect(ids).toContain(10);
    expect(ids).not.toContain(11);
    expect(ids).not.toContain(8);
    const imports = WebAssembly.Module.imports(new WebAssembly.Module(bytes));
    expect(imports).toEqual([{ module: "env", name: "memory", kind: "memory" }]);
  });

  test("a second instance on a live shared memory leaves every byte as it was", async () => {
    const module = await nodePlatform.loadModule(true);
    const memory = new WebAssembly.Memory({ initial: 4, maximum: 65536, shared: true });
    const bytes = new Uint8Array(memory.buffer);
    for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 2654435761) >>> 24;
    const before = bytes.slice();
    new WebAssembly.Instance(module, { env: { memory } });
    new WebAssembly.Instance(module, { env: { memory } });
    expect(bytes).toEqual(before);
  });
});

describe("the pool", () => {
  const backends: Awaited<ReturnType<typeof createWasmBackend>>[] = [];
  afterAll(() => backends.forEach((b) => b.dispose()));

  test("many back-to-back jobs on 3 threads give the bits of 1 thread, across memory growth", async () => {
    const one = await createWasmBackend({ threads: 1 });
    const three = await createWasmBackend({ threads: 3, minParallelWork: 0 });
    backends.push(one, three);
    const rnd = (shape: number[], s: number): Tensor => ({
      shape, data: Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, (_, i) => Math.sin(i * 12.9898 + s) * 2),
    });
    const w1 = rnd([40, 33], 1), b1 = rnd([40], 2);
    const p1 = one.prepareLinear(w1, b1), p3 = three.prepareLinear(w1, b1);
    for (let i = 0; i < 200; i++) {
      const x = rnd([1 + (i % 9), 33], i);
      expect(three.linear(x, p3, "quickgelu").data).toEqual(one.linear(x, p1, "quickgelu").data);
    }
    // a large input forces memory.grow, which replaces the shared buffer under the views
    const big = rnd([3000, 33], 9);
    const a = three.linear(big, p3, "relu"), e = new TsBackend().linear(big, new TsBackend().prepareLinear(w1, b1), "relu");
    expect(new Uint32Array(a.data.buffer)).toEqual(new Uint32Array(e.data.buffer));
  });

  test("the SIMD peak runs on every thread at once and counts their flops", async () => {
    const three = await createWasmBackend({ threads: 3 });
    backends.push(three);
    expect(three.simdPeak(800)).toBe(3 * 800 * 96);
    expect(three.simdPeak(5)).toBe(3 * 8 * 1 * 96); // 8 units per thread, whole steps
  });

  test("linearKernels (bench:gemm's kernels-alone timing) runs in memory of its own: later ops keep their bits", async () => {
    const two = await createWasmBackend({ threads: 2, minParallelWork: 0 });
    backends.push(two);
    const x = { shape: [5, 20], data: Float32Array.from({ length: 100 }, (_, i) => Math.cos(i)) };
    const w = { shape: [33, 20], data: Float32Array.from({ length: 660 }, (_, i) => Math.sin(i)) };
    const p = two.prepareLinear(w, null);
    const expected = two.linear(x, p).data;
    const kernels = two.linearKernels(x, p);
    const q = two.prepareLinear({ shape: [33, 20], data: w.data.map((v) => -v) }, null); // allocated after it
    for (let i = 0; i < 3; i++) kernels();
    expect(two.linear(x, p).data).toEqual(expected);
    expect(two.linear(x, q).data).toEqual(expected.map((v) => -v));
    expect(() => two.linearKernels({ shape: [5, 19], data: new Float32Array(95) }, p)).toThrow(/not \[M, 20\]/);
  });

  test("a kernel that traps on some units, on any thread, throws here and leaves the pool working", async () => {
    const three = await createWasmBackend({ threads: 3, minParallelWork: 0 });
    backends.push(three);
    const x = { shape: [1, 64, 8, 8], data: Float32Array.from({ length: 64 * 64 }, (_, i) => i % 7) };
    const expected = three.avgPool2d(x, 2);
    // white box: avgPool2d's planes from the 5th on lie past the end of memory, so whichever thread takes them traps
    type Run = { run(name: "avgPool2d", args: KernelArgs["avgPool2d"], u0: number, u1: number): void };
    const run = (three as unknown as Run).run.bind(three);
    const end = (three as unknown as { memory: WebAssembly.Memory }).memory.buffer.byteLength;
    console.log('"wasm worker N: RuntimeError: memory access out of bounds" on stderr: this test\'s deliberate traps');
    for (let i = 0; i < 20; i++) {
      expect(() => run("avgPool2d", { x: end - 5 * 64 * 4, y: 4096, H: 8, W: 8, k: 2 }, 0, 64)).toThrow(/out of bounds|failed in a worker/);
    }
    expect(three.avgPool2d(x, 2).data).toEqual(expected.data);
  });

  test("a module built from other sources than kernels.generated.ts is refused, naming what differs", async () => {
    // a module that exports linear with one parameter too few (its work range's tid) and nothing else
    const bytes = Uint8Array.from([
      0x00, 0x61, 0x73, 0x6d, 1, 0, 0, 0,
      1, 15, 1, 0x60, 11, ...new Array(11).fill(0x7f), 0, // type: (i32 × 11) → ()
      3, 2, 1, 0, // one function of that type
      7, 10, 1, 6, ...new TextEncoder().encode("linear"), 0, 0, // exported as "linear"
      10, 4, 1, 2, 0, 0x0b, // its body: nothing
    ]);
    const platform: WasmPlatform = { ...nodePlatform, loadModule: () => WebAssembly.compile(bytes) };
    await expect(createWasmBackend({ threads: 1, platform })).rejects.toThrow(
      /^wasm backend: the module's linear, packLinearWeights, .*, simdPeak, NR, MR, ACT_NONE, .* are not those of src\/backend\/kernels\.generated\.ts: .*npm run build:wasm/,
    );
  });

  test("use after dispose throws", async () => {
    const b = await createWasmBackend({ threads: 2, minParallelWork: 0 });
    b.dispose();
    b.dispose();
    expect(() => b.avgPool2d({ shape: [1, 1, 2, 2], data: new Float32Array(4) }, 2)).toThrow(/after dispose/);
  });

  test("rejects a bad thread count", async () => {
    await expect(createWasmBackend({ threads: 0 })).rejects.toThrow(/threads/);
    await expect(createWasmBackend({ threads: 1.5 })).rejects.toThrow(/threads/);
  });

  test("a process with an idle pool exits without dispose(), and with it", () => {
    for (const dispose of [false, true]) {
      const r = runChild(`
        import { createWasmBackend } from ${JSON.stringify(pathToFileURL(join(process.cwd(), "src/backend/wasm.ts")).href)};
        const b = await createWasmBackend({ threads: 3, minParallelWork: 0 });
        const y = b.avgPool2d({ shape: [1, 4, 2, 2], data: new Float32Array(16).fill(2) }, 2);
        console.log("ok", y.data.join(","));
        ${dispose ? "b.dispose();" : ""}`);
      expect(r.stderr).toBe("");
      expect(r.stdout.trim()).toBe("ok 2,2,2,2");
      // a pool that held the process open would be killed by runChild's 30 s timeout: status null, not 0 (no
      // wall-clock bound here: on a loaded 2-core machine starting the child alone took 11 s)
      expect(r.status).toBe(0);
    }
  });
});

describe("a worker thread that dies", () => {
  type Handle = WorkerHandle & { worker: Worker };
  type Inside = { workers: Handle[]; restarting: Promise<void> | null; exports: Record<string, (...a: number[]) => number> };
  const inside = (b: WasmBackend) => b as unknown as Inside;
  const backends: WasmBackend[] = [];
  afterAll(() => backends.forEach((b) => b.dispose()));

  const rnd = (shape: number[], s: number): Tensor => ({
    shape, data: Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, (_, i) => Math.sin(i * 12.9898 + s) * 2),
  });
  const x = rnd([24, 96], 1), w = rnd([200, 96], 2), bias = rnd([200], 3);
  const expected = new Uint32Array(new TsBackend().linear(x, new TsBackend().prepareLinear(w, bias), "quickgelu").data.buffer);
  const bitsOf = (t: Tensor) => new Uint32Array(t.data.buffer);
  /** simdPeak steps for a job of ~0.7 s on 3 threads: units of ~80 ms, so a worker killed in its first unit (a kill
   *  takes effect within a few ms) cannot have finished its part of the job. */
  const LONG_PEAK = 40_000_000;

  /** After the failed call: the next calls work at once (on this thread), then on a fresh pool, with the same bits. */
  async function recovers(b: WasmBackend, p: LinearWeights): Promise<void> {
    expect(bitsOf(b.linear(x, p, "quickgelu"))).toEqual(expected);
    await inside(b).restarting;
    expect(inside(b).workers).toHaveLength(2);
    expect(inside(b).workers.every((h) => h.isAlive())).toBe(true);
    for (let i = 0; i < 20; i++) expect(bitsOf(b.linear(x, p, "quickgelu"))).toEqual(expected);
    expect(b.simdPeak(64)).toBe(3 * 64 * 96);
  }

  test("Node: isAlive() turns false while this thread never yields to the event loop", async () => {
    const b = await createWasmBackend({ threads: 2 });
    backends.push(b);
    const h = inside(b).workers[0];
    expect(h.isAlive()).toBe(true);
    void h.worker.terminate();
    const t0 = Date.now();
    while (h.isAlive() && Date.now() - t0 < 2000) { /* no await: the 'exit' event cannot run */ }
    expect(h.isAlive()).toBe(false);
    expect(Date.now() - t0).toBeLessThan(2000);
  });

  test("killed between calls: the next call throws a clear error at once, the one after works, same bits", async () => {
    const b = await createWasmBackend({ threads: 3, minParallelWork: 0 });
    backends.push(b);
    const p = b.prepareLinear(w, bias);
    expect(bitsOf(b.linear(x, p, "quickgelu"))).toEqual(expected);
    await inside(b).workers[1].worker.terminate(); // its 'exit' event has run
    const t0 = Date.now();
    expect(() => b.linear(x, p, "quickgelu")).toThrow(/^wasm backend: wasm worker thread 2 of 2 exited \(crashed or was terminated\); packRows failed and the pool was restarted \(the next calls work\)$/);
    expect(Date.now() - t0).toBeLessThan(2000);
    await recovers(b, p);
  });

  /** How long the job takes with every thread alive: a failed job may take that long, plus the detection. */
  function normalJob(b: WasmBackend): number {
    const t0 = Date.now();
    b.simdPeak(LONG_PEAK);
    return Date.now() - t0;
  }

  test("killed during a call (this thread blocked, no event can run): the call throws within a second or two", async () => {
    const b = await createWasmBackend({ threads: 3, minParallelWork: 0 });
    backends.push(b);
    const p = b.prepareLinear(w, bias);
    const normal = normalJob(b);
    // white box: this thread's first unit of the job first kills worker 1 for real and sees it gone (the workers
    // are computing the same job meanwhile), then does its unit
    const ex = inside(b).exports, victim = inside(b).workers[0];
    let killedAt = 0;
    inside(b).exports = {
      ...ex,
      simdPeak: (...a: number[]) => {
        if (!killedAt) {
          void victim.worker.terminate();
          untilDead(() => !victim.isAlive()); // synchronous: the 'exit' event cannot run
          killedAt = Date.now();
        }
        return ex.simdPeak(...a);
      },
    };
    expect(() => b.simdPeak(LONG_PEAK)).toThrow(/wasm worker thread 1 of 2 exited .*; simdPeak failed/);
    expect(killedAt).toBeGreaterThan(0);
    expect(Date.now() - killedAt).toBeLessThan(2 * normal + 1500); // the job, done by one thread fewer, then ≤ 50 ms
    inside(b).exports = ex;
    await recovers(b, p);
  });

  test("killed while this thread waits for the job's end: detected by polling, not by an event", async () => {
    const b = await createWasmBackend({ threads: 3, minParallelWork: 0 });
    backends.push(b);
    const p = b.prepareLinear(w, bias);
    const normal = normalJob(b);
    const ex = inside(b).exports, victim = inside(b).workers[1];
    // terminate() only asks; the thread ends a few ms later, while this one is blocked in the kernel and then waits
    inside(b).exports = { ...ex, simdPeak: (...a: number[]) => (victim.isAlive() && void victim.worker.terminate(), ex.simdPeak(...a)) };
    const t0 = Date.now();
    expect(() => b.simdPeak(LONG_PEAK)).toThrow(/wasm worker thread 2 of 2 exited/);
    expect(Date.now() - t0).toBeLessThan(2 * normal + 1500);
    inside(b).exports = ex;
    await recovers(b, p);
  });

  test("where a thread's end cannot be seen during a call (browsers), a long stall counts as one", async () => {
    // Node's platform with handles that, like a browser's, never notice a death while the caller is blocked
    const platform: WasmPlatform = {
      ...nodePlatform,
      startWorkers: async (init, count) => (await nodePlatform.startWorkers(init, count)).map((h) => ({
        worker: (h as Handle).worker, terminate: () => h.terminate(), isAlive: () => true,
      })),
    };
    const b = await createWasmBackend({ threads: 3, minParallelWork: 0, platform });
    backends.push(b);
    const p = b.prepareLinear(w, bias);
    const ex = inside(b).exports, victim = inside(b).workers[0];
    // killed for real (Node's own probe says so) during this thread's first unit: the worker is inside a unit too
    let killed = false;
    inside(b).exports = {
      ...ex,
      simdPeak: (...a: number[]) => {
        if (!killed) {
          void victim.worker.terminate();
          untilDead(() => victim.worker.performance.eventLoopUtilization().idle === -1); // a few ms
          killed = true;
        }
        return ex.simdPeak(...a);
      },
    };
    const t0 = Date.now();
    expect(() => b.simdPeak(LONG_PEAK)).toThrow(
      /^wasm backend: wasm worker thread 1 of 2 did not finish its part of simdPeak in 1\d\.\d s and is taken for dead .*; simdPeak failed and the pool was restarted/,
    );
    expect(Date.now() - t0).toBeLessThan(25_000);
    inside(b).exports = ex;
    await recovers(b, p);
  });
});

describe("a worker thread that dies under a model", () => {
  test("encodeImage after a kill: a one-line error, then the next encodeImage gives the bits of the TypeScript backend", async () => {
    const dir = goldenDir("rn");
    const sd = parseSafetensors(readFileSync(`${dir}/weights.safetensors`));
    const pixels = npy(`${dir}/pixels.npy`);
    const expected = buildModel(sd, new TsBackend()).encodeImage(pixels);
    const backend = await createWasmBackend({ threads: 3, minParallelWork: 0 });
    const model = buildModel(sd, backend);
    try {
      const inside = backend as unknown as { workers: (WorkerHandle & { worker: Worker })[]; restarting: Promise<void> | null };
      expect(bitsEqual(model.encodeImage(pixels).data, expected.data)).toBe(true);
      await inside.workers[0].worker.terminate();
      const t0 = Date.now();
      expect(() => model.encodeImage(pixels)).toThrow(/^wasm backend: wasm worker thread 1 of 2 exited \(crashed or was terminated\); \w+ failed and the pool was restarted/);
      expect(Date.now() - t0).toBeLessThan(2000);
      expect(bitsEqual(model.encodeImage(pixels).data, expected.data)).toBe(true); // on this thread alone
      await inside.restarting;
      expect(inside.workers).toHaveLength(2);
      expect(bitsEqual(model.encodeImage(pixels).data, expected.data)).toBe(true); // on the new pool
    } finally {
      model.dispose();
    }
  });
});

describe("wasm memory that cannot be allocated", () => {
  test("a refused WebAssembly.Memory: one line that says so and points to the ts backend", async () => {
    const Memory = WebAssembly.Memory;
    WebAssembly.Memory = function () {
      throw new RangeError("WebAssembly.Memory(): could not allocate memory");
    } as unknown as typeof WebAssembly.Memory;
    try {
      for (const threads of [1, 2]) {
        const e = await createWasmBackend({ threads }).catch((err: Error) => err);
        expect(e).toBeInstanceOf(RangeError);
        expect((e as Error).message).toMatch(/^wasm backend: could not allocate wasm memory \(a (shared memory of up to 4 GiB|memory), 64 KiB to start\): WebAssembly.Memory\(\): could not allocate memory; .*ulimit -v.*--backend ts, or \{ backend: "ts" \}$/);
        expect((e as Error).message).not.toContain("\n");
      }
    } finally {
      WebAssembly.Memory = Memory;
    }
  });

  test("a refused grow: says how much", async () => {
    const b = await createWasmBackend({ threads: 1 });
    (b as unknown as { memory: { grow(n: number): number } }).memory.grow = () => {
      throw new RangeError("WebAssembly.Memory.grow(): Maximum memory size exceeded");
    };
    expect(() => b.avgPool2d({ shape: [1, 1, 1000, 1000], data: new Float32Array(1e6) }, 2)).toThrow(
      /^wasm backend: could not allocate wasm memory \(growing it from 0\.1 MiB to 3\.9 MiB\): .*--backend ts/,
    );
    b.dispose();
  });

  test("under a real `ulimit -v` (the engine reserves GiBs of address space per memory)", () => {
    const r = runChild(`
      import { createWasmBackend } from ${JSON.stringify(pathToFileURL(join(process.cwd(), "src/backend/wasm.ts")).href)};
      try { await createWasmBackend({ threads: 1 }); console.log("allocated"); } catch (e) { console.log(e.message); }`,
    "ulimit -v 4000000");
    expect(r.stdout.trim()).toMatch(/^wasm backend: could not allocate wasm memory \(a memory, 64 KiB to start\): .*--backend ts/);
  });
});
