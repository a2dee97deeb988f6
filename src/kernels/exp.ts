import { f } from "./f32.js";

// The project's own exp, so that softmax and sigmoid are bit-identical in TypeScript and in wasm SIMD
// (Math.exp is not specified to the bit). Cephes' expf: n = round(x·log2 e), r = x − n·ln2 in two parts,
// exp(r) by a degree-7 polynomial, then scale by 2^n. About 1 ulp; results below 2^-125 flush to 0.

export const EXP_HI = 88.72283935546875; // above: +Infinity
export const EXP_LO = -86.5; // below: 0 (keeps n ≥ -125 so 2^(n-1) is a normal f32)
export const LOG2E = f(1.44269504088896341);
export const LN2_HI = 0.693359375; // 9 significant bits: n·LN2_HI is exact
export const LN2_LO = f(-2.12194440e-4);
export const EXP_P = [1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2, 1.6666665459e-1, 5.0000001201e-1].map(f);

const bits = new Int32Array(1);
const asFloat = new Float32Array(bits.buffer);

/** 2^e for an integer e in [-126, 127], built from its exponent bits (the twin shifts the same bits inline). */
export function pow2(e: number): number {
  bits[0] = (e + 127) << 23;
  return asFloat[0];
}

export function expf(x: number): number {
  if (x > EXP_HI) return Infinity;
  if (x < EXP_LO) return 0;
  const n = Math.floor(f(f(x * LOG2E) + 0.5));
  const r = f(f(x - f(n * LN2_HI)) - f(n * LN2_LO));
  let p = EXP_P[0];
  for (let i = 1; i < EXP_P.length; i++) p = f(f(p * r) + EXP_P[i]);
  p = f(f(f(p * f(r * r)) + r) + 1);
  // two steps, because n can be 128
  return f(f(p * pow2(n - 1)) * 2);
}
