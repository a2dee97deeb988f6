// weights: "fp16": the linear layers' weights kept as the binary16 values they are. Only exact: a weight that
// binary16 cannot hold (an fp32 checkpoint's) is refused, since rounding it would change the bits of the f32 path.
import { f16ToF32 } from "../kernels/f16.js";
import { shapeString, storedOf, type Tensor } from "../tensor.js";
import { f32ToF16Bits } from "../weights/dtypes.js";

/** The binary16 bits of x if x is a binary16 value (any NaN: the quiet NaN 0x7e00), else -1. */
export function f32ToF16Exact(x: number): number {
  if (Number.isNaN(x)) return 0x7e00;
  const h = f32ToF16Bits(x); // the nearest; x is a binary16 value if that widens back to x
  return f16ToF32(h) === x ? h : -1;
}

/** Writes the binary16 bits of w's values into dst (2 bytes per value): its stored bytes if stored as F16. */
export function writeHalfBits(what: string, w: Tensor, dst: Uint8Array): void {
  const stored = storedOf(w);
  if (stored?.dtype === "F16") {
    stored.copyTo(dst);
    return;
  }
  const out = new Uint16Array(dst.buffer, dst.byteOffset, dst.byteLength / 2);
  const data = w.data;
  for (let i = 0; i < data.length; i++) {
    const h = f32ToF16Exact(data[i]!);
    if (h < 0) {
      throw new RangeError(
        `weights "fp16": ${what} ${shapeString(w.shape)} holds ${data[i]}, which is not an fp16 value (an fp32 ` +
        `checkpoint?); "fp16" keeps an fp16 checkpoint's weights as they are, use weights "fp32" for this one`,
      );
    }
    out[i] = h;
  }
}
