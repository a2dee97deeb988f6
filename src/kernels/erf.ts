import { expf } from "./exp.js";
import { f } from "./f32.js";

// The project's own float32 erf, for exact GELU, bit-identical to its SIMD twin assembly/erf.ts (JS has no
// Math.erf, and libm erf's last bits vary). Two regions, both odd in x:
//   |x| < 1: erf(x) = x + x·P(x²), P of degree 6;
//   |x| ≥ 1: erf(x) = ±(1 − expf(−z²)·Q(z − 2.5)), z = min(|x|, 4), Q of degree 9: erfc(z) < 2^-25 from
//            z ≈ 3.92 on, so this rounds to exactly 1 there, and the clamp keeps ±Inf at ±1.
// P and Q are weighted minimax fits in float64 (relative error of erf for P, absolute for expf·Q), rounded to
// f32. Against float64 erf on 7.3M float32 in [2^-30, 4.5] and the subnormals: at most 1.18 ulp.
// NaN stays NaN (Math.min and f32x4.min both propagate it), −0 gives −0.

export const ERF_SPLIT = 1;
export const ERF_CLAMP = 4;
export const ERF_CENTRE = 2.5;
export const ERF_P = [
  0.12837917, -0.37612626, 0.112835854, -0.026853811, 0.0051883264, -0.0008010179, 7.85381e-5,
].map(f);
export const ERF_Q = [
  0.21080634, -0.07434938, 0.024929533, -0.008000191, 0.002520712, -0.00064916146, 0.00022367056,
  -0.00013621376, -5.7783152e-5, -2.7995096e-5,
].map(f);

/** c[0] + v·(c[1] + v·(…)), one rounding per operation (the twin unrolls it into mulAdd4 steps). */
function horner(c: number[], v: number): number {
  let p = c[c.length - 1];
  for (let i = c.length - 2; i >= 0; i--) p = f(f(p * v) + c[i]);
  return p;
}

export function erf(x: number): number {
  const ax = Math.abs(x);
  if (ax < ERF_SPLIT) return f(x + f(x * horner(ERF_P, f(x * x))));
  const z = Math.min(ax, ERF_CLAMP);
  const y = f(1 - f(expf(-f(z * z)) * horner(ERF_Q, f(z - ERF_CENTRE))));
  return x < 0 ? -y : y;
}
