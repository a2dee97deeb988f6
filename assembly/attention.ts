// Multi-head attention, the SIMD twin of src/kernels/attention.ts. One unit of work is one (batch, head): its
// keys are transposed into scratch so that scores vectorise across keys j; P·V vectorises across the head's
// channels t. Every sum (over t for a score, the softmax sum over j, over j for an output) stays sequential.

import { expf4 } from "./exp";

/**
 * q [B, Lq, D], k and v [B, Lk, D] → out [B, Lq, D], D = heads·headDim, for the units u = b·heads + h in [u0, u1).
 * keyCount: 0 or [B·Lq] counts of visible keys (each in [0, Lk]). scratch: per thread, at scratch + tid·
 * scratchBytes, (headDim + 1)·LkPad floats with LkPad = Lk rounded up to 4.
 */
export function attention(
  q: usize, k: usize, v: usize, out: usize, B: i32, Lq: i32, Lk: i32, heads: i32, headDim: i32, scale: f32,
  keyCount: usize, scratch: usize, scratchBytes: i32, tid: i32, u0: i32, u1: i32,
): void {
  const D = heads * headDim;
  const rowBytes = <usize>D << 2;
  const LkPad = (Lk + 3) & ~3;
  const kT = scratch + <usize>tid * scratchBytes;
  const scores = kT + (<usize>headDim * LkPad << 2);
  const ldk = <usize>LkPad << 2;
  for (let u = u0; u < u1; u++) {
    const b = u / heads, h = u % heads;
    const headOff = <usize>h * headDim << 2;
    // kT[t][j] = k[b, j, h·headDim + t], zero padded to LkPad keys
    for (let j = 0; j < LkPad; j++) {
      const src = k + <usize>(b * Lk + j) * rowBytes + headOff;
      for (let t = 0; t < headDim; t++) {
        store<f32>(kT + <usize>t * ldk + (<usize>j << 2), j < Lk ? load<f32>(src + (<usize>t << 2)) : 0);
      }
    }
    for (let i = 0; i < Lq; i++) {
      const n = keyCount ? load<i32>(keyCount + (<usize>(b * Lq + i) << 2)) : Lk;
      const qr = q + <usize>(b * Lq + i) * rowBytes + headOff;
      const nPad = (n + 3) & ~3;
      let j = 0;
      for (; j + 16 <= nPad; j += 16) {
        let s0 = f32x4.splat(0), s1 = f32x4.splat(0), s2 = f32x4.splat(0), s3 = f32x4.splat(0);
        let kp = kT + (<usize>j << 2);
        for (let t = 0; t < headDim; t++) {
          const qt = v128.load32_splat(qr + (<usize>t << 2));
          s0 = f32x4.add(s0, f32x4.mul(qt, v128.load(kp)));
          s1 = f32x4.add(s1, f32x4.mul(qt, v128.load(kp, 16)));
          s2 = f32x4.add(s2, f32x4.mul(qt, v128.load(kp, 32)));
          s3 = f32x4.add(s3, f32x4.mul(qt, v128.load(kp, 48)));
          kp += ldk;
        }
        const sp = scores + (<usize>j << 2);
        v128.store(sp, f32x4.mul(s0, f32x4.splat(scale)));
        v128.store(sp, f32x4.mul(s1, f32x4.splat(scale)), 16);
        v128.store(sp, f32x4.mul(s2, f32x4.splat(scale)), 32);
        v128.store(sp, f32x4.mul(s3, f32x4.splat(scale)), 48);
      }
      for (; j < nPad; j += 4) {
        let s0 = f32x4.splat(0);
        let kp = kT + (<usize>j << 2);
        for (let t = 0; t < headDim; t++) {
          s0 = f32x4.add(s0, f32x4.mul(v128.load32_splat(qr + (<usize>t << 2)), v128.load(kp)));
          kp += ldk;
        }
        v128.store(scores + (<usize>j << 2), f32x4.mul(s0, f32x4.splat(scale)));
      }
      let max: f32 = -Infinity;
      for (j = 0; j < n; j++) {
        const s = load<f32>(scores + (<usize>j << 2));
        if (s > max) max = s;
      }
      const mx = f32x4.splat(max);
      for (j = 0; j < nPad; j += 4) {
        const sp = scores + (<usize>j << 2);
        v128.store(sp, expf4(f32x4.sub(v128.load(sp), mx)));
      }
      let sum: f32 = 0;
      for (j = 0; j < n; j++) sum += load<f32>(scores + (<usize>j << 2));
      const sv = f32x4.splat(sum);
      for (j = 0; j < nPad; j += 4) {
        const sp = scores + (<usize>j << 2);
        v128.store(sp, f32x4.div(v128.load(sp), sv));
      }
      const orow = out + <usize>(b * Lq + i) * rowBytes + headOff;
      const vBase = v + <usize>(b * Lk) * rowBytes + headOff;
      let t = 0;
      for (; t + 16 <= headDim; t += 16) {
        let o0 = f32x4.splat(0), o1 = f32x4.splat(0), o2 = f32x4.splat(0), o3 = f32x4.splat(0);
        let vp = vBase + (<usize>t << 2);
        for (j = 0; j < n; j++) {
          const pj = v128.load32_splat(scores + (<usize>j << 2));
          o0 = f32x4.add(o0, f32x4.mul(pj, v128.load(vp)));
          o1 = f32x4.add(o1, f32x4.mul(pj, v128.load(vp, 16)));
          o2 = f32x4.add(o2, f32x4.mul(pj, v128.load(vp, 32)));
          o3 = f32x4.add(o3, f32x4.mul(pj, v128.load(vp, 48)));
          vp += rowBytes;
        }
        const op = orow + (<usize>t << 2);
        v128.store(op, o0);
        v128.store(op, o1, 16);
        v128.store(op, o2, 32);
        v128.store(op, o3, 48);
      }
      for (; t + 4 <= headDim; t += 4) {
        let o0 = f32x4.splat(0);
        let vp = vBase + (<usize>t << 2);
        for (j = 0; j < n; j++) {
          o0 = f32x4.add(o0, f32x4.mul(v128.load32_splat(scores + (<usize>j << 2)), v128.load(vp)));
          vp += rowBytes;
        }
        v128.store(orow + (<usize>t << 2), o0);
      }
      for (; t < headDim; t++) {
        let acc: f32 = 0;
        let vp = vBase + (<usize>t << 2);
        for (j = 0; j < n; j++) {
          acc += load<f32>(scores + (<usize>j << 2)) * load<f32>(vp);
          vp += rowBytes;
        }
        store<f32>(orow + (<usize>t << 2), acc);
      }
    }
  }
}
