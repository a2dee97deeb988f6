// y[m, n] = act(Σ_k A[m, k]·B[k, n] + bias + residual[m, n]) — the SIMD twin of src/kernels/linear.ts (and of
// conv2d.ts after im2col). B is packed in panels of NR columns, K-major: panel p holds B[k, p·NR + j] at
// (p·K + k)·NR + j, zero padded past N. A is packed in tiles of MR rows, K-major: tile t holds A[t·MR + i, k] at
// (t·K + k)·MR + i, its missing rows repeating the last one. Lanes run across output columns n; each output's k-sum
// is a single f32 chain in ascending k from +0, as in the TypeScript. Both operands stream sequentially, so K is
// not blocked (measured: blocking K, with the partial sums stored and resumed, was slower up to K = 3072).
// Threads split the panel range [p0, p1): output columns, never a reduction.

import { activate4 } from "./expf";

export const NR = 8; // columns per panel: two f32x4
export const MR = 4; // rows per micro-tile: 8 accumulators + 2 B + 4 splats + a product fill x64's 15 free xmm
// (V8 issues all of a step's loads first; unrolling k or a 5th row spills)
// @ts-ignore: decorator
@inline const MC = 192; // M block (a multiple of MR): its A tiles stay in L2 across the panels

export const BIAS_NONE = 0;
export const BIAS_PER_COLUMN = 1; // linear: bias[n], padded to a whole panel
export const BIAS_PER_ROW = 2; // conv: bias[o], the rows being output channels

/** Loads lanes [0, n) of four floats at p (n < 4), the rest 0: never reads past a partial row. */
// @ts-ignore: decorator
@inline function loadPartial(p: usize, n: i32): v128 {
  let v = f32x4.splat(0);
  if (n > 0) v = f32x4.replace_lane(v, 0, load<f32>(p));
  if (n > 1) v = f32x4.replace_lane(v, 1, load<f32>(p, 4));
  if (n > 2) v = f32x4.replace_lane(v, 2, load<f32>(p, 8));
  return v;
}

// @ts-ignore: decorator
@inline function storePartial(p: usize, v: v128, n: i32): void {
  if (n > 0) store<f32>(p, f32x4.extract_lane(v, 0));
  if (n > 1) store<f32>(p, f32x4.extract_lane(v, 1), 4);
  if (n > 2) store<f32>(p, f32x4.extract_lane(v, 2), 8);
}

// @ts-ignore: decorator
@inline function load4(p: usize, n: i32): v128 {
  return n >= 4 ? v128.load(p) : loadPartial(p, n);
}

// @ts-ignore: decorator
@inline function store4(p: usize, v: v128, n: i32): void {
  if (n >= 4) v128.store(p, v);
  else storePartial(p, v, n);
}

/** y row = act(accumulators + bias + residual row), of which `cols` columns are real. */
// @ts-ignore: decorator
@inline function finishRow(
  c0: v128, c1: v128, yRow: usize, cols: i32, bias: usize, biasMode: i32, row: i32, resRow: usize, act: i32,
): void {
  if (biasMode == BIAS_PER_COLUMN) {
    c0 = f32x4.add(c0, v128.load(bias));
    c1 = f32x4.add(c1, v128.load(bias, 16));
  } else if (biasMode == BIAS_PER_ROW) {
    const b = v128.load32_splat(bias + (<usize>row << 2));
    c0 = f32x4.add(c0, b);
    c1 = f32x4.add(c1, b);
  }
  if (resRow) {
    c0 = f32x4.add(c0, load4(resRow, cols));
    c1 = f32x4.add(c1, load4(resRow + 16, cols - 4));
  }
  store4(yRow, activate4(c0, act), cols);
  store4(yRow + 16, activate4(c1, act), cols - 4);
}

/** One MR×NR tile: A tile a, B panel b, output rows from yp (row stride ldy bytes), of which `rows` are real. */
function tile(
  a: usize, b: usize, K: i32, yp: usize, ldy: usize, rows: i32, cols: i32,
  bias: usize, biasMode: i32, row0: i32, res: usize, act: i32,
): void {
  let c00 = f32x4.splat(0), c01 = f32x4.splat(0), c10 = f32x4.splat(0), c11 = f32x4.splat(0);
  let c20 = f32x4.splat(0), c21 = f32x4.splat(0), c30 = f32x4.splat(0), c31 = f32x4.splat(0);
  const bEnd = b + (<usize>K << 5);
  while (b < bEnd) {
    const b0 = v128.load(b), b1 = v128.load(b, 16);
    let s = v128.load32_splat(a);
    c00 = f32x4.add(c00, f32x4.mul(s, b0)); c01 = f32x4.add(c01, f32x4.mul(s, b1));
    s = v128.load32_splat(a, 4);
    c10 = f32x4.add(c10, f32x4.mul(s, b0)); c11 = f32x4.add(c11, f32x4.mul(s, b1));
    s = v128.load32_splat(a, 8);
    c20 = f32x4.add(c20, f32x4.mul(s, b0)); c21 = f32x4.add(c21, f32x4.mul(s, b1));
    s = v128.load32_splat(a, 12);
    c30 = f32x4.add(c30, f32x4.mul(s, b0)); c31 = f32x4.add(c31, f32x4.mul(s, b1));
    a += 16;
    b += 32;
  }
  finishRow(c00, c01, yp, cols, bias, biasMode, row0, res, act);
  if (rows > 1) finishRow(c10, c11, yp + ldy, cols, bias, biasMode, row0 + 1, res ? res + ldy : 0, act);
  if (rows > 2) finishRow(c20, c21, yp + 2 * ldy, cols, bias, biasMode, row0 + 2, res ? res + 2 * ldy : 0, act);
  if (rows > 3) finishRow(c30, c31, yp + 3 * ldy, cols, bias, biasMode, row0 + 3, res ? res + 3 * ldy : 0, act);
}

/**
 * y = act(A·B + bias + residual) for the output columns of panels [p0, p1). a and b: A [M, K] and B [K, N] packed
 * (see above); y and residual: [M, N]; bias: see BIAS_*. All pointers are byte addresses.
 */
export function gemm(
  a: usize, b: usize, bias: usize, biasMode: i32, res: usize, y: usize,
  M: i32, K: i32, N: i32, act: i32, p0: i32, p1: i32,
): void {
  gemmPanels(a, b + <usize>p0 * K * NR * 4, bias, biasMode, res, y, M, K, N, act, p0, p1);
}

/** As gemm, but `first` is the address of panel p0 (conv2d packs only the panels it is given). */
export function gemmPanels(
  a: usize, first: usize, bias: usize, biasMode: i32, res: usize, y: usize,
  M: i32, K: i32, N: i32, act: i32, p0: i32, p1: i32,
): void {
  const tileBytes = <usize>K * MR * 4, ldy = <usize>N << 2;
  const panelBytes = <usize>K * NR * 4;
  for (let mc = 0; mc < M; mc += MC) {
    const mEnd = min(mc + MC, M);
    for (let p = p0; p < p1; p++) {
      const n0 = p * NR;
      const bp = first + <usize>(p - p0) * panelBytes;
      const pb = biasMode == BIAS_PER_COLUMN ? bias + (<usize>n0 << 2) : bias;
      for (let m = mc; m < mEnd; m += MR) {
        const off = <usize>m * ldy + (<usize>n0 << 2);
        tile(
          a + <usize>(m / MR) * tileBytes, bp, K, y + off, ldy, min(MR, M - m), min(NR, N - n0),
          pb, biasMode, m, res ? res + off : 0, act,
        );
      }
    }
  }
}

/** Packs the row tiles [t0, t1) of A [M, K] (row-major) into dst. */
export function packRows(x: usize, M: i32, K: i32, dst: usize, t0: i32, t1: i32): void {
  for (let t = t0; t < t1; t++) {
    let d = dst + <usize>t * K * MR * 4;
    const r0 = x + <usize>min(t * MR, M - 1) * K * 4, r1 = x + <usize>min(t * MR + 1, M - 1) * K * 4;
    const r2 = x + <usize>min(t * MR + 2, M - 1) * K * 4, r3 = x + <usize>min(t * MR + 3, M - 1) * K * 4;
    for (let k = 0; k < K; k++) {
      const o = <usize>k << 2;
      store<f32>(d, load<f32>(r0 + o));
      store<f32>(d, load<f32>(r1 + o), 4);
      store<f32>(d, load<f32>(r2 + o), 8);
      store<f32>(d, load<f32>(r3 + o), 12);
      d += 16;
    }
  }
}

/** Packs w [N, K] (nn.Linear's layout, the transpose of B) into panels, for panels [p0, p1). */
export function packLinearWeights(w: usize, N: i32, K: i32, dst: usize, p0: i32, p1: i32): void {
  for (let p = p0; p < p1; p++) {
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
