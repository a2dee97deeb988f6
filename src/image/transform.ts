// openai/CLIP's `_transform(n_px)`: Resize(n_px, BICUBIC) → CenterCrop(n_px) → convert("RGB") → ToTensor →
// Normalize(mean, std), as torchvision 0.14 + Pillow 9.4 compute it on a PIL image.
import type { Tensor } from "../tensor.js";
import { convertToRGB } from "./convert.js";
import { asBytes, decodeImage, decodeLimits, fromRaw } from "./decode.js";
import { ImageError } from "./errors.js";
import { resizeImage } from "./resample.js";
import {
  bandsOf,
  checkDimensions,
  DEFAULT_MAX_PIXELS,
  describeValue,
  limitOption,
  type DecodedImage,
  type DecoderName,
  type PixelImage,
  type RawImage,
} from "./types.js";

export const CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073] as const;
export const CLIP_STD = [0.26862954, 0.26130258, 0.27577711] as const;

/**
 * torchvision's `_compute_resized_output_size` for an int size: the short side becomes `size`, the long side
 * `int(size * long / short)` (float division, truncated). Returns [width, height].
 */
export function resizedSize(width: number, height: number, size: number): [number, number] {
  const [short, long] = width <= height ? [width, height] : [height, width];
  const newLong = Math.trunc((size * long) / short);
  return width <= height ? [size, newLong] : [newLong, size];
}

/**
 * `Resize(size, BICUBIC)` on a PIL image: unchanged when already the target size, else Pillow's resize. A thin
 * image's long side grows by size / short side (1x100000 → 224x22400000), so the result is held to maxPixels too.
 */
export function resizeShortSide(img: PixelImage, size: number, maxPixels: number = DEFAULT_MAX_PIXELS): PixelImage {
  checkSize(size);
  const limit = limitOption(maxPixels, "maxPixels", DEFAULT_MAX_PIXELS);
  const [w, h] = resizedSize(img.width, img.height, size);
  if (w === img.width && h === img.height) return img;
  checkDimensions(w, h, limit, `resizing ${img.width}x${img.height} to short side ${size}`);
  return resizeImage(img, w, h);
}

/**
 * `CenterCrop(size)(Resize(size)(img))` computed as one windowed resize: the same pixels, but only the crop is
 * resampled, so a thin image (1x100000 → 224x22400000 before the crop) costs no more than its input.
 */
export function resizeCenterCrop(img: PixelImage, size: number): PixelImage {
  checkSize(size);
  const [w, h] = resizedSize(img.width, img.height, size);
  // the resized image is at least size × size (its short side is size), so the crop needs no padding; an image
  // already at that size is only cropped (resizeImage copies rather than resamples it)
  const win = { x: roundHalfEven((w - size) / 2), y: roundHalfEven((h - size) / 2), width: size, height: size };
  return resizeImage(img, w, h, win);
}

// Python's round(): halves go to the even neighbour.
function roundHalfEven(v: number): number {
  const f = Math.floor(v);
  const d = v - f;
  return d < 0.5 ? f : d > 0.5 ? f + 1 : f % 2 === 0 ? f : f + 1;
}

/**
 * `CenterCrop(size)`: offsets round((dim - size) / 2) half-to-even; an image smaller than the crop is first padded
 * with zeros (index 0 for "P"), floor(diff / 2) before and the rest after, as torchvision does.
 */
export function centerCrop(img: PixelImage, size: number): PixelImage {
  checkSize(size);
  const { width: w, height: h } = img;
  const padLeft = size > w ? Math.floor((size - w) / 2) : 0;
  const padTop = size > h ? Math.floor((size - h) / 2) : 0;
  const left = roundHalfEven((Math.max(w, size) - size) / 2) - padLeft;
  const top = roundHalfEven((Math.max(h, size) - size) / 2) - padTop;
  const bands = bandsOf(img.mode);
  const data = new (img.data.constructor as new (n: number) => Uint8Array | Int32Array)(size * size * bands);
  for (let y = 0; y < size; y++) {
    const sy = y + top;
    if (sy < 0 || sy >= h) continue;
    const x0 = Math.max(0, -left);
    const x1 = Math.min(size, w - left);
    if (x1 <= x0) continue;
    data.set(img.data.subarray((sy * w + x0 + left) * bands, (sy * w + x1 + left) * bands), (y * size + x0) * bands);
  }
  return { ...img, width: size, height: size, data } as PixelImage;
}

/** ToTensor + Normalize on packed RGB bytes: CHW float32 of float32((float32(v / 255) - mean) / std). */
export function toTensorNormalize(rgb: Uint8Array, width: number, height: number): Float32Array {
  const n = width * height;
  if (rgb.length !== n * 3) throw new ImageError(`toTensorNormalize: ${rgb.length} bytes is not ${width}x${height}x3`);
  const out = new Float32Array(3 * n);
  for (let c = 0; c < 3; c++) {
    // Every step is a float32 operation in torch; each JS double op rounded by fround gives the same result.
    const mean = Math.fround(CLIP_MEAN[c]);
    const std = Math.fround(CLIP_STD[c]);
    const table = new Float32Array(256);
    for (let v = 0; v < 256; v++) table[v] = Math.fround(Math.fround(Math.fround(v / 255) - mean) / std);
    for (let i = 0; i < n; i++) out[c * n + i] = table[rgb[3 * i + c]];
  }
  return out;
}

export interface PreprocessOptions {
  /** Output side (CLIP's n_px: 224, or 336 for ViT-L/14@336px). */
  size?: number;
  /** Refuse images declaring more pixels than this before allocating them. */
  maxPixels?: number;
  /** Refuse JPEGs whose scans ask for more work than this, before decoding them (see DEFAULT_MAX_JPEG_SCAN_WORK). */
  maxJpegScanWork?: number;
}

export interface PreprocessResult extends Tensor {
  shape: [1, 3, number, number];
  /** Which decoder produced the pixels; exact is false when they may differ from Pillow's (see decode_jpeg.ts). */
  decoder: DecoderName;
  exact: boolean;
}

function checkSize(size: number): void {
  if (typeof size !== "number" || !Number.isSafeInteger(size) || size < 1) {
    const shown = typeof size === "number" ? size : describeValue(size);
    throw new ImageError(`invalid output size ${shown} (option size); expected a positive integer`);
  }
}

const INPUT_TYPES = "PNG/JPEG bytes (a Uint8Array, Buffer or ArrayBuffer) or raw pixels { width, height, channels, data }";

/** CLIP's preprocessing of PNG/JPEG bytes or raw pixels into a [1, 3, size, size] float32 tensor. */
export function preprocess(input: Uint8Array | ArrayBuffer | RawImage, options: PreprocessOptions = {}): PreprocessResult {
  const limits = decodeLimits(options);
  const size = options.size ?? 224;
  checkSize(size);
  const bytes = asBytes(input);
  let img: DecodedImage;
  if (bytes !== undefined) img = decodeImage(bytes, limits);
  else if (typeof input === "object" && input !== null && !ArrayBuffer.isView(input) && "data" in input) img = fromRaw(input, limits);
  else throw new ImageError(`preprocess: expected ${INPUT_TYPES}, got ${describeValue(input)}`);
  const cropped = resizeCenterCrop(img, size);
  const data = toTensorNormalize(convertToRGB(cropped), size, size);
  return { data, shape: [1, 3, size, size], decoder: img.decoder, exact: img.exact };
}
