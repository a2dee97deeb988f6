// conv2d as im2col + the GEMM, the SIMD twin of src/kernels/conv2d.ts. Per image, the weights [O, C·kh·kw]
// (packed into row tiles once, by packRows) are the GEMM's rows and the im2col matrix [C·kh·kw, Ho·Wo] its packed panels, so the output comes out NCHW. Each
// thread packs and multiplies only its own pixel panels. Padding taps are packed as 0 and multiplied like the
// others (0·w, as the TypeScript does), and k = (c·kh + ky)·kw + kx runs in that order.

import { BIAS_NONE, BIAS_PER_ROW, gemmPanels, NR } from "./gemm";

/** Packs the im2col panels [p0, p1) of one image x [C, H, W] at dst. */
function im2col(
  x: usize, C: i32, H: i32, W: i32, kh: i32, kw: i32, stride: i32, pad: i32, Wo: i32, P: i32,
  dst: usize, p0: i32, p1: i32,
): void {
  const K = C * kh * kw;
  const plane = <usize>H * W * 4;
  for (let p = p0; p < p1; p++) {
    const panel = dst + <usize>(p - p0) * K * NR * 4;
    const q0 = p * NR;
    if (kh == 1 && kw == 1 && stride == 1 && pad == 0 && q0 + NR <= P) {
      // 1×1 stride 1: the panel is eight consecutive pixels of each channel
      let src = x + (<usize>q0 << 2);
      for (let c = 0; c < C; c++) {
        const d = panel + (<usize>c * NR << 2);
        v128.store(d, v128.load(src));
        v128.store(d, v128.load(src, 16), 16);
        src += plane;
      }
      continue;
    }
    for (let j = 0; j < NR; j++) {
      const q = q0 + j;
      let d = panel + (<usize>j << 2);
      if (q >= P) {
        for (let k = 0; k < K; k++) {
          store<f32>(d, 0);
          d += NR * 4;
        }
        continue;
      }
      const iy = (q / Wo) * stride - pad, ix = (q % Wo) * stride - pad;
      for (let c = 0; c < C; c++) {
        const xc = x + <usize>c * plane;
        for (let ky = 0; ky < kh; ky++) {
          const yy = iy + ky;
          const rowIn = yy >= 0 && yy < H;
          const xr = xc + (<usize>(yy * W) << 2);
          for (let kx = 0; kx < kw; kx++) {
            const xx = ix + kx;
            store<f32>(d, rowIn && xx >= 0 && xx < W ? load<f32>(xr + (<usize>xx << 2)) : 0);
            d += NR * 4;
          }
        }
      }
    }
  }
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
