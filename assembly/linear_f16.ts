// Weights stored as IEEE binary16 (an fp16 checkpoint's own bits), widened to f32 inside wasm memory: at load
// (packLinearWeightsF16, packRowsF16: the f32 panels and tiles of assembly/linear.ts, the same bits as widening
// first), or per panel inside the GEMM (linearHalf: the panels stay f16, half the memory). The widening is exact,
// so the products and sums are those of the f32 path; the twin of each widening is src/kernels/f16.ts.

import { gemmPanels, BIAS_NONE, BIAS_PER_COLUMN, MR, NR } from "./linear";

// @ts-ignore: decorator
@inline const TWO_112: f32 = 5.192296858534828e33; // 2^112: moves binary16's exponent bias (15) to binary32's (127)
// @ts-ignore: decorator
@inline const QUIET_NAN: u32 = 0x7fc00000; // every f16 NaN widens to this one, as src/kernels/f16.ts

/** One binary16 value (in the low 16 bits) as f32. The magnitude bits, placed in a binary32 and scaled by 2^112,
 *  give normal and subnormal values exactly (wasm keeps subnormals); infinities and NaN are set apart. */
// @ts-ignore: decorator
@inline export function halfToFloat(h: u32): f32 {
  const mag = h & 0x7fff, sign = (h & 0x8000) << 16;
  if (mag >= 0x7c00) return reinterpret<f32>(mag > 0x7c00 ? QUIET_NAN : sign | 0x7f800000);
  return reinterpret<f32>(reinterpret<u32>(reinterpret<f32>(mag << 13) * TWO_112) | sign);
}

/** halfToFloat of finite halves, sign-extended to i32 lanes: shifted into place, the sign's copies cleared from
 *  the exponent, scaled; 3 operations for 4 values. */
// @ts-ignore: decorator
@inline function finiteHalfToFloat4(s: v128): v128 {
  return f32x4.mul(v128.and(i32x4.shl(s, 13), i32x4.splat(0x8fffffff)), f32x4.splat(TWO_112));
}

/** n (a multiple of 8) finite halves at src widened to floats at dst. */
function widenFiniteHalves(src: usize, dst: usize, n: i32): void {
  const end = src + (<usize>n << 1);
  for (; src < end; src += 16, dst += 32) {
    const h = v128.load(src);
    v128.store(dst, finiteHalfToFloat4(i32x4.extend_low_i16x8_s(h)));
    v128.store(dst, finiteHalfToFloat4(i32x4.extend_high_i16x8_s(h)), 16);
  }
}

/**
 * packLinearWeights (assembly/linear.ts) of an f16 w [N, K]: the same f32 panels, widened as they are packed, for
 * the panels [u0, u1).
 */
export function packLinearWeightsF16(w: usize, N: i32, K: i32, dst: usize, tid: i32, u0: i32, u1: i32): void {
  for (let p = u0; p < u1; p++) {
    const base = dst + <usize>p * K * NR * 4;
    for (let j = 0; j < NR; j++) {
      const n = p * NR + j;
      const src = w + <usize>n * K * 2;
      for (let k = 0; k < K; k++) {
        store<f32>(base + ((<usize>k * NR + j) << 2), n < N ? halfToFloat(load<u16>(src + (<usize>k << 1))) : 0);
      }
    }
  }
}

/** packRows (assembly/linear.ts) of an f16 x [M, K] (a convolution's weights), widened, for the tiles [u0, u1). */
export function packRowsF16(x: usize, M: i32, K: i32, dst: usize, tid: i32, u0: i32, u1: i32): void {
  for (let t = u0; t < u1; t++) {
    let d = dst + <usize>t * K * MR * 4;
    const r0 = x + <usize>min(t * MR, M - 1) * K * 2, r1 = x + <usize>min(t * MR + 1, M - 1) * K * 2;
    for (let k = 0; k < K; k++) {
      const o = <usize>k << 1;
      store<f32>(d, halfToFloat(load<u16>(r0 + o)));
      store<f32>(d, halfToFloat(load<u16>(r1 + o)), 4);
      d += 8;
    }
  }
}

/**
 * The panel layout of packLinearWeights, of f16 w [N, K] kept as f16 (2 bytes a weight), for the panels [u0, u1).
 * Sets the i32 at `special` to 1 if a weight is infinite or NaN: linearHalf widens finite halves only (the backend
 * then keeps that tensor as f32).
 */
export function packHalfPanels(w: usize, N: i32, K: i32, dst: usize, special: usize, tid: i32, u0: i32, u1: i32): void {
  let seen: u32 = 0;
  for (let p = u0; p < u1; p++) {
    const base = dst + <usize>p * K * NR * 2;
    for (let j = 0; j < NR; j++) {
      const n = p * NR + j;
      const src = w + <usize>n * K * 2;
      for (let k = 0; k < K; k++) {
        const h: u32 = n < N ? load<u16>(src + (<usize>k << 1)) : 0;
        seen |= u32((h & 0x7c00) == 0x7c00);
        store<u16>(base + ((<usize>k * NR + j) << 1), <u16>h);
      }
    }
  }
  if (seen) store<i32>(special, 1);
}

/**
 * linear (assembly/linear.ts) over f16 panels of finite weights (packHalfPanels): each panel of [u0, u1) is widened into this
 * thread's K·NR floats at scratch + tid·K·NR·4, then multiplied by the same GEMM. The TypeScript twin is
 * src/kernels/linear_f16.ts.
 */
export function linearHalf(
  x: usize, w: usize, b: usize, y: usize, M: i32, K: i32, N: i32, act: i32, residual: usize, scratch: usize,
  tid: i32, u0: i32, u1: i32,
): void {
  const panel = scratch + <usize>tid * K * NR * 4;
  for (let p = u0; p < u1; p++) {
    widenFiniteHalves(w + <usize>p * K * NR * 2, panel, K * NR);
    gemmPanels(x, panel, b, b ? BIAS_PER_COLUMN : BIAS_NONE, residual, y, M, K, N, act, p, p + 1);
  }
}
