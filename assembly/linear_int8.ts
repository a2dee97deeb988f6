// The SIMD twin of src/kernels/linear_int8.ts: y = act(f32(Σ_k qx·qw) · f32(sx·sw) + b + residual), the k-sum in
// int32 with i32x4.dot_i16x8_s (plain SIMD128: two int16 products added into each int32 lane), exact, so any order
// and any thread split give the same sum; the floats after it in the TypeScript's order.
//
// Operands are int16 in k-pairs, so that one dot takes two k-steps of four output columns:
// - weights (packed in src/backend/wasm.ts): panels of QNR columns; panel p, pair kp holds, for column group
//   g = 0..3, the vector [w[n, 2kp], w[n, 2kp+1]] for its four columns n = p·QNR + 4g + 0..3 (zero past K and N);
// - activations (quantizeRowsInt8): tiles of QMR rows; tile t, pair kp holds [x[r, 2kp], x[r, 2kp+1]] for each
//   row r of the tile (missing rows repeat the last one), so that one load32_splat gives a row's pair in every lane.
// Weights are widened to int16 at pack time: kept int8 and widened in the kernel (i16x8.extend_low/high_i8x16_s,
// half the memory) was measured 20-25% slower at M = 50, K 768-3072 (0.77 against 0.60 ms at 768×768): the loop is
// bound by the SIMD ALU ports, which the extends share with the dots, not by the loads.
// The 2×16 tile with a hand-unrolled pair of steps is the f32 GEMM's (assembly/linear.ts, where it is explained):
// 8 accumulators, 4 weight vectors, 2 splats. A step (one k-pair) has the f32 step's instructions (dot + add for
// mul + add) for twice the k, so twice its speed is the bound; measured (Zen 4, M 50, N 768, K 128-1536) a step
// takes 1.41 ns against the f32 step's 1.32, with no per-tile cost to speak of: the raw GEMM is 1.87-1.92× the
// f32 one. 3×12 and 5×8 tiles spill an accumulator in V8 (its scheduler issues a block's splats together): 2× slower.

import { ACT_NONE, activate4 } from "./activations";
import { halfToFloat } from "./linear_f16";

// read by src/backend/wasm.ts from the module's exports
export const QNR = 16; // columns per panel
export const QMR = 2; // rows per tile
// @ts-ignore: decorator
@inline const MC = 192; // M block (a multiple of QMR)

/** y of a partial vector: lanes [0, n) at p. */
// @ts-ignore: decorator
@inline function store4(p: usize, v: v128, n: i32): void {
  if (n >= 4) {
    v128.store(p, v);
    return;
  }
  if (n > 0) store<f32>(p, f32x4.extract_lane(v, 0));
  if (n > 1) store<f32>(p, f32x4.extract_lane(v, 1), 4);
  if (n > 2) store<f32>(p, f32x4.extract_lane(v, 2), 8);
}

// @ts-ignore: decorator
@inline function load4(p: usize, n: i32): v128 {
  if (n >= 4) return v128.load(p);
  let v = f32x4.splat(0);
  if (n > 0) v = f32x4.replace_lane(v, 0, load<f32>(p));
  if (n > 1) v = f32x4.replace_lane(v, 1, load<f32>(p, 4));
  if (n > 2) v = f32x4.replace_lane(v, 2, load<f32>(p, 8));
  return v;
}

/**
 * max |x[k]| over a row of K floats: exact, so in any order; NaN if the row holds one, as Math.max. pmax (one
 * instruction, where f32x4.max is a sequence on x64) drops NaN, so NaN is tracked aside.
 */
// @ts-ignore: decorator
@inline function rowMaxAbs(row: usize, K: i32): f32 {
  let mv = f32x4.splat(0), nan = mv;
  let k = 0;
  for (; k + 4 <= K; k += 4) {
    const a = f32x4.abs(v128.load(row + (<usize>k << 2)));
    mv = f32x4.pmax(mv, a);
    nan = v128.or(nan, f32x4.ne(a, a));
  }
  let amax = max(max(f32x4.extract_lane(mv, 0), f32x4.extract_lane(mv, 1)), max(f32x4.extract_lane(mv, 2), f32x4.extract_lane(mv, 3)));
  for (; k < K; k++) amax = max(amax, abs(load<f32>(row + (<usize>k << 2))));
  return v128.any_true(nan) ? NaN : amax;
}

/**
 * Four quantized values: roundHalfEven(x·inv) clamped to ±127, NaN → 0, as int32 lanes. Clamped first (the same,
 * as rounding is monotone and ±127 are integers), then rounded by adding 1.5·2²³, where the float spacing is 1: that
 * one add rounds to nearest, ties to even, and leaves the integer in the low bits (cheaper than nearest + trunc_sat).
 */
// @ts-ignore: decorator
@inline function quantize4(x: v128, inv: v128): v128 {
  let v = f32x4.mul(x, inv);
  v = v128.and(v, f32x4.eq(v, v)); // NaN → +0
  v = f32x4.pmin(f32x4.pmax(v, f32x4.splat(-127)), f32x4.splat(127)); // single instructions, NaN gone
  return i32x4.sub(f32x4.add(v, f32x4.splat(MAGIC)), i32x4.splat(MAGIC_BITS));
}
// @ts-ignore: decorator
@inline const MAGIC: f32 = 12582912; // 1.5·2²³
// @ts-ignore: decorator
@inline const MAGIC_BITS: i32 = 0x4b400000;

/**
 * Quantizes the rows of x [M, K] (row-major f32) for the row tiles [u0, u1): their int16 k-pairs into dst (the
 * tile layout above) and each row's scale max|x_row| / 127 into scales[t·QMR + i].
 */
export function quantizeRowsInt8(x: usize, M: i32, K: i32, dst: usize, scales: usize, tid: i32, u0: i32, u1: i32): void {
  const pairs = (K + 1) >> 1, tileBytes = <usize>pairs * QMR * 4;
  for (let t = u0; t < u1; t++) {
    const r0 = x + <usize>min(t * QMR, M - 1) * K * 4, r1 = x + <usize>min(t * QMR + 1, M - 1) * K * 4;
    const a0 = rowMaxAbs(r0, K), a1 = rowMaxAbs(r1, K);
    store<f32>(scales + (<usize>(t * QMR) << 2), a0 / <f32>127); // a NaN in the row: NaN out
    store<f32>(scales + (<usize>(t * QMR + 1) << 2), a1 / <f32>127);
    const i0 = f32x4.splat(a0 > 0 ? <f32>127 / a0 : 0), i1 = f32x4.splat(a1 > 0 ? <f32>127 / a1 : 0);
    let d = dst + <usize>t * tileBytes;
    let k = 0;
    // eight k of both rows: four pairs each, interleaved by pair (row 0's, row 1's) as the GEMM splats them
    for (; k + 8 <= K; k += 8) {
      const o = <usize>k << 2;
      const q0 = i16x8.narrow_i32x4_s(quantize4(v128.load(r0 + o), i0), quantize4(v128.load(r0 + o, 16), i0));
      const q1 = i16x8.narrow_i32x4_s(quantize4(v128.load(r1 + o), i1), quantize4(v128.load(r1 + o, 16), i1));
      v128.store(d, i8x16.shuffle(q0, q1, 0, 1, 2, 3, 16, 17, 18, 19, 4, 5, 6, 7, 20, 21, 22, 23));
      v128.store(d, i8x16.shuffle(q0, q1, 8, 9, 10, 11, 24, 25, 26, 27, 12, 13, 14, 15, 28, 29, 30, 31), 16);
      d += 32;
    }
    for (; k < K; k += 2) {
      const o = <usize>k << 2, two = k + 1 < K;
      const v0 = f32x4.replace_lane(f32x4.splat(load<f32>(r0 + o)), 1, two ? load<f32>(r0 + o, 4) : 0);
      const v1 = f32x4.replace_lane(f32x4.splat(load<f32>(r1 + o)), 1, two ? load<f32>(r1 + o, 4) : 0);
      const q = i16x8.narrow_i32x4_s(quantize4(v0, i0), quantize4(v1, i1)); // lanes 0, 1: row 0; 4, 5: row 1
      store<u32>(d, i32x4.extract_lane(q, 0));
      store<u32>(d, i32x4.extract_lane(q, 2), 4);
      d += 8;
    }
  }
}

/**
 * Quantizes and packs w [N, K] (f32, or f16 if half) for the panels [u0, u1): each column's int16 k-pairs into dst
 * (the panel layout above, zeros past K and N) and its scale max|w_row| / 127 into scales[n] (0 past N), the bits
 * of quantizeLinearWeights and the packing of src/backend/wasm.ts. f16 rows are widened first into the thread's
 * slot of scratch (K floats rounded up to 4 per thread).
 */
export function packLinearWeightsInt8(
  w: usize, half: i32, N: i32, K: i32, dst: usize, scales: usize, scratch: usize, tid: i32, u0: i32, u1: i32,
): void {
  const pairs = (K + 1) >> 1, stride = <usize>QNR * 4; // bytes from one pair of a column to its next
  const slot = scratch + <usize>tid * ((K + 3) & ~3) * 4;
  for (let p = u0; p < u1; p++) {
    const panel = dst + <usize>p * pairs * QNR * 4;
    for (let j = 0; j < QNR; j++) {
      const n = p * QNR + j;
      let d = panel + (<usize>j << 2);
      if (n >= N) {
        store<f32>(scales + (<usize>n << 2), 0);
        for (let kp = 0; kp < pairs; kp++, d += stride) store<u32>(d, 0);
        continue;
      }
      let row = w + <usize>n * K * (half ? 2 : 4);
      if (half) {
        for (let k = 0; k < K; k++) store<f32>(slot + (<usize>k << 2), halfToFloat(load<u16>(row + (<usize>k << 1))));
        row = slot;
      }
      const a = rowMaxAbs(row, K);
      store<f32>(scales + (<usize>n << 2), a / <f32>127); // a NaN in the row: NaN out
      const inv = f32x4.splat(a > 0 ? <f32>127 / a : 0);
      let k = 0;
      for (; k + 8 <= K; k += 8) {
        const o = <usize>k << 2;
        const q = i16x8.narrow_i32x4_s(quantize4(v128.load(row + o), inv), quantize4(v128.load(row + o, 16), inv));
        store<u32>(d, i32x4.extract_lane(q, 0));
        store<u32>(d + stride, i32x4.extract_lane(q, 1));
        store<u32>(d + 2 * stride, i32x4.extract_lane(q, 2));
        store<u32>(d + 3 * stride, i32x4.extract_lane(q, 3));
        d += 4 * stride;
      }
      for (; k < K; k += 2, d += stride) {
        const o = <usize>k << 2;
        const v = f32x4.replace_lane(f32x4.splat(load<f32>(row + o)), 1, k + 1 < K ? load<f32>(row + o, 4) : 0);
        store<u32>(d, i32x4.extract_lane(i16x8.narrow_i32x4_s(quantize4(v, inv), quantize4(v, inv)), 0));
      }
    }
  }
}

/**
 * y = act(x·wᵀ + b + residual) for the output columns of the panels [u0, u1). x: the tiles of quantizeRowsInt8,
 * sx their row scales; w: [N, K] quantized and packed in panels, sw: its column scales, padded to whole panels
 * with zeros, as b [N] (or 0); y and residual (or 0): [M, N] f32. All pointers are byte addresses.
 */
export function linearInt8(
  x: usize, sx: usize, w: usize, sw: usize, b: usize, y: usize, M: i32, K: i32, N: i32, act: i32, residual: usize,
  tid: i32, u0: i32, u1: i32,
): void {
  const pairs = (K + 1) >> 1;
  const tileBytes = <usize>pairs * QMR * 4, panelBytes = <usize>pairs * QNR * 4, ldy = <usize>N << 2;
  for (let mc = 0; mc < M; mc += MC) {
    const mEnd = min(mc + MC, M);
    for (let p = u0; p < u1; p++) {
      const n0 = p * QNR, cols = min(QNR, N - n0);
      const bp = w + <usize>p * panelBytes, yp = y + (<usize>n0 << 2), swp = sw + (<usize>n0 << 2);
      const bp0 = b ? b + (<usize>n0 << 2) : 0, rp = residual ? residual + (<usize>n0 << 2) : 0;
      for (let m = mc; m < mEnd; m += QMR) {
        let ap = x + <usize>(m / QMR) * tileBytes, bk = bp;
        let c00 = i32x4.splat(0), c01 = c00, c02 = c00, c03 = c00;
        let c10 = c00, c11 = c00, c12 = c00, c13 = c00;
        if (pairs > 0) {
          const bEnd = bk + panelBytes, bLast = bEnd - QNR * 4;
          while (true) {
            let x0 = v128.load(bk), x1 = v128.load(bk, 16), x2 = v128.load(bk, 32), x3 = v128.load(bk, 48);
            let s = v128.load32_splat(ap);
            c00 = i32x4.add(c00, i32x4.dot_i16x8_s(s, x0)); c01 = i32x4.add(c01, i32x4.dot_i16x8_s(s, x1));
            c02 = i32x4.add(c02, i32x4.dot_i16x8_s(s, x2)); c03 = i32x4.add(c03, i32x4.dot_i16x8_s(s, x3));
            s = v128.load32_splat(ap, 4);
            c10 = i32x4.add(c10, i32x4.dot_i16x8_s(s, x0)); c11 = i32x4.add(c11, i32x4.dot_i16x8_s(s, x1));
            c12 = i32x4.add(c12, i32x4.dot_i16x8_s(s, x2)); c13 = i32x4.add(c13, i32x4.dot_i16x8_s(s, x3));
            if (bk >= bLast) break; // an odd number of pairs: the last step was the first of two
            x0 = v128.load(bk, 64); x1 = v128.load(bk, 80); x2 = v128.load(bk, 96); x3 = v128.load(bk, 112);
            s = v128.load32_splat(ap, 8);
            c00 = i32x4.add(c00, i32x4.dot_i16x8_s(s, x0)); c01 = i32x4.add(c01, i32x4.dot_i16x8_s(s, x1));
            c02 = i32x4.add(c02, i32x4.dot_i16x8_s(s, x2)); c03 = i32x4.add(c03, i32x4.dot_i16x8_s(s, x3));
            s = v128.load32_splat(ap, 12);
            c10 = i32x4.add(c10, i32x4.dot_i16x8_s(s, x0)); c11 = i32x4.add(c11, i32x4.dot_i16x8_s(s, x1));
            c12 = i32x4.add(c12, i32x4.dot_i16x8_s(s, x2)); c13 = i32x4.add(c13, i32x4.dot_i16x8_s(s, x3));
            ap += 16;
            bk += 128;
            if (bk >= bEnd) break;
          }
        }
        // y = act(f32(acc) · f32(sx·sw) + b + residual), straight from the accumulators
        const w0 = v128.load(swp), w1 = v128.load(swp, 16), w2 = v128.load(swp, 32), w3 = v128.load(swp, 48);
        const yt = yp + <usize>m * ldy;
        let s = v128.load32_splat(sx + (<usize>m << 2));
        finishRow(yt, scaled(c00, s, w0), scaled(c01, s, w1), scaled(c02, s, w2), scaled(c03, s, w3), cols, bp0, rp ? rp + <usize>m * ldy : 0, act);
        if (m + 1 < M) {
          s = v128.load32_splat(sx + (<usize>(m + 1) << 2));
          finishRow(yt + ldy, scaled(c10, s, w0), scaled(c11, s, w1), scaled(c12, s, w2), scaled(c13, s, w3), cols, bp0, rp ? rp + <usize>(m + 1) * ldy : 0, act);
        }
      }
    }
  }
}

// @ts-ignore: decorator
@inline function scaled(acc: v128, sx: v128, sw: v128): v128 {
  return f32x4.mul(f32x4.convert_i32x4_s(acc), f32x4.mul(sx, sw));
}

/** One row of a tile: y = act(v + bias + residual) for its `cols` outputs at y (bias: whole panel, or 0). The
 *  activation is a call, in place on the row just stored: inlined, its code in the kernel cost more than the reload. */
// @ts-ignore: decorator
@inline function finishRow(y: usize, v0: v128, v1: v128, v2: v128, v3: v128, cols: i32, bias: usize, res: usize, act: i32): void {
  if (bias) {
    v0 = f32x4.add(v0, v128.load(bias));
    v1 = f32x4.add(v1, v128.load(bias, 16));
    v2 = f32x4.add(v2, v128.load(bias, 32));
    v3 = f32x4.add(v3, v128.load(bias, 48));
  }
  if (cols == QNR) {
    if (res) {
      v0 = f32x4.add(v0, v128.load(res));
      v1 = f32x4.add(v1, v128.load(res, 16));
      v2 = f32x4.add(v2, v128.load(res, 32));
      v3 = f32x4.add(v3, v128.load(res, 48));
    }
    if (act != ACT_NONE) {
      v0 = activate4(v0, act);
      v1 = activate4(v1, act);
      v2 = activate4(v2, act);
      v3 = activate4(v3, act);
    }
    v128.store(y, v0);
    v128.store(y, v1, 16);
    v128.store(y, v2, 32);
    v128.store(y, v3, 48);
  } else {
    if (res) {
      v0 = f32x4.add(v0, load4(res, cols));
      v1 = f32x4.add(v1, load4(res + 16, cols - 4));
      v2 = f32x4.add(v2, load4(res + 32, cols - 8));
      v3 = f32x4.add(v3, load4(res + 48, cols - 12));
    }
    store4(y, v0, cols);
    if (cols > 4) store4(y + 16, v1, cols - 4);
    if (cols > 8) store4(y + 32, v2, cols - 8);
    if (cols > 12) store4(y + 48, v3, cols - 12);
    if (act != ACT_NONE) activateRow(y, cols, act);
  }
}

/** y = act(y) for the `cols` outputs of one row of a panel, in place. */
function activateRow(y: usize, cols: i32, act: i32): void {
  for (let j = 0; j < cols; j += 4) {
    const o = <usize>j << 2, n = cols - j;
    store4(y + o, activate4(load4(y + o, n), act), n);
  }
}
