// SIMD twin of src/kernels/exp.ts: the same f32 operations in the same order, four lanes at a time, so every lane
// is bit-identical to the scalar TypeScript. No fused multiply-add anywhere.

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
/** p·r + c: a multiply, rounded, then an add, rounded (never fused), as the TypeScript's f(f(p·r) + c). */
// @ts-ignore: decorator
@inline
export function mulAdd4(p: v128, r: v128, c: f32): v128 {
  return f32x4.add(f32x4.mul(p, r), f32x4.splat(c));
}

// @ts-ignore: decorator
@inline
export function expf4(x: v128): v128 {
  const n = f32x4.floor(f32x4.add(f32x4.mul(x, f32x4.splat(LOG2E)), f32x4.splat(0.5)));
  const r = f32x4.sub(f32x4.sub(x, f32x4.mul(n, f32x4.splat(LN2_HI))), f32x4.mul(n, f32x4.splat(LN2_LO)));
  let p = mulAdd4(f32x4.splat(P0), r, P1);
  p = mulAdd4(p, r, P2);
  p = mulAdd4(p, r, P3);
  p = mulAdd4(p, r, P4);
  p = mulAdd4(p, r, P5);
  p = f32x4.add(f32x4.add(f32x4.mul(p, f32x4.mul(r, r)), r), f32x4.splat(1));
  // 2^(n-1) from its exponent bits (n - 1 + 127), then ·2: n can be 128
  const scale = i32x4.shl(i32x4.add(i32x4.trunc_sat_f32x4_s(n), i32x4.splat(126)), 23);
  let y = f32x4.mul(f32x4.mul(p, scale), f32x4.splat(2));
  y = v128.bitselect(f32x4.splat(Infinity), y, f32x4.gt(x, f32x4.splat(EXP_HI)));
  return v128.bitselect(f32x4.splat(0), y, f32x4.lt(x, f32x4.splat(EXP_LO)));
}

/** y[i] = expf(x[i]) for i in [u0, u1); for the tests (softmax and QuickGELU inline expf4). */
export function expfArray(x: usize, y: usize, tid: i32, u0: i32, u1: i32): void {
  let i = u0;
  for (; i + 4 <= u1; i += 4) v128.store(y + (<usize>i << 2), expf4(v128.load(x + (<usize>i << 2))));
  for (; i < u1; i++) {
    const v = expf4(f32x4.splat(load<f32>(x + (<usize>i << 2))));
    store<f32>(y + (<usize>i << 2), f32x4.extract_lane(v, 0));
  }
}

