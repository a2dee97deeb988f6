// Average pooling, the twin of src/kernels/pool.ts: each window's sum is a reduction, so it stays scalar and
// sequential.

/** AvgPool2d(k) over the planes [u0, u1) of x [N·C, H, W] → y [N·C, ⌊H/k⌋, ⌊W/k⌋]. */
export function avgPool2d(x: usize, y: usize, H: i32, W: i32, k: i32, tid: i32, u0: i32, u1: i32): void {
  const Ho = H / k, Wo = W / k;
  const area = <f32>(k * k);
  for (let p = u0; p < u1; p++) {
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
