// conv2d as im2col + the GEMM, the SIMD twin of src/kernels/conv2d.ts. Per image, the weights [O, C·kh·kw]
// (packed into row tiles once, by packRows) are the GEMM's rows and the im2col matrix [C·kh·kw, Ho·Wo] its packed panels, so the output comes out NCHW. Each
// thread packs and multiplies only its own pixel panels. Padding taps are packed as 0 and multiplied like the
// others (0·w, as the TypeScript does), and k = (c·kh + ky)·kw + kx runs in that order.

import { BIAS_NONE, BIAS_PER_ROW, gemmPanels, NR } from "./gemm";

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
 * holds x[c, i·s + ky − pad, jj·s + kx − pad] (0 outside) for pixel q = p·NR + j = i·Wo + jj (0 past P).
 */
function im2col(
  x: usize, C: i32, H: i32, W: i32, kh: i32, kw: i32, stride: i32, pad: i32, Wo: i32, P: i32,
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
  if (kh == 1 && kw == 1 && stride == 1 && pad == 0) {
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
  im2colRows(x, C, H, W, kh, kw, stride, pad, Wo, dst, p0, q0, q1);
}

/** The pixels [q0, q1) of im2col, output row by output row. */
function im2colRows(
  x: usize, C: i32, H: i32, W: i32, kh: i32, kw: i32, stride: i32, pad: i32, Wo: i32,
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
        const yy = i * stride + ky - pad;
        const src = x + <usize>c * plane + (<usize>(yy * W) << 2);
        for (let kx = 0; kx < kw; kx++) {
          // the j whose tap falls inside the row: 0 ≤ j·s + kx − pad < W
          let jlo = max(ja, ceilDiv(pad - kx, stride)), jhi = min(jb, floorDiv(W - 1 - kx + pad, stride) + 1);
          if (yy < 0 || yy >= H || jlo > jhi) jlo = jhi = jb;
          let j = ja;
          for (; j < jlo; j++) store<f32>(colAddr(dst, p0, panelBytes, qa + j, rowK), 0);
          if (stride == 1) {
            for (; j < jhi; j++) {
              const qq = qa + j;
              if ((qq & (NR - 1)) == 0 && j + NR <= jhi) break;
              store<f32>(colAddr(dst, p0, panelBytes, qq, rowK), load<f32>(src + (<usize>(j + kx - pad) << 2)));
            }
            for (; j + NR <= jhi; j += NR) {
              // a whole panel row: NR consecutive taps
              copyPanelRow(colAddr(dst, p0, panelBytes, qa + j, rowK), src + (<usize>(j + kx - pad) << 2));
            }
          }
          for (; j < jhi; j++) {
            store<f32>(colAddr(dst, p0, panelBytes, qa + j, rowK), load<f32>(src + (<usize>(j * stride + kx - pad) << 2)));
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
 * One image: y [O, Ho·Wo] = act(w [O, C·kh·kw] · im2col(x) + bias[o] + res), for the pixel panels [p0, p1);
 * w packed in row tiles.
 * col: scratch for the panels [pBase, …) of this call; bias and res may be 0.
 */
export function conv2dImage(
  x: usize, C: i32, H: i32, W: i32, O: i32, kh: i32, kw: i32, stride: i32, pad: i32, Ho: i32, Wo: i32,
  w: usize, bias: usize, res: usize, y: usize, act: i32, col: usize, pBase: i32, p0: i32, p1: i32,
): void {
  const K = C * kh * kw;
  const P = Ho * Wo;
  const first = col + <usize>(p0 - pBase) * K * NR * 4;
  im2col(x, C, H, W, kh, kw, stride, pad, Wo, P, first, p0, p1);
  gemmPanels(w, first, bias, bias ? BIAS_PER_ROW : BIAS_NONE, res, y, O, K, P, act, p0, p1);
}
