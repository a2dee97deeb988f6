// Layer norm and average pooling, the twins of src/kernels/layer_norm.ts and pool.ts. Their sums are reductions,
// so they stay scalar and sequential; only the elementwise tail of layer norm is vectorised.

/** Rows [r0, r1) of x [rows, D]. eps is f64 because the TypeScript adds the double 1e-5 before rounding to f32. */
export function layerNorm(x: usize, gamma: usize, beta: usize, y: usize, D: i32, eps: f64, r0: i32, r1: i32): void {
  const Df = <f32>D;
  for (let r = r0; r < r1; r++) {
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

/** AvgPool2d(k) over the planes [p0, p1) of x [N·C, H, W] → y [N·C, ⌊H/k⌋, ⌊W/k⌋]. */
export function avgPool2d(x: usize, y: usize, H: i32, W: i32, k: i32, p0: i32, p1: i32): void {
  const Ho = H / k, Wo = W / k;
  const area = <f32>(k * k);
  for (let p = p0; p < p1; p++) {
    for (let i = 0; i < Ho; i++) {
      for (let j = 0; j < Wo; j++) {
        let acc: f32 = 0;
        for (let dy = 0; dy < k; dy++) {
          const row = x + (<usize>((p * H + i * k + dy) * W + j * k) << 2);
          for (let dx = 0; dx < k; dx++) acc += load<f32>(row + (<usize>dx << 2));
        }
        store<f32>(y + (<usize>((p * Ho + i) * Wo + j) << 2), acc / area);
      }
    }
  }
}
