import { activate, type Activation } from "./activations.js";
import { f } from "./f32.js";
import { f16ToF32 } from "./f16.js";

/**
 * linear (./linear.ts) with the weights given as binary16 bits: w [N, K] of f16, each widened (exactly) where it
 * is multiplied. So the bits are those of linear on the widened weights. The SIMD twin is linearHalf in
 * assembly/linear_f16.ts, which widens one panel of 16 outputs at a time.
 */
export function linearF16(
  x: Float32Array, w: Uint16Array, b: Float32Array | null, y: Float32Array,
  M: number, K: number, N: number, act: Activation = "none", residual: Float32Array | null = null,
): void {
  for (let m = 0; m < M; m++) {
    for (let n = 0; n < N; n++) {
      let acc = 0;
      for (let k = 0; k < K; k++) acc = f(acc + f(x[m * K + k] * f16ToF32(w[n * K + k])));
      if (b) acc = f(acc + b[n]);
      if (residual) acc = f(acc + residual[m * N + n]);
      y[m * N + n] = activate(acc, act);
    }
  }
}
