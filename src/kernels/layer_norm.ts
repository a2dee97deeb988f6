import { f } from "./f32.js";

/**
 * Per row of D values: μ = Σx / D, σ² = Σ(x − μ)² / D (biased), y = (x − μ)·(1 / √(σ² + ε))·γ + β.
 * Sums in ascending order from +0; always f32, as the reference's fp16-safe LayerNorm.
 */
export function layerNorm(
  x: Float32Array, gamma: Float32Array, beta: Float32Array, y: Float32Array, rows: number, D: number, eps = 1e-5,
): void {
  for (let r = 0; r < rows; r++) {
    const o = r * D;
    let sum = 0;
    for (let i = 0; i < D; i++) sum = f(sum + x[o + i]);
    const mean = f(sum / D);
    let sq = 0;
    for (let i = 0; i < D; i++) {
      const d = f(x[o + i] - mean);
      sq = f(sq + f(d * d));
    }
    const rstd = f(1 / f(Math.sqrt(f(f(sq / D) + eps))));
    for (let i = 0; i < D; i++) y[o + i] = f(f(f(f(x[o + i] - mean) * rstd) * gamma[i]) + beta[i]);
  }
}
