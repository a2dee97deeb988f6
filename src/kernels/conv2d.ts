import { activate, type Activation } from "./activations.js";
import { f } from "./f32.js";

export interface Conv2dShape {
  N: number; C: number; H: number; W: number; // input
  O: number; kh: number; kw: number; // output channels, kernel
  stride: number; padding: number;
}

export function conv2dOutputSize(s: Conv2dShape): [number, number] {
  return [Math.floor((s.H + 2 * s.padding - s.kh) / s.stride) + 1, Math.floor((s.W + 2 * s.padding - s.kw) / s.stride) + 1];
}

/**
 * y[n, o, i, j] = act(Σ_{c, ky, kx} x[n, c, i·s + ky − p, j·s + kx − p]·w[o, c, ky, kx] + b[o] + residual[n, o, i, j])
 * NCHW. The sum runs over (c, ky, kx) in that nesting order from +0, and taps in the zero padding are added as
 * 0·w: this is exactly im2col followed by the linear kernel's reduction, which is how the SIMD twin computes it.
 */
export function conv2d(
  x: Float32Array, w: Float32Array, b: Float32Array | null, y: Float32Array, s: Conv2dShape,
  act: Activation = "none", residual: Float32Array | null = null,
): void {
  const { N, C, H, W, O, kh, kw, stride, padding } = s;
  const [Ho, Wo] = conv2dOutputSize(s);
  for (let n = 0; n < N; n++) {
    for (let o = 0; o < O; o++) {
      for (let i = 0; i < Ho; i++) {
        for (let j = 0; j < Wo; j++) {
          let acc = 0;
          for (let c = 0; c < C; c++) {
            for (let ky = 0; ky < kh; ky++) {
              const yy = i * stride + ky - padding;
              for (let kx = 0; kx < kw; kx++) {
                const xx = j * stride + kx - padding;
                const v = yy >= 0 && yy < H && xx >= 0 && xx < W ? x[((n * C + c) * H + yy) * W + xx] : 0;
                acc = f(acc + f(v * w[((o * C + c) * kh + ky) * kw + kx]));
              }
            }
          }
          if (b) acc = f(acc + b[o]);
          const at = ((n * O + o) * Ho + i) * Wo + j;
          if (residual) acc = f(acc + residual[at]);
          y[at] = activate(acc, act);
        }
      }
    }
  }
}
