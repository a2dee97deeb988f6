// GEMM throughput of the wasm backend (linear and conv2d, copies in and out and im2col included; for the linears
// also the kernels alone, on operands already in wasm memory: packing A, the GEMM, bias) on the ViT MLP
// shapes, a cube and three RN50 3×3 layers, with 1 and 2 threads, next to the measured peak of wasm SIMD mul+add
// (12 chains whose mul waits for the add before it: an in-cache GEMM passes it by up to ~5%) on one thread and on
// two at once.
// Peers on the same shapes, one thread, when installed (npm run bench:setup): XNNPACK's wasm SIMD GEMM (tfjs-backend-wasm's matMul) and
// ONNX Runtime's MLAS, as wasm (onnxruntime-web) and native (onnxruntime-node), on a bias-free nn.Linear exported by
// tools/onnx/export_onnx.py (its weight a constant, as in a model).
// Every measurement is a ~0.2 s burst, repeated in ROUNDS rounds that go over all of them in turn; the best burst
// counts. The machine's speed drifts over minutes, so the peak and every engine see the same spells.
// Run: npm run bench:gemm (after npm run build:wasm)
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { createWasmBackend } from "../src/backend/wasm.js";
import type { Tensor } from "../src/tensor.js";
import { CACHE_DIR, present } from "./models.js";
import { loadPeer, missingPeers, SETUP, type Ort, type Tf, type TfWasm } from "./peers.js";

const SHAPES: [number, number, number][] = [[50, 768, 3072], [50, 3072, 768], [1024, 1024, 1024]];
/** RN50 3×3 convolutions (stride 1, padding 1, bias, ReLU): [C = O, H = W]; as a GEMM M = O, K = 9·C, N = H·W. */
const CONVS: [number, number][] = [[64, 56], [256, 14], [512, 7]];
const ROUNDS = 7;

function random(shape: number[]): Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  return { shape, data: Float32Array.from({ length: n }, () => Math.random() * 2 - 1) };
}

/** One measurement: a name, its flop count per call, the call, and its best GFLOP/s so far. */
interface Entry { name: string; threads: number; flops: number; fn: () => void | Promise<void>; best: number }
const entries: Entry[] = [];
const notes: string[] = [];
const add = (name: string, flops: number, fn: () => void | Promise<void>, threads = 1) => entries.push({ name, threads, flops, fn, best: 0 });

const one = await createWasmBackend({ threads: 1 });
const two = await createWasmBackend({ threads: 2 });
const iters = 1e6;
add("wasm SIMD peak | 1 thread", iters * 96, () => void one.simdPeak(iters));
add("wasm SIMD peak | 2 threads at once", 2 * iters * 96, () => void two.simdPeak(iters), 2);
for (const [threads, b] of [[1, one], [2, two]] as const) {
  for (const [M, K, N] of SHAPES) {
    const x = random([M, K]);
    const w = b.prepareLinear(random([N, K]), random([N]));
    add(`${M}×${K}×${N} | clip-ts, ${threads} thread${threads > 1 ? "s" : ""}`, 2 * M * K * N, () => void b.linear(x, w), threads);
    add(`${M}×${K}×${N} | clip-ts kernels alone, ${threads} thread${threads > 1 ? "s" : ""}`, 2 * M * K * N, b.linearKernels(x, w), threads);
  }
  for (const [C, H] of CONVS) {
    const x = random([1, C, H, H]);
    const w = b.prepareConv2d(random([C, C, 3, 3]), random([C]), 1, 1);
    add(`conv ${C}→${C} 3×3 on ${H}×${H} (M ${C}, K ${9 * C}, N ${H * H}) | clip-ts, ${threads} thread${threads > 1 ? "s" : ""}`,
      2 * C * 9 * C * H * H, () => void b.conv2d(x, w, "relu"), threads);
  }
}

const absent = missingPeers(["@tensorflow/tfjs-core", "@tensorflow/tfjs-backend-wasm", "onnxruntime-web", "onnxruntime-node"]);
if (absent.length) process.stderr.write(`${absent.join(", ")} not installed, measuring without ${absent.length > 1 ? "them" : "it"}: ${SETUP}\n`);

try {
  const tf = loadPeer<Tf>("@tensorflow/tfjs-core");
  loadPeer<TfWasm>("@tensorflow/tfjs-backend-wasm").setThreadsCount(1);
  await tf.setBackend("wasm");
  if (!tf.env().getBool("WASM_HAS_SIMD_SUPPORT")) throw new Error("its SIMD build did not load");
  for (const [M, K, N] of SHAPES) {
    const x = tf.randomUniform([M, K], -1, 1), w = tf.randomUniform([K, N], -1, 1);
    add(`${M}×${K}×${N} | XNNPACK (tfjs-backend-wasm), 1 thread`, 2 * M * K * N, () => {
      const y = tf.matMul(x, w);
      y.dataSync();
      y.dispose();
    });
  }
} catch (e) {
  notes.push(`XNNPACK (tfjs-backend-wasm): not measured — ${(e as Error).message.split("\n")[0]}`);
}

for (const [peer, pkg] of [["ORT-web (MLAS wasm)", "onnxruntime-web"], ["ORT-node (MLAS native)", "onnxruntime-node"]] as const) {
  try {
    const ort = loadPeer<Ort>(pkg);
    const options = pkg === "onnxruntime-web"
      ? { executionProviders: ["wasm"], graphOptimizationLevel: "all" }
      : { executionProviders: ["cpu"], graphOptimizationLevel: "all", intraOpNumThreads: 1, interOpNumThreads: 1 };
    if (pkg === "onnxruntime-web") ort.env.wasm.numThreads = 1;
    for (const [M, K, N] of SHAPES) {
      const file = join(CACHE_DIR, `gemm-${M}x${K}x${N}.onnx`);
      if (!present(file)) throw new Error(`${file} missing: run /usr/bin/python3 tools/onnx/export_onnx.py`);
      const session = await ort.InferenceSession.create(new Uint8Array(await readFile(file)), options);
      const x = new ort.Tensor("float32", random([M, K]).data, [M, K]);
      add(`${M}×${K}×${N} | ${peer}, 1 thread`, 2 * M * K * N, async () => void (await session.run({ x })));
    }
  } catch (e) {
    notes.push(`${peer}: not measured — ${(e as Error).message.split("\n")[0]}`);
  }
}

for (const e of entries) await e.fn(); // warm-up
for (let r = 0; r < ROUNDS; r++) {
  for (const e of entries) {
    let reps = 0, dt = 0;
    const t0 = performance.now();
    do {
      await e.fn();
      reps++;
      dt = performance.now() - t0;
    } while (dt < 200);
    e.best = Math.max(e.best, (e.flops * reps) / dt / 1e6);
  }
  process.stderr.write(`round ${r + 1}/${ROUNDS}\n`);
}

const peak = [0, entries[0].best, entries[1].best];
console.log(`GEMM, GFLOP/s (best ~0.2 s burst of ${ROUNDS} rounds, wall clock); % of the wasm SIMD peak at the same `
  + `thread count: ${peak[1].toFixed(1)} GFLOP/s on 1 thread, ${peak[2].toFixed(1)} on 2 at once `
  + `(${(peak[2] / peak[1]).toFixed(2)}×, the most any kernel can gain from the second thread on this machine)\n`);
console.log("| shape | engine | GFLOP/s | % of peak |\n|---|---|---|---|");
for (const e of entries.slice(2)) {
  const [shape, engine] = e.name.split(" | ");
  console.log(`| ${shape} | ${engine} | ${e.best.toFixed(1)} | ${((100 * e.best) / peak[e.threads]).toFixed(0)}% |`);
}
for (const n of notes) console.log(`- ${n}`);
one.dispose();
two.dispose();
process.exit(0); // ORT-web's worker and tfjs keep the event loop alive
