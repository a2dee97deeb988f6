// SIMD twin of src/kernels/activations.ts: the epilogue of the producing kernels, the same f32 operations in the
// same order as the TypeScript, four lanes at a time.
import { erf4 } from "./erf";
import { expf4 } from "./exp";

// the activation codes of the kernels' `act` argument, read by src/backend/wasm.ts from the module's exports
export const ACT_NONE = 0;
export const ACT_RELU = 1;
export const ACT_QUICKGELU = 2;
export const ACT_GELU = 3;

// @ts-ignore: decorator
@inline const QUICK_GELU_ALPHA: f32 = 1.702;
// @ts-ignore: decorator
@inline const SQRT1_2: f32 = 0.70710678118654752;

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

/** y[i] = act(x[i]): the epilogue alone, for the tests. */
export function activateArray(x: usize, y: usize, act: i32, tid: i32, u0: i32, u1: i32): void {
  let i = u0;
  for (; i + 4 <= u1; i += 4) v128.store(y + (<usize>i << 2), activate4(v128.load(x + (<usize>i << 2)), act));
  for (; i < u1; i++) {
    const v = activate4(f32x4.splat(load<f32>(x + (<usize>i << 2))), act);
    store<f32>(y + (<usize>i << 2), f32x4.extract_lane(v, 0));
  }
}
