// GEMM throughput of the wasm backend (linear and conv2d, copies in and out and im2col included) on the ViT MLP
// shapes, a cube and three RN50 3×3 layers, with 1 and 2 threads, next to the measured peak of wasm SIMD mul+add
// on one thread (12 chains whose mul waits for the add before it: an in-cache GEMM passes it by up to ~5%). Two
// rates: per second of wall clock, and per CPU-second of this process (what each thread achieves while it runs:
// other load on the machine lowers the first, hardly the second).
// Peers on the same shapes, one thread, when installed: XNNPACK's wasm SIMD GEMM (tfjs-backend-wasm's matMul) and
// ONNX Runtime's MLAS, as wasm (onnxruntime-web) and native (onnxruntime-node), on a bias-free nn.Linear exported by
// tools/onnx/export_onnx.py (its weight a constant, as in a model). Peers report wall clock only.
// Run: npm run bench:gemm (after npm run build:wasm)
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { createWasmBackend } from "../src/backend/wasm.js";
import type { Tensor } from "../src/tensor.js";
import { CACHE_DIR, present } from "./models.js";

const SHAPES: [number, number, number][] = [[50, 768, 3072], [50, 3072, 768], [1024, 1024, 1024]];
/** RN50 3×3 convolutions (stride 1, padding 1, bias, ReLU): [C = O, H = W]; as a GEMM M = O, K = 9·C, N = H·W. */
const CONVS: [number, number][] = [[64, 56], [256, 14], [512, 7]];
const ROUNDS = 7;

function random(shape: number[]): Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  return { shape, data: Float32Array.from({ length: n }, () => Math.random() * 2 - 1) };
}

/** Best GFLOP/s (wall clock, CPU time) over ROUNDS timed rounds of about 0.2 s each. */
function best(flops: number, fn: () => void): { wall: number; cpu: number } {
  fn();
  let wall = 0, cpu = 0;
  for (let r = 0; r < ROUNDS; r++) {
    let reps = 0, dt = 0;
    const t0 = performance.now(), c0 = process.cpuUsage();
    do {
      fn();
      reps++;
      dt = performance.now() - t0;
    } while (dt < 200);
    const c = process.cpuUsage(c0);
    wall = Math.max(wall, (flops * reps) / dt / 1e6);
    cpu = Math.max(cpu, (flops * reps) / ((c.user + c.system) / 1000) / 1e6);
  }
  return { wall, cpu };
}

function report(what: string, threads: number, g: { wall: number; cpu: number }): void {
  console.log(
    `${what}, ${threads} thread(s): ${g.wall.toFixed(1)} GFLOP/s wall clock, ` +
      `${g.cpu.toFixed(1)} per CPU-second (${((100 * g.cpu) / peak).toFixed(0)}% of peak)`,
  );
}

const one = await createWasmBackend({ threads: 1 });
const iters = 1e6;
const peak = best(iters * 12 * 8, () => one.simdPeak(iters)).cpu;
console.log(`wasm SIMD peak (12 chains of f32x4 mul+add, 1 thread): ${peak.toFixed(1)} GFLOP/s per CPU-second`);

for (const threads of [1, 2]) {
  const b = threads === 1 ? one : await createWasmBackend({ threads });
  for (const [M, K, N] of SHAPES) {
    const x = random([M, K]);
    const w = b.prepareLinear(random([N, K]), random([N]));
    const g = best(2 * M * K * N, () => b.linear(x, w));
    report(`${M}×${K}×${N}`, threads, g);
  }
  for (const [C, H] of CONVS) {
    const x = random([1, C, H, H]);
    const w = b.prepareConv2d(random([C, C, 3, 3]), random([C]), 1, 1);
    const g = best(2 * C * 9 * C * H * H, () => b.conv2d(x, w, "relu"));
    report(`conv ${C}→${C} 3×3 on ${H}×${H} (M ${C}, K ${9 * C}, N ${H * H})`, threads, g);
  }
  b.dispose();
}

/** Best GFLOP/s over ROUNDS rounds of about 0.2 s, wall clock, for an asynchronous call. */
async function bestAsync(flops: number, fn: () => Promise<void>): Promise<number> {
  await fn();
  let wall = 0;
  for (let r = 0; r < ROUNDS; r++) {
    let reps = 0, dt = 0;
    const t0 = performance.now();
    do {
      await fn();
      reps++;
      dt = performance.now() - t0;
    } while (dt < 200);
    wall = Math.max(wall, (flops * reps) / dt / 1e6);
  }
  return wall;
}

const peerLine = (what: string, peer: string, g: number) =>
  console.log(`${what}, 1 thread: ${peer} ${g.toFixed(1)} GFLOP/s wall clock (${((100 * g) / peak).toFixed(0)}% of the wasm peak)`);

try {
  const tf = await import("@tensorflow/tfjs-core");
  const wasm = await import("@tensorflow/tfjs-backend-wasm");
  wasm.setThreadsCount(1);
  await tf.setBackend("wasm");
  if (!tf.env().getBool("WASM_HAS_SIMD_SUPPORT")) throw new Error("its SIMD build did not load");
  for (const [M, K, N] of SHAPES) {
    const x = tf.randomUniform([M, K], -1, 1), w = tf.randomUniform([K, N], -1, 1);
    peerLine(`${M}×${K}×${N}`, "XNNPACK (tfjs-backend-wasm)", await bestAsync(2 * M * K * N, async () => {
      const y = tf.matMul(x, w);
      y.dataSync();
      y.dispose();
    }));
  }
} catch (e) {
  console.log(`XNNPACK (tfjs-backend-wasm): not measured — ${(e as Error).message.split("\n")[0]}`);
}

interface OrtLike {
  Tensor: new (type: string, data: Float32Array, dims: number[]) => unknown;
  InferenceSession: { create(model: Uint8Array, options: Record<string, unknown>): Promise<{ run(f: Record<string, unknown>): Promise<unknown>; release(): Promise<void> }> };
  env: { wasm: { numThreads?: number; simd?: boolean } };
}
for (const [peer, pkg] of [["ORT-web (MLAS wasm)", "onnxruntime-web"], ["ORT-node (MLAS native)", "onnxruntime-node"]] as const) {
  try {
    const ort = (await import(pkg)) as OrtLike;
    const options = pkg === "onnxruntime-web"
      ? { executionProviders: ["wasm"], graphOptimizationLevel: "all" }
      : { executionProviders: ["cpu"], graphOptimizationLevel: "all", intraOpNumThreads: 1, interOpNumThreads: 1 };
    if (pkg === "onnxruntime-web") ort.env.wasm.numThreads = 1;
    for (const [M, K, N] of SHAPES) {
      const file = join(CACHE_DIR, `gemm-${M}x${K}x${N}.onnx`);
      if (!present(file)) throw new Error(`${file} missing: run /usr/bin/python3 tools/onnx/export_onnx.py`);
      const session = await ort.InferenceSession.create(new Uint8Array(await readFile(file)), options);
      const x = new ort.Tensor("float32", random([M, K]).data, [M, K]);
      peerLine(`${M}×${K}×${N}`, peer, await bestAsync(2 * M * K * N, async () => void (await session.run({ x }))));
      await session.release();
    }
  } catch (e) {
    console.log(`${peer}: not measured — ${(e as Error).message.split("\n")[0]}`);
  }
}
process.exit(0); // ORT-web's worker and tfjs keep the event loop alive
