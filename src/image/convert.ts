// Pillow 9.4's `convert("RGB")` (libImaging/Convert.c) for the modes the decoders produce.
import { ImageError } from "./errors.js";
import type { PixelImage } from "./types.js";

/** `img.convert("RGB")`: packed RGB bytes. Alpha is dropped (not composited), as Pillow does. */
export function convertToRGB(img: PixelImage): Uint8Array {
  const n = img.width * img.height;
  const out = new Uint8Array(n * 3);
  if (img.mode === "I") {
    // i2rgb clips the 32-bit value into 0..255.
    for (let i = 0; i < n; i++) {
      const v = img.data[i];
      out[3 * i] = out[3 * i + 1] = out[3 * i + 2] = v <= 0 ? 0 : v >= 255 ? 255 : v;
    }
    return out;
  }
  const src = img.data;
  switch (img.mode) {
    case "RGB":
      out.set(src.subarray(0, n * 3));
      break;
    case "RGBA":
      for (let i = 0; i < n; i++) {
        out[3 * i] = src[4 * i];
        out[3 * i + 1] = src[4 * i + 1];
        out[3 * i + 2] = src[4 * i + 2];
      }
      break;
    case "L":
    case "LA":
    case "1": {
      const step = img.mode === "LA" ? 2 : 1;
      // "1" is stored as 0/255 already; bit2rgb maps any non-zero byte to 255.
      for (let i = 0; i < n; i++) {
        const v = img.mode === "1" && src[i] !== 0 ? 255 : src[i * step];
        out[3 * i] = out[3 * i + 1] = out[3 * i + 2] = v;
      }
      break;
    }
    case "CMYK":
      // cmyk2rgb: r = 255 - k - c*(255 - k)/255 with Pillow's MULDIV255 rounding.
      for (let i = 0; i < n; i++) {
        const nk = 255 - src[4 * i + 3];
        for (let c = 0; c < 3; c++) {
          const t = src[4 * i + c] * nk + 128;
          out[3 * i + c] = Math.max(0, nk - (((t >> 8) + t) >> 8));
        }
      }
      break;
    case "P": {
      const pal = img.palette;
      if (pal === undefined || pal.length !== 768) throw new ImageError("convert: palette image needs a 768-byte palette");
      for (let i = 0; i < n; i++) {
        const p = 3 * src[i];
        out[3 * i] = pal[p];
        out[3 * i + 1] = pal[p + 1];
        out[3 * i + 2] = pal[p + 2];
      }
      break;
    }
  }
  return out;
}
