// IEEE binary16 → f32, the widening of an fp16 checkpoint's weights (the twin of halfToFloat in
// assembly/linear_f16.ts). Exact: every binary16 value is a binary32 value. NaNs widen to the one quiet NaN.

/** The value of the binary16 bits h: ±m·2^(e−25) for a normal number (m with its implicit 1024), ±m·2^−24 below. */
export function f16ToF32(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f, m = h & 0x3ff;
  if (e === 0x1f) return m === 0 ? sign * Infinity : NaN;
  return e === 0 ? sign * m * 2 ** -24 : sign * (1024 + m) * 2 ** (e - 25);
}

/** The binary16 bits of x if x is a binary16 value (any NaN: the quiet NaN 0x7e00), else -1. */
export function f32ToF16Exact(x: number): number {
  if (Number.isNaN(x)) return 0x7e00;
  const sign = x < 0 || Object.is(x, -0) ? 0x8000 : 0;
  const a = Math.abs(x);
  if (a === Infinity) return sign | 0x7c00;
  if (a < 2 ** -14) {
    const m = a * 2 ** 24; // subnormal: a whole number of 2^−24
    return Number.isInteger(m) ? sign | m : -1;
  }
  const e = Math.floor(Math.log2(a));
  const exp = a >= 2 ** (e + 1) ? e + 1 : a < 2 ** e ? e - 1 : e; // log2 may be off by one near a power of two
  if (exp > 15) return -1;
  const m = a * 2 ** (10 - exp) - 1024;
  return Number.isInteger(m) ? sign | ((exp + 15) << 10) | m : -1;
}
