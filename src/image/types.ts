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
