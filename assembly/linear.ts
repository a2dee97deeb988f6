// y[m, n] = act(Σ_k A[m, k]·B[k, n] + bias + residual[m, n]) — the SIMD twin of src/kernels/linear.ts (A = x,
// B = wᵀ) and, after im2col, of conv2d.ts (A = w, B = the image's columns; assembly/conv2d.ts). B is packed in panels of NR columns, K-major: panel p holds B[k, p·NR + j] at
// (p·K + k)·NR + j, zero padded past N. A is packed in tiles of MR rows, K-major: tile t holds A[t·MR + i, k] at
// (t·K + k)·MR + i, its missing rows repeating the last one. Lanes run across output columns n; each output's k-sum
// is a single f32 chain in ascending k from +0, as in the TypeScript. Both operands stream sequentially, so K is
// not blocked (measured: blocking K, with the partial sums stored and resumed, was slower up to K = 3072).
// Threads split the panel range [p0, p1): output columns, never a reduction.
//
// The micro-kernel is shaped by what V8 (x64, TurboFan) makes of it, measured: 15 allocatable xmm registers, no
// load folded into SIMD arithmetic, and all of a basic block's loads issued before its arithmetic. A 2×16 tile
// takes 4 B loads + 2 A splats per k for 16 mul/add (as 4×8 does; 3×12 or 5×8 spill), pads M = 50 to 50 rows, not
// 52, and needs 3 splat offsets per unrolled pair (V8 holds a register per load32_splat offset). One step's loads
// fit next to the 8 accumulators (8 + 4 + 2 + 1 product = 15), two do not: the k loop is unrolled by hand with an
// exit test between the steps, which starts a new basic block, so the second step's loads stay after the first
// step's arithmetic. Inlined in the panel loops (loop depth 4), V8 unrolls it once more: ~25 instructions per
// 16 FP operations, against 29 for the former 4×8 tile function.

import { ACT_NONE, activate4 } from "./activations";

// read by src/backend/wasm.ts from the module's exports, to size what it packs
export const NR = 16; // columns per panel: four f32x4
export const MR = 2; // rows per micro-tile
// @ts-ignore: decorator
@inline const MC = 192; // M block (a multiple of MR): its A tiles stay in L2 across the panels

// how gemmPanels adds its bias; chosen here, never passed in by src/backend/wasm.ts
export const BIAS_NONE = 0;
export const BIAS_PER_COLUMN = 1; // linear: b[n], padded to a whole panel
export const BIAS_PER_ROW = 2; // conv2d: b[o], the rows being output channels

/** Loads lanes [0, n) of four floats at p, the rest 0: never reads past a partial row. */
// @ts-ignore: decorator
@inline function load4(p: usize, n: i32): v128 {
  if (n >= 4) return v128.load(p);
  let v = f32x4.splat(0);
  if (n > 0) v = f32x4.replace_lane(v, 0, load<f32>(p));
  if (n > 1) v = f32x4.replace_lane(v, 1, load<f32>(p, 4));
  if (n > 2) v = f32x4.replace_lane(v, 2, load<f32>(p, 8));
  return v;
}

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

/**
 * Rows [m0, m1) of one panel's output columns (`cols` of them, from yp, row stride ldy bytes), which hold the raw
 * k-sums: y = act(y + bias + residual), in place. Once per panel, not per tile: a per-tile epilogue call cost ~6%
 * at K = 768.
 */
function finishPanel(
  yp: usize, ldy: usize, m0: i32, m1: i32, cols: i32, bias: usize, biasMode: i32, res: usize, act: i32,
): void {
  for (let m = m0; m < m1; m++) {
    const yRow = yp + <usize>m * ldy, resRow = res ? res + <usize>m * ldy : 0;
    const rowBias = biasMode == BIAS_PER_ROW ? v128.load32_splat(bias + (<usize>m << 2)) : f32x4.splat(0);
    for (let j = 0; j < cols; j += 4) {
      const o = <usize>j << 2, n = cols - j;
      let c = load4(yRow + o, n);
      if (biasMode == BIAS_PER_COLUMN) c = f32x4.add(c, v128.load(bias + o));
      else if (biasMode == BIAS_PER_ROW) c = f32x4.add(c, rowBias);
      if (resRow) c = f32x4.add(c, load4(resRow + o, n));
      store4(yRow + o, activate4(c, act), n);
    }
  }
}

/** Stores one row of a tile's sums: cols (≤ NR) real columns at y. */
// @ts-ignore: decorator
@inline function storeRow(y: usize, c0: v128, c1: v128, c2: v128, c3: v128, cols: i32): void {
  if (cols == NR) {
    v128.store(y, c0);
    v128.store(y, c1, 16);
    v128.store(y, c2, 32);
    v128.store(y, c3, 48);
  } else {
    store4(y, c0, cols);
    if (cols > 4) store4(y + 16, c1, cols - 4);
    if (cols > 8) store4(y + 32, c2, cols - 8);
    if (cols > 12) store4(y + 48, c3, cols - 12);
  }
}

/**
 * y = act(x·wᵀ + b + residual) for the output columns of the panels [u0, u1). x: [M, K] packed in row tiles by
 * packRows; w: [N, K] packed in panels by packLinearWeights; b: [N] padded to whole panels, or 0; y and residual
 * (or 0): [M, N]. All pointers are byte addresses.
 */
export function linear(
  x: usize, w: usize, b: usize, y: usize, M: i32, K: i32, N: i32, act: i32, residual: usize,
  tid: i32, u0: i32, u1: i32,
): void {
  gemmPanels(x, w + <usize>u0 * K * NR * 4, b, b ? BIAS_PER_COLUMN : BIAS_NONE, residual, y, M, K, N, act, u0, u1);
}

/**
 * y = act(A·B + bias + res) for the output columns of panels [p0, p1), `first` being the address of panel p0
 * (conv2d packs only the panels it is given). No TypeScript twin: linear and conv2d each state their own loop.
 */
export function gemmPanels(
  a: usize, first: usize, bias: usize, biasMode: i32, res: usize, y: usize,
  M: i32, K: i32, N: i32, act: i32, p0: i32, p1: i32,
): void {
  const tileBytes = <usize>K * MR * 4, ldy = <usize>N << 2;
  const panelBytes = <usize>K * NR * 4;
  for (let mc = 0; mc < M; mc += MC) {
    const mEnd = min(mc + MC, M);
    for (let p = p0; p < p1; p++) {
      const n0 = p * NR, cols = min(NR, N - n0);
      const bp = first + <usize>(p - p0) * panelBytes, yp = y + (<usize>n0 << 2);
      if (cols <= 4) {
        narrowPanel(a, tileBytes, bp, panelBytes, yp, ldy, mc, mEnd, K, cols);
      } else for (let m = mc; m < mEnd; m += MR) {
        let ap = a + <usize>(m / MR) * tileBytes, bk = bp;
        let c00 = f32x4.splat(0), c01 = f32x4.splat(0), c02 = f32x4.splat(0), c03 = f32x4.splat(0);
        let c10 = f32x4.splat(0), c11 = f32x4.splat(0), c12 = f32x4.splat(0), c13 = f32x4.splat(0);
        if (K > 0) {
          const bEnd = bk + panelBytes, bLast = bEnd - NR * 4;
          while (true) {
            let x0 = v128.load(bk), x1 = v128.load(bk, 16), x2 = v128.load(bk, 32), x3 = v128.load(bk, 48);
            let s = v128.load32_splat(ap);
            c00 = f32x4.add(c00, f32x4.mul(s, x0)); c01 = f32x4.add(c01, f32x4.mul(s, x1));
            c02 = f32x4.add(c02, f32x4.mul(s, x2)); c03 = f32x4.add(c03, f32x4.mul(s, x3));
            s = v128.load32_splat(ap, 4);
            c10 = f32x4.add(c10, f32x4.mul(s, x0)); c11 = f32x4.add(c11, f32x4.mul(s, x1));
            c12 = f32x4.add(c12, f32x4.mul(s, x2)); c13 = f32x4.add(c13, f32x4.mul(s, x3));
            if (bk >= bLast) break; // odd K: the last step was the first of a pair
            x0 = v128.load(bk, 64); x1 = v128.load(bk, 80); x2 = v128.load(bk, 96); x3 = v128.load(bk, 112);
            s = v128.load32_splat(ap, 8);
            c00 = f32x4.add(c00, f32x4.mul(s, x0)); c01 = f32x4.add(c01, f32x4.mul(s, x1));
            c02 = f32x4.add(c02, f32x4.mul(s, x2)); c03 = f32x4.add(c03, f32x4.mul(s, x3));
            s = v128.load32_splat(ap, 12);
            c10 = f32x4.add(c10, f32x4.mul(s, x0)); c11 = f32x4.add(c11, f32x4.mul(s, x1));
            c12 = f32x4.add(c12, f32x4.mul(s, x2)); c13 = f32x4.add(c13, f32x4.mul(s, x3));
            ap += 16;
            bk += 128;
            if (bk >= bEnd) break;
          }
        }
        const yt = yp + <usize>m * ldy;
        storeRow(yt, c00, c01, c02, c03, cols);
        if (m + 1 < M) storeRow(yt + ldy, c10, c11, c12, c13, cols);
      }
      if (biasMode != BIAS_NONE || res || act != ACT_NONE) {
        finishPanel(yp, ldy, mc, mEnd, cols, biasMode == BIAS_PER_COLUMN ? bias + (<usize>n0 << 2) : bias, biasMode,
          res ? res + (<usize>n0 << 2) : 0, act);
      }
    }
  }
}

/**
 * Packs the row tiles [u0, u1) of x [M, K] (row-major) into dst. No TypeScript twin: the readable kernels read
 * row-major operands as they are; this is the layout the SIMD GEMM streams (linear's x, conv2d's weights).
 */
export function packRows(x: usize, M: i32, K: i32, dst: usize, tid: i32, u0: i32, u1: i32): void {
  for (let t = u0; t < u1; t++) {
    let d = dst + <usize>t * K * MR * 4;
    const r0 = x + <usize>min(t * MR, M - 1) * K * 4, r1 = x + <usize>min(t * MR + 1, M - 1) * K * 4;
    for (let k = 0; k < K; k++) {
      const o = <usize>k << 2;
      store<f32>(d, load<f32>(r0 + o));
      store<f32>(d, load<f32>(r1 + o), 4);
      d += 8;
    }
  }
}

/**
 * Packs w [N, K] (nn.Linear's layout, the transpose of B) into panels, for the panels [u0, u1). No TypeScript
 * twin, as packRows.
 */
export function packLinearWeights(w: usize, N: i32, K: i32, dst: usize, tid: i32, u0: i32, u1: i32): void {
  for (let p = u0; p < u1; p++) {
    const base = dst + <usize>p * K * NR * 4;
    for (let j = 0; j < NR; j++) {
      const n = p * NR + j;
      const src = w + <usize>n * K * 4;
      for (let k = 0; k < K; k++) {
        store<f32>(base + ((<usize>k * NR + j) << 2), n < N ? load<f32>(src + (<usize>k << 2)) : 0);
      }
    }
  }
}

/**
 * The raw sums of a panel with at most 4 real columns (the last one when N mod NR ≤ 4: RN50's 7×7 and 14×14 maps),
 * for its rows [mc, mEnd): one vector per row, three row tiles at a time, so that 6 independent sums keep the adders
 * busy (each sum is a single chain, one add per k). Measured at M 512, K 4608, N 49: +20-40% over the 2×16 kernel
 * on the padded panel; +5% at N 196.
 */
function narrowPanel(
  a: usize, tileBytes: usize, bp: usize, panelBytes: usize, yp: usize, ldy: usize, mc: i32, mEnd: i32, K: i32,
  cols: i32,
): void {
  const lastTile = a + <usize>((mEnd - 1) / MR) * tileBytes; // stands in for the tiles past mEnd (not stored)
  for (let m = mc; m < mEnd; m += 3 * MR) {
    let a0 = a + <usize>(m / MR) * tileBytes;
    let a1 = min(a0 + tileBytes, lastTile), a2 = min(a0 + 2 * tileBytes, lastTile);
    let bk = bp;
    let c0 = f32x4.splat(0), c1 = c0, c2 = c0, c3 = c0, c4 = c0, c5 = c0;
    if (K > 0) {
      const bEnd = bk + panelBytes, bLast = bEnd - NR * 4;
      let x = c0, s = c0;
      while (true) {
        x = v128.load(bk);
        s = v128.load32_splat(a0); c0 = f32x4.add(c0, f32x4.mul(s, x));
        s = v128.load32_splat(a0, 4); c1 = f32x4.add(c1, f32x4.mul(s, x));
        s = v128.load32_splat(a1); c2 = f32x4.add(c2, f32x4.mul(s, x));
        s = v128.load32_splat(a1, 4); c3 = f32x4.add(c3, f32x4.mul(s, x));
        s = v128.load32_splat(a2); c4 = f32x4.add(c4, f32x4.mul(s, x));
        s = v128.load32_splat(a2, 4); c5 = f32x4.add(c5, f32x4.mul(s, x));
        if (bk >= bLast) break;
        x = v128.load(bk, 64);
        s = v128.load32_splat(a0, 8); c0 = f32x4.add(c0, f32x4.mul(s, x));
        s = v128.load32_splat(a0, 12); c1 = f32x4.add(c1, f32x4.mul(s, x));
        s = v128.load32_splat(a1, 8); c2 = f32x4.add(c2, f32x4.mul(s, x));
        s = v128.load32_splat(a1, 12); c3 = f32x4.add(c3, f32x4.mul(s, x));
        s = v128.load32_splat(a2, 8); c4 = f32x4.add(c4, f32x4.mul(s, x));
        s = v128.load32_splat(a2, 12); c5 = f32x4.add(c5, f32x4.mul(s, x));
        a0 += 16; a1 += 16; a2 += 16;
        bk += 128;
        if (bk >= bEnd) break;
      }
    }
    const yt = yp + <usize>m * ldy;
    store4(yt, c0, cols);
    if (m + 1 < mEnd) store4(yt + ldy, c1, cols);
    if (m + 2 < mEnd) store4(yt + 2 * ldy, c2, cols);
    if (m + 3 < mEnd) store4(yt + 3 * ldy, c3, cols);
    if (m + 4 < mEnd) store4(yt + 4 * ldy, c4, cols);
    if (m + 5 < mEnd) store4(yt + 5 * ldy, c5, cols);
  }
}
