import { activate, type Activation } from "./activations.js";
import { f } from "./f32.js";

/**
 * y[m, n] = act(Σ_k x[m, k]·w[n, k] + b[n] + residual[m, n])
 * x: [M, K], w: [N, K] (PyTorch's nn.Linear layout), b: [N] or null, residual: [M, N] or null, y: [M, N].
 * The sum runs over k in ascending order from +0; the SIMD twin vectorises over n and keeps that order.
 */
export function linear(
  x: Float32Array, w: Float32Array, b: Float32Array | null, y: Float32Array,
  M: number, K: number, N: number, act: Activation = "none", residual: Float32Array | null = null,
): void {
  for (let m = 0; m < M; m++) {
    for (let n = 0; n < N; n++) {
      let acc = 0;
      for (let k = 0; k < K; k++) acc = f(acc + f(x[m * K + k] * w[n * K + k]));
      if (b) acc = f(acc + b[n]);
      if (residual) acc = f(acc + residual[m * N + n]);
      y[m * N + n] = activate(acc, act);
    }
  }
}
