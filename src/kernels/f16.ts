// IEEE binary16 → f32, the widening of an fp16 checkpoint's weights (the twin of halfToFloat in
// assembly/linear_f16.ts). Exact: every binary16 value is a binary32 value. NaNs widen to the one quiet NaN.

/** The value of the binary16 bits h: ±m·2^(e−25) for a normal number (m with its implicit 1024), ±m·2^−24 below. */
export function f16ToF32(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f, m = h & 0x3ff;
  if (e === 0x1f) return m === 0 ? sign * Infinity : NaN;
  return e === 0 ? sign * m * 2 ** -24 : sign * (1024 + m) * 2 ** (e - 25);
}
