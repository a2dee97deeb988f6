// conv2d as im2col + the GEMM, the SIMD twin of src/kernels/conv2d.ts. Per image, the weights [O, C·kh·kw]
// (packed into row tiles once, by packRows) are the GEMM's rows and the im2col matrix [C·kh·kw, Ho·Wo] its packed
// panels, so the output comes out NCHW. Each thread packs and multiplies only its own pixel panels. Padding taps are
// packed as 0 and multiplied like the others (0·w, as the TypeScript does), and k = (c·kh + ky)·kw + kx runs in
// that order.

import { BIAS_NONE, BIAS_PER_ROW, gemmPanels, NR } from "./linear";

// @ts-ignore: decorator
@inline const CB = 16; // channels per pass of im2colShifted

// @ts-ignore: decorator
@inline const GROUP_BYTES: usize = 1 << 20; // im2col panels packed at a time: about L2

// @ts-ignore: decorator
@inline function ceilDiv(a: i32, b: i32): i32 {
  return a > 0 ? (a + b - 1) / b : -(-a / b);
}

// @ts-ignore: decorator
@inline function floorDiv(a: i32, b: i32): i32 {
  return a >= 0 ? a / b : -((-a + b - 1) / b);
}

/**
 * Packs the im2col panels [p0, p1) of one image x [C, H, W] at dst: panel p, row k = (c·kh + ky)·kw + kx, lane j
 * holds x[c, i·s + ky − padding, jj·s + kx − padding] (0 outside) for pixel q = p·NR + j = i·Wo + jj (0 past P).
 */
function im2col(
  x: usize, C: i32, H: i32, W: i32, kh: i32, kw: i32, stride: i32, padding: i32, Wo: i32, P: i32,
  dst: usize, p0: i32, p1: i32,
): void {
  const K = C * kh * kw;
  const panelBytes = <usize>K * NR * 4;
  const plane = <usize>H * W * 4;
  const q0 = p0 * NR, q1 = min(p1 * NR, P);
  for (let q = max(q1, q0); q < p1 * NR; q++) {
    let d = dst + <usize>(p1 - 1 - p0) * panelBytes + (<usize>(q & (NR - 1)) << 2);
    for (let k = 0; k < K; k++) {
      store<f32>(d, 0);
      d += NR * 4;
    }
  }
  if (kh == 1 && kw == 1 && stride == 1 && padding == 0) {
    // 1×1 stride 1: pixels are contiguous in each channel, whole panels are vector copies per channel
    const full = q1 / NR;
    for (let p = p0; p < full; p++) {
      let src = x + (<usize>(p * NR) << 2), d = dst + <usize>(p - p0) * panelBytes;
      for (let c = 0; c < C; c++) {
        copyPanelRow(d, src);
        src += plane;
        d += NR * 4;
      }
    }
    if (full * NR >= q1) return;
    im2colRows(x, C, H, W, 1, 1, 1, 0, Wo, dst, p0, max(full * NR, q0), q1);
    return;
  }
  if (stride == 1 && Wo == W && H > 0) {
    im2colShifted(x, C, H, W, kh, kw, padding, P, dst, p0, p1);
    return;
  }
  im2colRows(x, C, H, W, kh, kw, stride, padding, Wo, dst, p0, q0, q1);
}

/** Rows (q / W) of the four pixels from q. */
// @ts-ignore: decorator
@inline function rowsOf(q: i32, W: i32): v128 {
  let v = i32x4.splat(q / W);
  v = i32x4.replace_lane(v, 1, (q + 1) / W);
  v = i32x4.replace_lane(v, 2, (q + 2) / W);
  return i32x4.replace_lane(v, 3, (q + 3) / W);
}

/** Lanes of the four pixels from q whose tap (dy, dx) falls inside the image: all ones, else 0. */
// @ts-ignore: decorator
@inline function tapMask(q: i32, rows: v128, W: i32, H: i32, P: i32, dy: i32, dx: i32): v128 {
  const qs = i32x4.add(i32x4.splat(q), v128(0, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0));
  const cols = i32x4.sub(qs, i32x4.mul(rows, i32x4.splat(W)));
  // unsigned compares: a negative coordinate is out of range too
  const inside = v128.and(
    i32x4.lt_u(i32x4.add(rows, i32x4.splat(dy)), i32x4.splat(H)),
    i32x4.lt_u(i32x4.add(cols, i32x4.splat(dx)), i32x4.splat(W)),
  );
  return v128.and(inside, i32x4.lt_s(qs, i32x4.splat(P)));
}

/**
 * im2col for stride 1 and Wo = W: tap (ky, kx) of pixel q is input float q + (ky − padding)·W + (kx − padding) of its
 * channel, so a panel row is NR consecutive floats, masked to +0 where the tap falls outside the image (or past
 * P). Measured 3-6× faster than im2colRows' per-tap stores on RN50's 3×3 layers. Reads that would leave x (first
 * channel, top rows; last channel, bottom rows) take the per-lane path.
 */
function im2colShifted(
  x: usize, C: i32, H: i32, W: i32, kh: i32, kw: i32, padding: i32, P: i32, dst: usize, p0: i32, p1: i32,
): void {
  const panelBytes = <usize>C * kh * kw * NR * 4, plane = <usize>H * W * 4;
  const cStride = <usize>kh * kw * NR * 4; // from row k of channel c to the same tap of channel c + 1
  for (let p = p0; p < p1; p++) {
    const q0 = p * NR;
    const r0 = rowsOf(q0, W), r1 = rowsOf(q0 + 4, W), r2 = rowsOf(q0 + 8, W), r3 = rowsOf(q0 + 12, W);
    const panel = dst + <usize>(p - p0) * panelBytes;
    // channels CB at a time, so that their rows of x stay in L1 and in the TLB across the taps
    for (let cb = 0; cb < C; cb += CB) {
      const cbEnd = min(C, cb + CB);
      for (let ky = 0; ky < kh; ky++) {
        for (let kx = 0; kx < kw; kx++) {
          const dy = ky - padding, dx = kx - padding;
          const m0 = tapMask(q0, r0, W, H, P, dy, dx), m1 = tapMask(q0 + 4, r1, W, H, P, dy, dx);
          const m2 = tapMask(q0 + 8, r2, W, H, P, dy, dx), m3 = tapMask(q0 + 12, r3, W, H, P, dy, dx);
          // byte offset of the tap of lane 0 from its channel's start; may be negative
          const shift = <isize>(q0 + dy * W + dx) << 2;
          // channels [cLo, cHi) read whole panel rows inside x; the others (the first ones when the tap starts
          // before x, the last ones when it ends past it) go lane by lane. Without a branch in the vector loop, V8
          // computes the masks once per tap instead of in every iteration.
          const room = <isize>C * plane - shift - NR * 4; // the last channel start that can read NR floats
          const cLo = max(cb, shift >= 0 ? 0 : min(cbEnd, <i32>((-shift + <isize>plane - 1) / <isize>plane)));
          const cHi = max(cLo, room < 0 ? 0 : min(cbEnd, <i32>(room / <isize>plane) + 1));
          const d0 = panel + ((<usize>(ky * kw + kx) * NR) << 2);
          for (let c = cb; c < cLo; c++) tapRow(x, c, plane, q0, W, H, P, dy, dx, d0 + <usize>c * cStride);
          let src = <usize>(<isize>x + <isize>cLo * plane + shift), d = d0 + <usize>cLo * cStride;
          for (let c = cLo; c < cHi; c++) {
            v128.store(d, v128.and(v128.load(src), m0));
            v128.store(d, v128.and(v128.load(src, 16), m1), 16);
            v128.store(d, v128.and(v128.load(src, 32), m2), 32);
            v128.store(d, v128.and(v128.load(src, 48), m3), 48);
            src += plane;
            d += cStride;
          }
          for (let c = cHi; c < cbEnd; c++) tapRow(x, c, plane, q0, W, H, P, dy, dx, d0 + <usize>c * cStride);
        }
      }
    }
  }
}

/** One panel row of im2colShifted lane by lane, reading only taps inside the image. */
function tapRow(x: usize, c: i32, plane: usize, q0: i32, W: i32, H: i32, P: i32, dy: i32, dx: i32, d: usize): void {
  for (let l = 0; l < NR; l++) {
    const q = q0 + l, i = q / W + dy, j = q % W + dx;
    let v: f32 = 0;
    if (q < P && i >= 0 && i < H && j >= 0 && j < W) v = load<f32>(x + <usize>c * plane + ((<usize>(i * W + j)) << 2));
    store<f32>(d + (<usize>l << 2), v);
  }
}

/** The pixels [q0, q1) of im2col, output row by output row. */
function im2colRows(
  x: usize, C: i32, H: i32, W: i32, kh: i32, kw: i32, stride: i32, padding: i32, Wo: i32,
  dst: usize, p0: i32, q0: i32, q1: i32,
): void {
  const panelBytes = <usize>C * kh * kw * NR * 4;
  const plane = <usize>H * W * 4;
  let q = q0;
  while (q < q1) {
    const i = q / Wo, ja = q % Wo, jb = min(Wo, ja + q1 - q);
    const qa = q - ja; // pixel of (i, 0)
    let rowK: usize = 0; // k·NR·4
    for (let c = 0; c < C; c++) {
      for (let ky = 0; ky < kh; ky++) {
        const yy = i * stride + ky - padding;
        const src = x + <usize>c * plane + (<usize>(yy * W) << 2);
        for (let kx = 0; kx < kw; kx++) {
          // the j whose tap falls inside the row: 0 ≤ j·s + kx − padding < W
          let jlo = max(ja, ceilDiv(padding - kx, stride)), jhi = min(jb, floorDiv(W - 1 - kx + padding, stride) + 1);
          if (yy < 0 || yy >= H || jlo > jhi) jlo = jhi = jb;
          let j = ja;
          for (; j < jlo; j++) store<f32>(colAddr(dst, p0, panelBytes, qa + j, rowK), 0);
          if (stride == 1) {
            for (; j < jhi; j++) {
              const qq = qa + j;
              if ((qq & (NR - 1)) == 0 && j + NR <= jhi) break;
              store<f32>(colAddr(dst, p0, panelBytes, qq, rowK), load<f32>(src + (<usize>(j + kx - padding) << 2)));
            }
            for (; j + NR <= jhi; j += NR) {
              // a whole panel row: NR consecutive taps
              copyPanelRow(colAddr(dst, p0, panelBytes, qa + j, rowK), src + (<usize>(j + kx - padding) << 2));
            }
          }
          for (; j < jhi; j++) {
            store<f32>(colAddr(dst, p0, panelBytes, qa + j, rowK), load<f32>(src + (<usize>(j * stride + kx - padding) << 2)));
          }
          for (; j < jb; j++) store<f32>(colAddr(dst, p0, panelBytes, qa + j, rowK), 0);
          rowK += NR * 4;
        }
      }
    }
    q += jb - ja;
  }
}

/** NR consecutive floats from s to d. */
// @ts-ignore: decorator
@inline function copyPanelRow(d: usize, s: usize): void {
  v128.store(d, v128.load(s));
  v128.store(d, v128.load(s, 16), 16);
  v128.store(d, v128.load(s, 32), 32);
  v128.store(d, v128.load(s, 48), 48);
}

// @ts-ignore: decorator
@inline function colAddr(dst: usize, p0: i32, panelBytes: usize, q: i32, rowK: usize): usize {
  return dst + <usize>(<u32>q / NR - p0) * panelBytes + rowK + (<usize>(q & (NR - 1)) << 2);
}

/**
 * One image: y [O, Ho·Wo] = act(w [O, C·kh·kw] · im2col(x) + b[o] + residual), for the pixel panels [u0, u1); w
 * packed in row tiles (packRows), b and residual may be 0. col: scratch for the panels [pBase, …) of this call.
 */
export function conv2d(
  x: usize, w: usize, b: usize, y: usize, C: i32, H: i32, W: i32, O: i32, kh: i32, kw: i32, stride: i32,
  padding: i32, Ho: i32, Wo: i32, act: i32, residual: usize, col: usize, pBase: i32, tid: i32, u0: i32, u1: i32,
): void {
  const K = C * kh * kw;
  const P = Ho * Wo;
  const panelBytes = <usize>K * NR * 4;
  const first = col + <usize>(u0 - pBase) * panelBytes;
  // a group of panels at a time, in the same place, so that the GEMM reads them from L2 rather than back from memory
  // (measured on RN50's 3×3 layers: +3-8% over packing all the panels first)
  const group = panelBytes ? max(1, <i32>(GROUP_BYTES / panelBytes)) : u1 - u0;
  for (let g = u0; g < u1; g += group) {
    const g1 = min(u1, g + group);
    im2col(x, C, H, W, kh, kw, stride, padding, Wo, P, first, g, g1);
    gemmPanels(w, first, b, b ? BIAS_PER_ROW : BIAS_NONE, residual, y, O, K, P, act, g, g1);
  }
}
