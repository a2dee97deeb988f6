import { f } from "./f32.js";

/**
 * BatchNorm2d in eval mode is an affine map per channel, so it folds into the preceding bias-free convolution:
 * w'[o] = w[o]·s[o], b'[o] = β[o] − μ[o]·s[o], with s = γ / √(σ² + ε). Done once at load; both backends then run
 * the same folded weights (so this changes the rounding against PyTorch, within 1e-6 relative, but never between us).
 * No SIMD twin: it runs once, in TypeScript, before the weights reach either backend.
 */
export function foldBatchNorm(
  convWeight: Float32Array, O: number,
  gamma: Float32Array, beta: Float32Array, mean: Float32Array, variance: Float32Array, eps = 1e-5,
): { weight: Float32Array; bias: Float32Array } {
  const per = convWeight.length / O;
  const weight = new Float32Array(convWeight.length);
  const bias = new Float32Array(O);
  for (let o = 0; o < O; o++) {
    const scale = f(gamma[o] / f(Math.sqrt(f(variance[o] + eps))));
    for (let i = 0; i < per; i++) weight[o * per + i] = f(convWeight[o * per + i] * scale);
    bias[o] = f(beta[o] - f(mean[o] * scale));
  }
  return { weight, bias };
}
