// Weights stored as IEEE binary16 (an fp16 checkpoint's own bits), widened to f32 inside wasm memory: at load
// (packLinearWeightsF16, packRowsF16: the f32 panels and tiles of assembly/linear.ts, the same bits as widening
// first), or per panel inside the GEMM (linearHalf: the panels stay f16, half the memory). The widening is exact,
// so the products and sums are those of the f32 path; the twin of each widening is src/kernels/f16.ts.
//
// linearHalf is shaped by measurement (AMD Zen 5, V8; ViT-B/32's short prompt, M = 8 rows, is where it shows):
// - a float multiply on a subnormal input takes a microcode assist, and ~0.1% of a checkpoint's halves are
//   subnormal (that cost 10% at M = 8): panels are widened by integer operations (exact for normal halves), and the
//   few zero or subnormal halves, listed at load (packHalfPatches), are patched after (patchHalves).
// - each panel row is read by four overlapping loads that put every half in the top 16 bits of a lane (the halves
//   permuted at packing for it): a shift, a mask and an add widen four, with no lane extension.
// - the panels stream from memory, and the widening's own loads keep few misses in flight: touchPanel reads the next
//   panel's lines before the current panel's GEMM, which computes while they arrive.
// What bounds the rest at small M: the widening's 3 integer vector operations per 4 weights share the 4 vector pipes
// with the GEMM's 2·M float operations per 4 weights, which the f32 GEMM keeps ~91% busy; at M = 8 on cached
// weights fp16 cannot pass ~0.85 of f32 (measured 0.77-0.81). Widening inside the GEMM's loop instead (in every row
// tile, or in the first) ran slower under V8.

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

// @ts-ignore: decorator
@inline const HALF_MASK: u32 = 0x8fffe000; // a half shifted right by 3 from the top of a lane: sign, exponent, mantissa
// @ts-ignore: decorator
@inline const REBIAS: u32 = 112 << 23; // binary16's exponent bias (15) to binary32's (127), as an integer add
// @ts-ignore: decorator
@inline const TWO_M24: f32 = 5.960464477539063e-8; // 2^-24, a subnormal half's unit

/** The half index, in a packed panel row, of column j (0…15): loading 16 bytes from 2 bytes before the row gives
 *  columns 0-3 in the top halves of the lanes, from the row 4-7, from byte 14 8-11 and from byte 16 12-15. */
// @ts-ignore: decorator
@inline function halfSlot(j: i32): i32 {
  return (j & 8) | ((j & 3) << 1) | ((j >> 2) & 1);
}

/** The four f32x4 of the finite halves in a lane's top 16 bits, as binary32 bits: exact when the half is normal;
 *  a zero or subnormal half becomes s | 112 << 23 | m << 13, which patchHalves corrects. Integer operations only. */
// @ts-ignore: decorator
@inline function widenTop(v: v128): v128 {
  return i32x4.add(v128.and(i32x4.shr_s(v, 3), i32x4.splat(HALF_MASK)), i32x4.splat(REBIAS));
}

/** widenTop for every half, zero and subnormal ones included (scaled by 2^112, a float multiply). */
// @ts-ignore: decorator
@inline function widenTopFloat(v: v128): v128 {
  return f32x4.mul(v128.and(i32x4.shr_s(v, 3), i32x4.splat(HALF_MASK)), f32x4.splat(TWO_112));
}

/** One panel row (NR halves in halfSlot order at src) widened to NR floats at dst, by widenTop or (float)
 *  widenTopFloat: four overlapping loads put every half in the top 16 bits of a lane. */
// @ts-ignore: decorator
@inline function widenRow(src: usize, dst: usize, float: bool): void {
  const v0 = v128.load(src - 2), v1 = v128.load(src), v2 = v128.load(src, 14), v3 = v128.load(src, 16);
  v128.store(dst, float ? widenTopFloat(v0) : widenTop(v0));
  v128.store(dst, float ? widenTopFloat(v1) : widenTop(v1), 16);
  v128.store(dst, float ? widenTopFloat(v2) : widenTop(v2), 32);
  v128.store(dst, float ? widenTopFloat(v3) : widenTop(v3), 48);
}

/** The K rows of a packed f16 panel at src widened to the f32 panel layout at dst: integer widening (then
 *  patchHalves), two rows a step, or, with `float`, the float one. */
function widenPanel(src: usize, dst: usize, K: i32, float: bool): void {
  const end = src + (<usize>K << 5);
  if (float) {
    for (; src < end; src += 32, dst += 64) widenRow(src, dst, true);
    return;
  }
  for (; src < end; src += 32, dst += 64) {
    widenRow(src, dst, false);
    if (src + 32 >= end) break;
    src += 32;
    dst += 64;
    widenRow(src, dst, false);
  }
}

/**
 * Reads one word of each 64-byte line of the K·32 bytes of an f16 panel at src (their xor to sink, so that no
 * load is dropped): wasm has no prefetch, and the widening's own loads, a few lines per loop step, keep few misses
 * in flight (the model's weights stream from memory: that pass ran at ~8 GB/s). Issued just before the previous
 * panel's GEMM, these misses are all in flight at once while the GEMM's arithmetic goes on.
 */
function touchPanel(src: usize, K: i32, sink: usize): void {
  const end = src + (<usize>K << 5);
  let acc: u32 = 0;
  for (; src + 192 < end; src += 256) {
    acc ^= load<u32>(src) ^ load<u32>(src, 64) ^ load<u32>(src, 128) ^ load<u32>(src, 192);
  }
  for (; src < end; src += 64) acc ^= load<u32>(src);
  store<u32>(sink, acc);
}

/** The floats at dst listed by the u32 indices [i0, i1), widened from zero or subnormal halves by widenTop,
 *  set to their exact value ±m·2^-24 (m, an integer below 1024, converts exactly; no subnormal operand). */
function patchHalves(dst: usize, list: usize, i0: u32, i1: u32): void {
  for (let i = i0; i < i1; i++) {
    const at = dst + (<usize>load<u32>(list + (<usize>i << 2)) << 2), v = load<u32>(at);
    store<u32>(at, reinterpret<u32>(<f32>((v >>> 13) & 0x3ff) * TWO_M24) | (v & 0x80000000));
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

/**
 * packRows (assembly/linear.ts) of an f16 x [M, K] (a convolution's weights), widened, for the tiles [u0, u1); if
 * scale (f32 [M]) is given, each row is multiplied by its scale after widening, f32(w · scale[m]): a BatchNorm
 * folded as src/kernels/batch_norm.ts folds it. At load (f32 weights), or before each convolution with weights
 * "fp16" (the halves stay in memory; the tiles land in scratch). finite: no half is infinite or NaN (the backend
 * keeps such weights f32 under "fp16"), so they are widened four at a time (widenTopFloat); else one at a time.
 */
export function packRowsF16(x: usize, M: i32, K: i32, dst: usize, scale: usize, finite: i32, tid: i32, u0: i32, u1: i32): void {
  for (let t = u0; t < u1; t++) {
    let d = dst + <usize>t * K * MR * 4;
    const m0 = min(t * MR, M - 1), m1 = min(t * MR + 1, M - 1);
    const r0 = x + <usize>m0 * K * 2, r1 = x + <usize>m1 * K * 2;
    const s0 = scale ? load<f32>(scale + (<usize>m0 << 2)) : 1, s1 = scale ? load<f32>(scale + (<usize>m1 << 2)) : 1;
    const v0 = f32x4.splat(s0), v1 = f32x4.splat(s1);
    let k = 0;
    if (finite) {
      for (; k + 4 <= K; k += 4) {
        const o = <usize>k << 1;
        let a = widenTopFloat(i32x4.shl(i32x4.extend_low_i16x8_u(v128.load64_zero(r0 + o)), 16));
        let b = widenTopFloat(i32x4.shl(i32x4.extend_low_i16x8_u(v128.load64_zero(r1 + o)), 16));
        if (scale) {
          a = f32x4.mul(a, v0);
          b = f32x4.mul(b, v1);
        }
        v128.store(d, i32x4.shuffle(a, b, 0, 4, 1, 5)); // the tile's k-major order: row 0's, row 1's
        v128.store(d, i32x4.shuffle(a, b, 2, 6, 3, 7), 16);
        d += 32;
      }
    }
    for (; k < K; k++) {
      const o = <usize>k << 1;
      let a = halfToFloat(load<u16>(r0 + o)), b = halfToFloat(load<u16>(r1 + o));
      if (scale) {
        a *= s0;
        b *= s1;
      }
      store<f32>(d, a);
      store<f32>(d, b, 4);
      d += 8;
    }
  }
}

/**
 * The panel layout of packLinearWeights, of f16 w [N, K] kept as f16 (2 bytes a weight), for the panels [u0, u1),
 * each row's 16 halves in halfSlot order. Sets the i32 at `special` to 1 if a weight is infinite or NaN: linearHalf
 * widens finite halves only (the backend then keeps that tensor as f32). Counts each panel's zero and subnormal
 * halves (padding included) into the i32 at counts + 4p, for packHalfPatches.
 */
export function packHalfPanels(
  w: usize, N: i32, K: i32, dst: usize, special: usize, counts: usize, tid: i32, u0: i32, u1: i32,
): void {
  let seen: u32 = 0;
  for (let p = u0; p < u1; p++) {
    const base = dst + <usize>p * K * NR * 2;
    let tiny: i32 = 0;
    for (let j = 0; j < NR; j++) {
      const n = p * NR + j;
      const src = w + <usize>n * K * 2, slot = <usize>halfSlot(j) << 1;
      for (let k = 0; k < K; k++) {
        const h: u32 = n < N ? load<u16>(src + (<usize>k << 1)) : 0;
        seen |= u32((h & 0x7c00) == 0x7c00);
        tiny += i32((h & 0x7c00) == 0);
        store<u16>(base + (<usize>k << 5) + slot, <u16>h);
      }
    }
    store<i32>(counts + (<usize>p << 2), tiny);
  }
  if (seen) store<i32>(special, 1);
}

/**
 * For the panels [u0, u1) of packHalfPanels' output: the f32 panel index (k·NR + j) of each zero or subnormal half,
 * ascending, at list + 4·starts[p] (u32 starts: the prefix sums of packHalfPanels' counts, set by the backend).
 */
export function packHalfPatches(panels: usize, K: i32, starts: usize, list: usize, tid: i32, u0: i32, u1: i32): void {
  for (let p = u0; p < u1; p++) {
    const base = panels + <usize>p * K * NR * 2;
    let at = list + (<usize>load<u32>(starts + (<usize>p << 2)) << 2);
    const exponent = i16x8.splat(0x7c00), zero = i16x8.splat(0);
    for (let k = 0; k < K; k++) {
      // a panel row of NR halves (32 bytes) with none zero or subnormal, nearly all of them, is skipped in 4 ops
      const row = base + (<usize>k << 5);
      const z = v128.or(
        i16x8.eq(v128.and(v128.load(row), exponent), zero), i16x8.eq(v128.and(v128.load(row, 16), exponent), zero),
      );
      if (!v128.any_true(z)) continue;
      for (let j = 0; j < NR; j++) {
        if ((load<u16>(row + (<usize>halfSlot(j) << 1)) & 0x7c00) == 0) {
          store<u32>(at, k * NR + j);
          at += 4;
        }
      }
    }
  }
}

/**
 * linear (assembly/linear.ts) over f16 panels of finite weights (packHalfPanels): each panel of [u0, u1) is widened
 * into this thread's K·NR floats at scratch + tid·(K·NR·4 + 16) (then a word for touchPanel), then multiplied by the
 * same GEMM, the next panel touched in between. patches: the u32 starts (one per panel, and the end) then the list
 * of packHalfPatches; 0 when the backend kept none (too many zero or subnormal halves), then the float widening.
 * The TypeScript twin is src/kernels/linear_f16.ts.
 */
export function linearHalf(
  x: usize, w: usize, b: usize, y: usize, M: i32, K: i32, N: i32, act: i32, residual: usize, scratch: usize,
  patches: usize, tid: i32, u0: i32, u1: i32,
): void {
  const panel = scratch + <usize>tid * (K * NR * 4 + 16), sink = panel + <usize>K * NR * 4;
  const list = patches + ((<usize>(N + NR - 1) / NR + 1) << 2);
  if (u0 < u1) touchPanel(w + <usize>u0 * K * NR * 2, K, sink);
  for (let p = u0; p < u1; p++) {
    widenPanel(w + <usize>p * K * NR * 2, panel, K, patches == 0);
    if (patches) {
      patchHalves(panel, list, load<u32>(patches + (<usize>p << 2)), load<u32>(patches + (<usize>p << 2), 4));
    }
    if (p + 1 < u1) touchPanel(w + <usize>(p + 1) * K * NR * 2, K, sink);
    gemmPanels(x, panel, b, b ? BIAS_PER_COLUMN : BIAS_NONE, residual, y, M, K, N, act, p, p + 1);
  }
}
