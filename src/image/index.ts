export { ImageError } from "./errors.js";
export type { DecodedImage, DecoderName, ImageMode, PixelImage, RawImage } from "./types.js";
export { DEFAULT_MAX_JPEG_SCAN_WORK, DEFAULT_MAX_PIXELS, bandsOf } from "./types.js";
export { decodeImage, fromRaw, type DecodeOptions } from "./decode.js";
export { decodePng } from "./decode_png.js";
export { decodeJpeg } from "./decode_jpeg.js";
export { resizeBicubic, resizeBicubicInt32, resizeNearest, resizeImage } from "./resample.js";
export { convertToRGB } from "./convert.js";
export {
  CLIP_MEAN,
  CLIP_STD,
  centerCrop,
  preprocess,
  resizedSize,
  resizeShortSide,
  resizeCenterCrop,
  toTensorNormalize,
  type PreprocessOptions,
  type PreprocessResult,
} from "./transform.js";
