import { ImageError } from "./errors.js";

/**
 * Pillow image modes that CLIP's preprocessing can meet. Decoders keep the file's mode (as Pillow's would) because
 * torchvision resizes before `convert("RGB")`, and the mode decides how Pillow resizes:
 * "1" (1-bit, stored 0/255) and "P" (palette indices) use NEAREST; "LA"/"RGBA" are resized premultiplied;
 * "I" (what Pillow opens 16-bit grey PNGs as) is resized in double precision; "CMYK" comes from 4-component JPEGs.
 */
export type ImageMode = "1" | "L" | "LA" | "I" | "P" | "RGB" | "RGBA" | "CMYK";

interface ImageBase {
  width: number;
  height: number;
}

/** Row-major pixels, bands packed per pixel (bandsOf(mode) values each). */
export type PixelImage =
  | (ImageBase & { mode: "I"; data: Int32Array })
  | (ImageBase & {
      mode: Exclude<ImageMode, "I">;
      data: Uint8Array;
      /** "P" only: 256 RGB triples; entries the file does not define are Pillow's grey ramp (i, i, i). */
      palette?: Uint8Array;
    });

/** Which decoder produced the pixels (exact tells whether they are Pillow's to the bit; see decode_jpeg.ts). */
export type DecoderName = "png" | "jpeg" | "raw";

export type DecodedImage = PixelImage & { decoder: DecoderName; exact: boolean };

/** Already-decoded pixels (e.g. a canvas ImageData with channels: 4): 1 = L, 2 = LA, 3 = RGB, 4 = RGBA. */
export interface RawImage {
  data: Uint8Array | Uint8ClampedArray;
  width: number;
  height: number;
  channels: 1 | 2 | 3 | 4;
}

export const DEFAULT_MAX_PIXELS = 50_000_000;

/**
 * Work the scans of one JPEG may ask for, counted from its headers before decoding: over all scans, the 8x8 blocks
 * walked × (8 + coefficients in the scan's band: 1 for DC, Se - Ss + 1 for AC, 64 sequential), plus 65 536 per
 * Huffman table built. Real files at maxPixels (50 MP): baseline 4:4:4 169 M; libjpeg's standard 10-scan progression
 * 437 M (4:4:4) or 249 M (4:2:0). An EOB run codes 32 767 blocks in 15 bits, so a small file can ask for far more:
 * 362 KB of 1000 scans asked for 53 G (27 s). At the default, the costliest crafted scans take a few seconds.
 */
export const DEFAULT_MAX_JPEG_SCAN_WORK = 2 ** 30;

/** How a value of the wrong kind is named in an error: "null", "a string", "a Float32Array", "number NaN". */
export function describeValue(v: unknown): string {
  if (v === null || v === undefined) return String(v);
  if (typeof v === "object") {
    const name = (v as object).constructor?.name;
    return name && name !== "Object" ? `a ${name}` : "a plain object";
  }
  if (typeof v === "string") return `a string (${JSON.stringify(v.length > 20 ? `${v.slice(0, 20)}…` : v)})`;
  return `${typeof v} ${String(v)}`;
}

/** A limit option's value: a positive integer, or Infinity for none. NaN and negatives would silently turn it off. */
export function limitOption(value: unknown, name: string, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value === "number" && ((Number.isSafeInteger(value) && value >= 1) || value === Infinity)) return value;
  throw new ImageError(`invalid option ${name}: ${describeValue(value)}; expected a positive integer (or Infinity for no limit)`);
}

export function bandsOf(mode: ImageMode): number {
  switch (mode) {
    case "LA":
      return 2;
    case "RGB":
      return 3;
    case "RGBA":
    case "CMYK":
      return 4;
    default:
      return 1;
  }
}

/** Refuses a declared size before anything of that size is allocated. */
export function checkDimensions(width: number, height: number, maxPixels: number, what: string): void {
  if (!Number.isSafeInteger(width) || !Number.isSafeInteger(height) || width < 1 || height < 1) {
    throw new ImageError(`${what}: invalid image size ${width}x${height}`);
  }
  if (width * height > maxPixels) {
    throw new ImageError(
      `${what}: image is ${width}x${height} = ${width * height} pixels, more than the limit of ${maxPixels} (maxPixels)`,
    );
  }
}
