// What this machine's wasm SIMD can do at best, for the benches: 12 independent chains of f32x4 mul-then-add (the
// GEMM's inner operation). The two operands are reloaded from memory each step (load ports are otherwise idle),
// because V8 would rebuild them as constants inside the loop, on the same ports as the arithmetic.
// As a unit range, so that every thread of the backend can run it at once: what the cores give together (shared
// clocks, power and, on a VM, the host's other tenants) bounds the speed-up of threads on any kernel.
// No TypeScript twin: it computes nothing the model uses, only how fast this machine can go.

/** Units [u0, u1), each `iters` steps (96 flops a step); thread `tid` leaves its last sum at operands + 32 + 4·tid. */
export function simdPeak(iters: i32, operands: usize, tid: i32, u0: i32, u1: i32): void {
  for (let u = u0; u < u1; u++) store<f32>(operands + 32 + (<usize>tid << 2), chains(iters, operands));
}

function chains(iters: i32, operands: usize): f32 {
  let c0 = f32x4.splat(1), c1 = f32x4.splat(2), c2 = f32x4.splat(3), c3 = f32x4.splat(4);
  let c4 = f32x4.splat(5), c5 = f32x4.splat(6), c6 = f32x4.splat(7), c7 = f32x4.splat(8);
  let c8 = f32x4.splat(9), c9 = f32x4.splat(10), c10 = f32x4.splat(11), c11 = f32x4.splat(12);
  for (let i = 0; i < iters; i++) {
    const m = v128.load(operands), a = v128.load(operands, 16);
    c0 = f32x4.add(f32x4.mul(c0, m), a); c1 = f32x4.add(f32x4.mul(c1, m), a);
    c2 = f32x4.add(f32x4.mul(c2, m), a); c3 = f32x4.add(f32x4.mul(c3, m), a);
    c4 = f32x4.add(f32x4.mul(c4, m), a); c5 = f32x4.add(f32x4.mul(c5, m), a);
    c6 = f32x4.add(f32x4.mul(c6, m), a); c7 = f32x4.add(f32x4.mul(c7, m), a);
    c8 = f32x4.add(f32x4.mul(c8, m), a); c9 = f32x4.add(f32x4.mul(c9, m), a);
    c10 = f32x4.add(f32x4.mul(c10, m), a); c11 = f32x4.add(f32x4.mul(c11, m), a);
  }
  const s = f32x4.add(f32x4.add(f32x4.add(c0, c1), f32x4.add(c2, c3)), f32x4.add(f32x4.add(c4, c5), f32x4.add(c6, c7)));
  return f32x4.extract_lane(f32x4.add(s, f32x4.add(f32x4.add(c8, c9), f32x4.add(c10, c11))), 0);
}
