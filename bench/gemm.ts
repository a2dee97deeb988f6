// GEMM throughput of the wasm backend (linear and conv2d, copies in and out and im2col included) on the ViT MLP
// shapes, a cube and three RN50 3×3 layers, with 1 and 2 threads, next to the measured peak of wasm SIMD mul+add
// on one thread (12 chains whose mul waits for the add before it: an in-cache GEMM passes it by up to ~5%). Two
// rates: per second of wall clock, and per CPU-second of this process (what each thread achieves while it runs:
// other load on the machine lowers the first, hardly the second).
// Run: npm run bench:gemm (after npm run build:wasm)
import { createWasmBackend } from "../src/backend/wasm.js";
import type { Tensor } from "../src/tensor.js";

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
