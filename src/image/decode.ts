import { decodeJpeg, isJpeg } from "./decode_jpeg.js";
import { decodePng, isPng } from "./decode_png.js";
import { ImageError } from "./errors.js";
import {
  checkDimensions,
  DEFAULT_MAX_JPEG_SCAN_WORK,
  DEFAULT_MAX_PIXELS,
  describeValue,
  limitOption,
  type DecodedImage,
  type RawImage,
} from "./types.js";

export interface DecodeOptions {
  /** Images declaring more pixels than this are refused before any pixel memory is allocated. */
  maxPixels?: number;
  /** JPEGs whose scans ask for more work than this are refused before decoding (DEFAULT_MAX_JPEG_SCAN_WORK). */
  maxJpegScanWork?: number;
}

/** The options checked: a limit given as NaN, a negative or a string is an error, not a limit turned off. */
export function decodeLimits(options: DecodeOptions): Required<DecodeOptions> {
  if (typeof options !== "object" || options === null) throw new ImageError(`invalid options: ${describeValue(options)}`);
  return {
    maxPixels: limitOption(options.maxPixels, "maxPixels", DEFAULT_MAX_PIXELS),
    maxJpegScanWork: limitOption(options.maxJpegScanWork, "maxJpegScanWork", DEFAULT_MAX_JPEG_SCAN_WORK),
  };
}

/** Encoded bytes as a Uint8Array (a Buffer is one; an ArrayBuffer is viewed), or undefined for anything else. */
export function asBytes(input: unknown): Uint8Array | undefined {
  if (input instanceof Uint8Array) return input;
  if (input instanceof ArrayBuffer) return new Uint8Array(input);
  if (typeof SharedArrayBuffer !== "undefined" && input instanceof SharedArrayBuffer) return new Uint8Array(input);
  return undefined;
}

/** Decodes PNG or JPEG bytes (sniffed from the signature) into a Pillow-mode image. */
export function decodeImage(input: Uint8Array | ArrayBuffer, options: DecodeOptions = {}): DecodedImage {
  const { maxPixels, maxJpegScanWork } = decodeLimits(options);
  const bytes = asBytes(input);
  if (bytes === undefined) {
    throw new ImageError(`expected PNG or JPEG bytes as a Uint8Array, Buffer or ArrayBuffer, got ${describeValue(input)}`);
  }
  if (isPng(bytes)) return decodePng(bytes, maxPixels);
  if (isJpeg(bytes)) return decodeJpeg(bytes, maxPixels, maxJpegScanWork);
  const head = Array.from(bytes.subarray(0, 8), (b) => b.toString(16).padStart(2, "0")).join(" ");
  throw new ImageError(`unrecognised image format (first bytes: ${head || "none"}); expected PNG or JPEG`);
}

const RAW_MODES = { 1: "L", 2: "LA", 3: "RGB", 4: "RGBA" } as const;

/** Wraps already-decoded pixels (1 = L, 2 = LA, 3 = RGB, 4 = RGBA channels) after checking their size. */
export function fromRaw(raw: RawImage, options: DecodeOptions = {}): DecodedImage {
  const { maxPixels } = decodeLimits(options);
  if (typeof raw !== "object" || raw === null) throw new ImageError(`raw image: expected { width, height, channels, data }, got ${describeValue(raw)}`);
  const { width, height, channels } = raw;
  const mode = typeof channels === "number" ? RAW_MODES[channels] : undefined;
  if (mode === undefined) throw new ImageError(`raw image: channels must be 1, 2, 3 or 4, got ${describeValue(channels)}`);
  if (!(raw.data instanceof Uint8Array || raw.data instanceof Uint8ClampedArray)) {
    throw new ImageError(`raw image: data must be a Uint8Array or Uint8ClampedArray, got ${describeValue(raw.data)}`);
  }
  if (typeof width !== "number" || typeof height !== "number") {
    throw new ImageError(`raw image: width and height must be numbers, got ${describeValue(width)} and ${describeValue(height)}`);
  }
  checkDimensions(width, height, maxPixels, "raw image");
  const expected = width * height * channels;
  if (raw.data.length !== expected) {
    throw new ImageError(`raw image: ${width}x${height}x${channels} needs ${expected} bytes, data has ${raw.data.length}`);
  }
  const data = new Uint8Array(raw.data.buffer, raw.data.byteOffset, raw.data.length);
  return { mode, width, height, data, decoder: "raw", exact: true };
}
