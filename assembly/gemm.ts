// y[m, n] = act(Σ_k a[m, k]·B[k, n] + bias + residual[m, n]) — the SIMD twin of src/kernels/linear.ts (and of
// conv2d.ts after im2col). B is packed in panels of NR columns, K-major: panel p holds B[k, p·NR + j] at
// (p·K + k)·NR + j, zero padded past N. Lanes run across output columns n; each output's k-sum stays a single f32
// chain in ascending k from +0 (a K block's partial sum is stored as f32 in y and resumed, which is the same
// chain). Threads split the panel range [p0, p1): output columns, never a reduction.

import { activate4 } from "./expf";

export const NR = 8; // columns per panel: two f32x4
// @ts-ignore: decorator
@inline const MR = 4; // rows per micro-tile: 8 accumulators + 2 B vectors + splat + product fit x64's 15 free xmm
// @ts-ignore: decorator
@inline const KC = 256; // K block: a panel block is KC·NR·4 = 8 KiB, resident in L1 across the rows
// @ts-ignore: decorator
@inline const MC = 192; // M block: MC·KC·4 = 192 KiB of a, resident in L2 across the panels

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

/** Writes one row's 8 accumulators (cols valid) either raw (more K blocks follow) or through the epilogue. */
// @ts-ignore: decorator
@inline function finishRow(
  c0: v128, c1: v128, yRow: usize, cols: i32, last: bool,
  bias: usize, biasMode: i32, row: i32, resRow: usize, act: i32,
): void {
  if (last) {
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
    c0 = activate4(c0, act);
    c1 = activate4(c1, act);
  }
  store4(yRow, c0, cols);
  store4(yRow + 16, c1, cols - 4);
}

/**
 * One MR×NR tile over k in [k0, k1): rows m..m+rows-1 of a (row stride lda bytes), panel bp, output yp (row stride
 * ldy bytes). Rows past `rows` re-read the last valid row and are not stored, so tails run the same code.
 */
function tile(
  a: usize, lda: usize, bp: usize, k0: i32, k1: i32, yp: usize, ldy: usize, rows: i32, cols: i32,
  first: bool, last: bool, bias: usize, biasMode: i32, row0: i32, res: usize, act: i32,
): void {
  let c00 = f32x4.splat(0), c01 = f32x4.splat(0), c10 = f32x4.splat(0), c11 = f32x4.splat(0);
  let c20 = f32x4.splat(0), c21 = f32x4.splat(0), c30 = f32x4.splat(0), c31 = f32x4.splat(0);
  const y1 = rows > 1 ? yp + ldy : yp, y2 = rows > 2 ? y1 + ldy : y1, y3 = rows > 3 ? y2 + ldy : y2;
  if (!first) {
    // resume the partial sums of the previous K block (bits unchanged: they are f32)
    c00 = load4(yp, cols); c01 = load4(yp + 16, cols - 4);
    c10 = load4(y1, cols); c11 = load4(y1 + 16, cols - 4);
    c20 = load4(y2, cols); c21 = load4(y2 + 16, cols - 4);
    c30 = load4(y3, cols); c31 = load4(y3 + 16, cols - 4);
  }
  let a0 = a + (<usize>k0 << 2);
  let a1 = rows > 1 ? a0 + lda : a0;
  let a2 = rows > 2 ? a1 + lda : a1;
  let a3 = rows > 3 ? a2 + lda : a2;
  let b = bp + (<usize>k0 << 5);
  const bEnd = bp + (<usize>k1 << 5);
  while (b < bEnd) {
    const b0 = v128.load(b), b1 = v128.load(b, 16);
    let s = v128.load32_splat(a0);
    c00 = f32x4.add(c00, f32x4.mul(s, b0)); c01 = f32x4.add(c01, f32x4.mul(s, b1));
    s = v128.load32_splat(a1);
    c10 = f32x4.add(c10, f32x4.mul(s, b0)); c11 = f32x4.add(c11, f32x4.mul(s, b1));
    s = v128.load32_splat(a2);
    c20 = f32x4.add(c20, f32x4.mul(s, b0)); c21 = f32x4.add(c21, f32x4.mul(s, b1));
    s = v128.load32_splat(a3);
    c30 = f32x4.add(c30, f32x4.mul(s, b0)); c31 = f32x4.add(c31, f32x4.mul(s, b1));
    a0 += 4; a1 += 4; a2 += 4; a3 += 4;
    b += 32;
  }
  finishRow(c00, c01, yp, cols, last, bias, biasMode, row0, res, act);
  if (rows > 1) finishRow(c10, c11, y1, cols, last, bias, biasMode, row0 + 1, res ? res + ldy : 0, act);
  if (rows > 2) finishRow(c20, c21, y2, cols, last, bias, biasMode, row0 + 2, res ? res + 2 * ldy : 0, act);
  if (rows > 3) finishRow(c30, c31, y3, cols, last, bias, biasMode, row0 + 3, res ? res + 3 * ldy : 0, act);
}

/**
 * y = act(a·B + bias + residual) for the output columns of panels [p0, p1). a: [M, K] row-major; b: packed panels
 * (see above) of a [K, N] matrix; y and residual: [M, N]; bias: see BIAS_*. All pointers are byte addresses.
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
  const lda = <usize>K << 2, ldy = <usize>N << 2;
  const panelBytes = <usize>K * NR * 4;
  let kc = 0;
  do {
    const kEnd = min(kc + KC, K);
    for (let mc = 0; mc < M; mc += MC) {
      const mEnd = min(mc + MC, M);
      for (let p = p0; p < p1; p++) {
        const n0 = p * NR;
        const cols = min(NR, N - n0);
        const bp = first + <usize>(p - p0) * panelBytes;
        const pb = biasMode == BIAS_PER_COLUMN ? bias + (<usize>n0 << 2) : bias;
        for (let m = mc; m < mEnd; m += MR) {
          const off = <usize>m * ldy + (<usize>n0 << 2);
          tile(
            a + <usize>m * lda, lda, bp, kc, kEnd, y + off, ldy, min(MR, mEnd - m), cols,
            kc == 0, kEnd == K, pb, biasMode, m, res ? res + off : 0, act,
          );
        }
      }
    }
    kc = kEnd;
  } while (kc < K);
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
