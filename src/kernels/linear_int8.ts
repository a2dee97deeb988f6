import { activate, type Activation } from "./activations.js";
import { f } from "./f32.js";

// The int8 twin of linear.ts: y[m, n] = act(f32(Σ_k qx[m, k]·qw[n, k]) · f32(sx[m]·sw[n]) + b[n] + residual[m, n]).
// Weights are quantized once per output channel (row n of w), activations per row of x at run time, both
// symmetric: q = clamp(roundHalfEven(v · (127 / max|row|)), −127, 127), scale = max|row| / 127. The k-sum is an
// int32 sum, exact, so its order does not matter (the SIMD twin sums pairs with i32x4.dot_i16x8_s); the floats
// after it run in the one order written here, as in assembly/linear_int8.ts.

/** A row's quantization: q[i] from v[i], returning the row's scale. v may hold NaN or ±Inf: q is 0 where
 *  v·inv is NaN and ±127 where it is infinite, as f32.nearest, i32.trunc_sat_f32_s and a clamp give in wasm. */
export function quantizeRow(v: Float32Array, off: number, K: number, q: Int8Array | Int16Array, qOff: number): number {
  let amax = 0;
  for (let k = 0; k < K; k++) amax = Math.max(amax, Math.abs(v[off + k]));
  const inv = amax > 0 ? f(127 / amax) : 0;
  for (let k = 0; k < K; k++) q[qOff + k] = quantize(f(v[off + k] * inv));
  return f(amax / 127); // a NaN in the row makes the scale, and so the outputs, NaN
}

/** roundHalfEven(v) as an integer in [−127, 127]; NaN → 0 (f32.nearest, i32.trunc_sat_f32_s, clamp). */
export function quantize(v: number): number {
  if (v !== v) return 0;
  let r = Math.round(v); // ties toward +∞: a tie that lands on an odd integer goes one down instead
  if (r - v === 0.5 && (r & 1) !== 0) r -= 1;
  return r > 127 ? 127 : r < -127 ? -127 : r;
}

/** w: [N, K] as nn.Linear stores it → its int8 rows and a scale per row (per output channel). */
export function quantizeLinearWeights(w: Float32Array, N: number, K: number): { q: Int8Array; scale: Float32Array } {
  const q = new Int8Array(N * K), scale = new Float32Array(N);
  for (let n = 0; n < N; n++) scale[n] = quantizeRow(w, n * K, K, q, n * K);
  return { q, scale };
}

/**
 * quantizeLinearWeights' rows packed for assembly/linear_int8.ts (the twin of its packLinearWeightsInt8): column
 * n = p·nr + j's pair kp at ((p·pairs + kp)·nr + j)·2 int16s, zeros past K and N; scales padded with zeros.
 */
export function packLinearWeightsInt8Js(q: Int8Array, scale: Float32Array, N: number, K: number, nr: number): { panels: Int16Array; scales: Float32Array } {
  const count = Math.ceil(N / nr), pairs = (K + 1) >> 1;
  const panels = new Int16Array(count * pairs * nr * 2), scales = new Float32Array(count * nr);
  scales.set(scale.subarray(0, N));
  for (let n = 0; n < N; n++) {
    const p = Math.floor(n / nr), j = n - p * nr, src = n * K;
    for (let k = 0; k < K; k++) panels[((p * pairs + (k >> 1)) * nr + j) * 2 + (k & 1)] = q[src + k];
  }
  return { panels, scales };
}

/**
 * y = act(x·wᵀ + b + residual) with w given quantized (quantizeLinearWeights) and x quantized here, row by row.
 * x: [M, K], qw: [N, K], sw: [N], b: [N] or null, residual: [M, N] or null, y: [M, N].
 */
export function linearInt8(
  x: Float32Array, qw: Int8Array, sw: Float32Array, b: Float32Array | null, y: Float32Array,
  M: number, K: number, N: number, act: Activation = "none", residual: Float32Array | null = null,
): void {
  const qx = new Int8Array(K);
  for (let m = 0; m < M; m++) {
    const sx = quantizeRow(x, m * K, K, qx, 0);
    for (let n = 0; n < N; n++) {
      let acc = 0;
      for (let k = 0; k < K; k++) acc = (acc + Math.imul(qx[k], qw[n * K + k])) | 0; // int32, wrapping as i32.add
      let v = f(f(acc) * f(sx * sw[n]));
      if (b) v = f(v + b[n]);
      if (residual) v = f(v + residual[m * N + n]);
      y[m * N + n] = activate(v, act);
    }
  }
}
