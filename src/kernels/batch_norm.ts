import { f } from "./f32.js";

/**
 * BatchNorm2d in eval mode is an affine map per channel, so it folds into the preceding bias-free convolution:
 * w'[o] = w[o]·s[o], b'[o] = β[o] − μ[o]·s[o], with s = γ / √(σ² + ε). s and b' are computed once at load; w' too
 * (scaleRows), except that the wasm backend with weights "fp16" keeps w as f16 and multiplies each widened row by
 * s[o] before each convolution (packRowsF16 in assembly/linear_f16.ts): the same f32 products, so the same bits. Both
 * backends run the same folded weights (so this changes the rounding against PyTorch, within 1e-6 relative, but
 * never between us).
 */
export function batchNormScale(
  O: number, gamma: Float32Array, beta: Float32Array, mean: Float32Array, variance: Float32Array, eps = 1e-5,
): { scale: Float32Array; bias: Float32Array } {
  const scale = new Float32Array(O);
  const bias = new Float32Array(O);
  for (let o = 0; o < O; o++) {
    scale[o] = f(gamma[o] / f(Math.sqrt(f(variance[o] + eps))));
    bias[o] = f(beta[o] - f(mean[o] * scale[o]!));
  }
  return { scale, bias };
}

/** w'[o, i] = w[o, i]·s[o] for the O rows of w. */
export function scaleRows(w: Float32Array, O: number, scale: Float32Array): Float32Array {
  const per = w.length / O;
  const out = new Float32Array(w.length);
  for (let o = 0; o < O; o++) for (let i = 0; i < per; i++) out[o * per + i] = f(w[o * per + i]! * scale[o]!);
  return out;
}

/** The folded weight and bias at once (batchNormScale, then scaleRows). */
export function foldBatchNorm(
  convWeight: Float32Array, O: number,
  gamma: Float32Array, beta: Float32Array, mean: Float32Array, variance: Float32Array, eps = 1e-5,
): { weight: Float32Array; bias: Float32Array } {
  const { scale, bias } = batchNormScale(O, gamma, beta, mean, variance, eps);
  return { weight: scaleRows(convWeight, O, scale), bias };
}
