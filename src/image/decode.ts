import { decodeJpeg, isJpeg } from "./decode_jpeg.js";
import { decodePng, isPng } from "./decode_png.js";
import { ImageError } from "./errors.js";
import { checkDimensions, DEFAULT_MAX_PIXELS, type DecodedImage, type RawImage } from "./types.js";

export interface DecodeOptions {
  /** Images declaring more pixels than this are refused before any pixel memory is allocated. */
  maxPixels?: number;
}

/** Decodes PNG or JPEG bytes (sniffed from the signature) into a Pillow-mode image. */
export function decodeImage(bytes: Uint8Array, options: DecodeOptions = {}): DecodedImage {
  const maxPixels = options.maxPixels ?? DEFAULT_MAX_PIXELS;
  if (isPng(bytes)) return decodePng(bytes, maxPixels);
  if (isJpeg(bytes)) return decodeJpeg(bytes, maxPixels);
  const head = Array.from(bytes.subarray(0, 8), (b) => b.toString(16).padStart(2, "0")).join(" ");
  throw new ImageError(`unrecognised image format (first bytes: ${head || "none"}); expected PNG or JPEG`);
}

const RAW_MODES = { 1: "L", 2: "LA", 3: "RGB", 4: "RGBA" } as const;

/** Wraps already-decoded pixels (1 = L, 2 = LA, 3 = RGB, 4 = RGBA channels) after checking their size. */
export function fromRaw(raw: RawImage, options: DecodeOptions = {}): DecodedImage {
  const { width, height, channels } = raw;
  const mode = RAW_MODES[channels];
  if (mode === undefined) throw new ImageError(`raw image: channels must be 1, 2, 3 or 4, got ${channels}`);
  checkDimensions(width, height, options.maxPixels ?? DEFAULT_MAX_PIXELS, "raw image");
  const expected = width * height * channels;
  if (raw.data.length !== expected) {
    throw new ImageError(`raw image: ${width}x${height}x${channels} needs ${expected} bytes, data has ${raw.data.length}`);
  }
  const data = new Uint8Array(raw.data.buffer, raw.data.byteOffset, raw.data.length);
  return { mode, width, height, data, decoder: "raw", exact: true };
}
