// SIMD twin of src/kernels/erf.ts: both regions on every lane, then a lane-wise select, with the same f32
// operations in the same order, so every lane is bit-identical to the scalar TypeScript.
import { expf4, mulAdd4 } from "./exp";

// @ts-ignore: decorator
@inline const ERF_SPLIT: f32 = 1;
// @ts-ignore: decorator
@inline const ERF_CLAMP: f32 = 4;
// @ts-ignore: decorator
@inline const ERF_CENTRE: f32 = 2.5;

// @ts-ignore: decorator
@inline
export function erf4(x: v128): v128 {
  // |x| < 1: x + x·P(x²)
  const t = f32x4.mul(x, x);
  let p = mulAdd4(f32x4.splat(7.85381e-5), t, -0.0008010179);
  p = mulAdd4(p, t, 0.0051883264);
  p = mulAdd4(p, t, -0.026853811);
  p = mulAdd4(p, t, 0.112835854);
  p = mulAdd4(p, t, -0.37612626);
  p = mulAdd4(p, t, 0.12837917);
  const small = f32x4.add(x, f32x4.mul(x, p));
  // |x| ≥ 1: ±(1 − expf(−z²)·Q(z − 2.5)), z = min(|x|, 4)
  const ax = f32x4.abs(x);
  const z = f32x4.min(ax, f32x4.splat(ERF_CLAMP));
  const v = f32x4.sub(z, f32x4.splat(ERF_CENTRE));
  let q = mulAdd4(f32x4.splat(-2.7995096e-5), v, -5.7783152e-5);
  q = mulAdd4(q, v, -0.00013621376);
  q = mulAdd4(q, v, 0.00022367056);
  q = mulAdd4(q, v, -0.00064916146);
  q = mulAdd4(q, v, 0.002520712);
  q = mulAdd4(q, v, -0.008000191);
  q = mulAdd4(q, v, 0.024929533);
  q = mulAdd4(q, v, -0.07434938);
  q = mulAdd4(q, v, 0.21080634);
  const y = f32x4.sub(f32x4.splat(1), f32x4.mul(expf4(f32x4.neg(f32x4.mul(z, z))), q));
  const large = v128.or(y, v128.and(x, f32x4.splat(-0.0)));
  return v128.bitselect(small, large, f32x4.lt(ax, f32x4.splat(ERF_SPLIT)));
}

/** y[i] = erf(x[i]) for i in [u0, u1); for the tests (GELU inlines erf4). */
export function erfArray(x: usize, y: usize, tid: i32, u0: i32, u1: i32): void {
  let i = u0;
  for (; i + 4 <= u1; i += 4) v128.store(y + (<usize>i << 2), erf4(v128.load(x + (<usize>i << 2))));
  for (; i < u1; i++) {
    const v = erf4(f32x4.splat(load<f32>(x + (<usize>i << 2))));
    store<f32>(y + (<usize>i << 2), f32x4.extract_lane(v, 0));
  }
}
