// Layer norm, the twin of src/kernels/layer_norm.ts. Its sums are reductions, so they stay scalar and sequential;
// only the elementwise tail is vectorised.

/** Rows [u0, u1) of x [rows, D]. eps is f64 because the TypeScript adds the double 1e-5 before rounding to f32. */
export function layerNorm(
  x: usize, gamma: usize, beta: usize, y: usize, D: i32, eps: f64, tid: i32, u0: i32, u1: i32,
): void {
  const Df = <f32>D;
  for (let r = u0; r < u1; r++) {
    const xr = x + (<usize>r * D << 2), yr = y + (<usize>r * D << 2);
    let sum: f32 = 0;
    for (let i = 0; i < D; i++) sum += load<f32>(xr + (<usize>i << 2));
    const mean = sum / Df;
    let sq: f32 = 0;
    for (let i = 0; i < D; i++) {
      const d = load<f32>(xr + (<usize>i << 2)) - mean;
      sq += d * d;
    }
    const rstd: f32 = 1 / sqrt<f32>(<f32>(<f64>(sq / Df) + eps));
    const mv = f32x4.splat(mean), rv = f32x4.splat(rstd);
    let i = 0;
    for (; i + 4 <= D; i += 4) {
      const o = <usize>i << 2;
      const t = f32x4.mul(f32x4.mul(f32x4.sub(v128.load(xr + o), mv), rv), v128.load(gamma + o));
      v128.store(yr + o, f32x4.add(t, v128.load(beta + o)));
    }
    for (; i < D; i++) {
      const o = <usize>i << 2;
      store<f32>(yr + o, (load<f32>(xr + o) - mean) * rstd * load<f32>(gamma + o) + load<f32>(beta + o));
    }
  }
}
