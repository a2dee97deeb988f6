import { f } from "./f32.js";

/** AvgPool2d(k) (stride k, no padding, floor): the window summed row by row from +0, then divided by k². NCHW. */
export function avgPool2d(x: Float32Array, y: Float32Array, N: number, C: number, H: number, W: number, k: number): void {
  const Ho = Math.floor(H / k), Wo = Math.floor(W / k);
  const area = k * k;
  for (let p = 0; p < N * C; p++) {
    for (let i = 0; i < Ho; i++) {
      for (let j = 0; j < Wo; j++) {
        let acc = 0;
        for (let dy = 0; dy < k; dy++) {
          for (let dx = 0; dx < k; dx++) acc = f(acc + x[(p * H + i * k + dy) * W + j * k + dx]);
        }
        y[(p * Ho + i) * Wo + j] = f(acc / area);
      }
    }
  }
}
