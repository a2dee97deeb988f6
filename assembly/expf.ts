// SIMD twin of src/kernels/exp.ts and activations.ts: the same f32 operations in the same order, four lanes at a
// time, so every lane is bit-identical to the scalar TypeScript. No fused multiply-add anywhere.
import { erf4 } from "./erf";

export const ACT_NONE = 0;
export const ACT_RELU = 1;
export const ACT_QUICKGELU = 2;
export const ACT_GELU = 3;

// @ts-ignore: decorator
@inline const EXP_HI: f32 = 88.72283935546875;
// @ts-ignore: decorator
@inline const EXP_LO: f32 = -86.5;
// @ts-ignore: decorator
@inline const LOG2E: f32 = 1.44269504088896341;
// @ts-ignore: decorator
@inline const LN2_HI: f32 = 0.693359375;
// @ts-ignore: decorator
@inline const LN2_LO: f32 = -2.12194440e-4;
// @ts-ignore: decorator
@inline const P0: f32 = 1.9875691500e-4;
// @ts-ignore: decorator
@inline const P1: f32 = 1.3981999507e-3;
// @ts-ignore: decorator
@inline const P2: f32 = 8.3334519073e-3;
// @ts-ignore: decorator
@inline const P3: f32 = 4.1665795894e-2;
// @ts-ignore: decorator
@inline const P4: f32 = 1.6666665459e-1;
// @ts-ignore: decorator
@inline const P5: f32 = 5.0000001201e-1;
// @ts-ignore: decorator
@inline const QUICK_GELU_ALPHA: f32 = 1.702;
// @ts-ignore: decorator
@inline const SQRT1_2: f32 = 0.70710678118654752;

// @ts-ignore: decorator
@inline function fma4(p: v128, r: v128, c: f32): v128 {
  return f32x4.add(f32x4.mul(p, r), f32x4.splat(c));
}

// @ts-ignore: decorator
@inline
export function expf4(x: v128): v128 {
  const n = f32x4.floor(f32x4.add(f32x4.mul(x, f32x4.splat(LOG2E)), f32x4.splat(0.5)));
  const r = f32x4.sub(f32x4.sub(x, f32x4.mul(n, f32x4.splat(LN2_HI))), f32x4.mul(n, f32x4.splat(LN2_LO)));
  let p = fma4(f32x4.splat(P0), r, P1);
  p = fma4(p, r, P2);
  p = fma4(p, r, P3);
  p = fma4(p, r, P4);
  p = fma4(p, r, P5);
  p = f32x4.add(f32x4.add(f32x4.mul(p, f32x4.mul(r, r)), r), f32x4.splat(1));
  // 2^(n-1) from its exponent bits (n - 1 + 127), then ·2: n can be 128
  const scale = i32x4.shl(i32x4.add(i32x4.trunc_sat_f32x4_s(n), i32x4.splat(126)), 23);
  let y = f32x4.mul(f32x4.mul(p, scale), f32x4.splat(2));
  y = v128.bitselect(f32x4.splat(Infinity), y, f32x4.gt(x, f32x4.splat(EXP_HI)));
  return v128.bitselect(f32x4.splat(0), y, f32x4.lt(x, f32x4.splat(EXP_LO)));
}

// @ts-ignore: decorator
@inline
export function relu4(x: v128): v128 {
  // zero where x < 0: NaN and −0 pass through, as in torch.relu
  return v128.andnot(x, f32x4.lt(x, f32x4.splat(0)));
}

// @ts-ignore: decorator
@inline
export function quickGelu4(x: v128): v128 {
  const e = expf4(f32x4.neg(f32x4.mul(f32x4.splat(QUICK_GELU_ALPHA), x)));
  return f32x4.mul(x, f32x4.div(f32x4.splat(1), f32x4.add(f32x4.splat(1), e)));
}

// @ts-ignore: decorator
@inline
export function gelu4(x: v128): v128 {
  const e = erf4(f32x4.mul(x, f32x4.splat(SQRT1_2)));
  return f32x4.mul(f32x4.mul(x, f32x4.splat(0.5)), f32x4.add(f32x4.splat(1), e));
}

// @ts-ignore: decorator
@inline
export function activate4(x: v128, act: i32): v128 {
  if (act == ACT_RELU) return relu4(x);
  if (act == ACT_QUICKGELU) return quickGelu4(x);
  if (act == ACT_GELU) return gelu4(x);
  return x;
}

/** y[i] = expf(x[i]) for i in [i0, i1); for the tests (softmax and QuickGELU inline expf4). */
export function expfArray(x: usize, y: usize, i0: i32, i1: i32): void {
  let i = i0;
  for (; i + 4 <= i1; i += 4) v128.store(y + (<usize>i << 2), expf4(v128.load(x + (<usize>i << 2))));
  for (; i < i1; i++) {
    const v = expf4(f32x4.splat(load<f32>(x + (<usize>i << 2))));
    store<f32>(y + (<usize>i << 2), f32x4.extract_lane(v, 0));
  }
}

/** y[i] = act(x[i]): the epilogue alone, for the tests. */
export function activateArray(x: usize, y: usize, act: i32, i0: i32, i1: i32): void {
  let i = i0;
  for (; i + 4 <= i1; i += 4) v128.store(y + (<usize>i << 2), activate4(v128.load(x + (<usize>i << 2)), act));
  for (; i < i1; i++) {
    const v = activate4(f32x4.splat(load<f32>(x + (<usize>i << 2))), act);
    store<f32>(y + (<usize>i << 2), f32x4.extract_lane(v, 0));
  }
}
