// Pillow 9.4's Image.resize for the filters CLIP meets, reproduced to the bit: BICUBIC through libImaging/Resample.c
// (separable, fixed-point for 8-bit bands, double precision for "I"), NEAREST through Geometry.c's affine scale,
// and the mode rules of Image.resize ("1"/"P" → NEAREST; "LA"/"RGBA" resized premultiplied).
import { ImageError } from "./errors.js";
import { bandsOf, type PixelImage } from "./types.js";

// Resample.c: 8 bits of result, 2 bits of headroom for the filter's overshoot.
const PRECISION_BITS = 32 - 8 - 2;
const BICUBIC_SUPPORT = 2;

/** Keys' cubic convolution kernel with a = -0.5, written in the evaluation order Pillow uses. */
function bicubic(x: number): number {
  const a = -0.5;
  if (x < 0) x = -x;
  if (x < 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
  if (x < 2) return (((x - 5) * x + 8) * x - 4) * a;
  return 0;
}

/** Per output position: the first input index, the tap count and `ksize` normalised weights (Pillow's precompute_coeffs). */
interface Coeffs {
  ksize: number;
  bounds: Int32Array; // [xmin, count] pairs
  weights: Float64Array;
}

/** Coefficients of output positions [first, first + count) of a resize from inSize to outSize. */
function bicubicCoeffs(inSize: number, outSize: number, first: number, n: number): Coeffs {
  // The box is the whole input: in0 = 0, in1 = inSize (floats in Pillow, exact for these sizes).
  const scale = inSize / outSize;
  const filterscale = Math.max(scale, 1);
  const support = BICUBIC_SUPPORT * filterscale;
  const ksize = Math.ceil(support) * 2 + 1;
  const bounds = new Int32Array(n * 2);
  const weights = new Float64Array(n * ksize);
  const ss = 1 / filterscale;
  for (let xx = 0; xx < n; xx++) {
    const center = (first + xx + 0.5) * scale;
    const xmin = Math.max(Math.trunc(center - support + 0.5), 0);
    const count = Math.min(Math.trunc(center + support + 0.5), inSize) - xmin;
    const base = xx * ksize;
    let ww = 0;
    for (let x = 0; x < count; x++) {
      const w = bicubic((x + xmin - center + 0.5) * ss);
      weights[base + x] = w;
      ww += w;
    }
    if (ww !== 0) for (let x = 0; x < count; x++) weights[base + x] /= ww;
    bounds[2 * xx] = xmin;
    bounds[2 * xx + 1] = count;
  }
  return { ksize, bounds, weights };
}

/** normalize_coeffs_8bpc: weights to fixed point, rounding half away from zero. */
function fixedPoint(weights: Float64Array): Int32Array {
  const out = new Int32Array(weights.length);
  const one = 1 << PRECISION_BITS;
  for (let i = 0; i < weights.length; i++) {
    const w = weights[i];
    out[i] = w < 0 ? Math.trunc(-0.5 + w * one) : Math.trunc(0.5 + w * one);
  }
  return out;
}

const HALF = 1 << (PRECISION_BITS - 1);

function clip8(acc: number): number {
  const v = acc >> PRECISION_BITS;
  return v < 0 ? 0 : v > 255 ? 255 : v;
}

/** Horizontal pass over input rows [y0, y0 + rows) of a `bands`-interleaved 8-bit image. */
function horizontal8(src: Uint8Array, inW: number, bands: number, y0: number, rows: number, outW: number, c: Coeffs): Uint8Array {
  const k = fixedPoint(c.weights);
  const out = new Uint8Array(outW * rows * bands);
  for (let yy = 0; yy < rows; yy++) {
    const rowBase = (yy + y0) * inW;
    for (let xx = 0; xx < outW; xx++) {
      const xmin = c.bounds[2 * xx];
      const count = c.bounds[2 * xx + 1];
      const kb = xx * c.ksize;
      const o = (yy * outW + xx) * bands;
      for (let b = 0; b < bands; b++) {
        let acc = HALF;
        for (let x = 0, s = (rowBase + xmin) * bands + b; x < count; x++, s += bands) acc += src[s] * k[kb + x];
        out[o + b] = clip8(acc);
      }
    }
  }
  return out;
}

/** Vertical pass; `shift` is subtracted from the row bounds when the input holds only the rows the pass needs. */
function vertical8(src: Uint8Array, w: number, bands: number, outH: number, c: Coeffs, shift: number): Uint8Array {
  const k = fixedPoint(c.weights);
  const out = new Uint8Array(w * outH * bands);
  const stride = w * bands;
  for (let yy = 0; yy < outH; yy++) {
    const ymin = c.bounds[2 * yy] - shift;
    const count = c.bounds[2 * yy + 1];
    const kb = yy * c.ksize;
    for (let i = 0; i < stride; i++) {
      let acc = HALF;
      for (let y = 0, s = ymin * stride + i; y < count; y++, s += stride) acc += src[s] * k[kb + y];
      out[yy * stride + i] = clip8(acc);
    }
  }
  return out;
}

/** Resample.c's ROUND_UP for the 32-bit integer path. */
function roundUp(f: number): number {
  return Math.trunc(f >= 0 ? f + 0.5 : f - 0.5);
}

function horizontal32(src: Int32Array, inW: number, y0: number, rows: number, outW: number, c: Coeffs): Int32Array {
  const out = new Int32Array(outW * rows);
  for (let yy = 0; yy < rows; yy++) {
    const rowBase = (yy + y0) * inW;
    for (let xx = 0; xx < outW; xx++) {
      const xmin = c.bounds[2 * xx];
      const count = c.bounds[2 * xx + 1];
      const kb = xx * c.ksize;
      let ss = 0;
      for (let x = 0; x < count; x++) ss += src[rowBase + xmin + x] * c.weights[kb + x];
      out[yy * outW + xx] = roundUp(ss);
    }
  }
  return out;
}

function vertical32(src: Int32Array, w: number, outH: number, c: Coeffs, shift: number): Int32Array {
  const out = new Int32Array(w * outH);
  for (let yy = 0; yy < outH; yy++) {
    const ymin = c.bounds[2 * yy] - shift;
    const count = c.bounds[2 * yy + 1];
    const kb = yy * c.ksize;
    for (let xx = 0; xx < w; xx++) {
      let ss = 0;
      for (let y = 0; y < count; y++) ss += src[(ymin + y) * w + xx] * c.weights[kb + y];
      out[yy * w + xx] = roundUp(ss);
    }
  }
  return out;
}

/**
 * A rectangle of a resize's output: columns [x, x + width), rows [y, y + height). Each output pixel depends only
 * on its own position and the input, so a window of the output is computed alone, to the same bits: a thin image's
 * centre crop without the 224 × 22,400,000 resize around it.
 */
export interface Window {
  x: number;
  y: number;
  width: number;
  height: number;
}

/** Rows [y0, y0 + rows) of an interleaved image, columns [x0, x0 + w) only. */
function cropRows<T extends Uint8Array | Int32Array>(src: T, inW: number, bands: number, x0: number, w: number, y0: number, rows: number): T {
  const out = new (src.constructor as new (n: number) => T)(w * rows * bands);
  for (let y = 0; y < rows; y++) {
    const s = ((y0 + y) * inW + x0) * bands;
    out.set(src.subarray(s, s + w * bands), y * w * bands);
  }
  return out;
}

/**
 * ImagingResampleInner's plan: a pass is skipped when its dimension does not change, and the horizontal pass only
 * computes the input rows the vertical pass will read; here also only the window's columns and rows.
 */
function twoPass<T extends Uint8Array | Int32Array>(
  src: T,
  inW: number,
  inH: number,
  bands: number,
  outW: number,
  outH: number,
  win: Window,
  horizontal: (src: T, y0: number, rows: number, c: Coeffs) => T,
  vertical: (src: T, w: number, c: Coeffs, shift: number) => T,
): T {
  const cv = outH !== inH ? bicubicCoeffs(inH, outH, win.y, win.height) : null;
  // the input rows the vertical pass reads (without one: the window's own rows)
  const yFirst = cv ? cv.bounds[0] : win.y;
  const yLast = cv ? cv.bounds[2 * win.height - 2] + cv.bounds[2 * win.height - 1] : win.y + win.height;
  const rows = outW !== inW
    ? horizontal(src, yFirst, yLast - yFirst, bicubicCoeffs(inW, outW, win.x, win.width))
    : cropRows(src, inW, bands, win.x, win.width, yFirst, yLast - yFirst);
  return cv ? vertical(rows, win.width, cv, yFirst) : rows;
}

function checkTarget(w: number, h: number, win?: Window): Window {
  if (!Number.isSafeInteger(w) || !Number.isSafeInteger(h) || w < 1 || h < 1) {
    throw new ImageError(`resize: invalid target size ${w}x${h}`);
  }
  if (!win) return { x: 0, y: 0, width: w, height: h };
  const { x, y, width, height } = win;
  if (![x, y, width, height].every(Number.isSafeInteger) || x < 0 || y < 0 || width < 1 || height < 1 || x + width > w || y + height > h) {
    throw new ImageError(`resize: window ${width}x${height} at (${x}, ${y}) is not inside the ${w}x${h} output`);
  }
  return win;
}

/** Pillow BICUBIC resize of an 8-bit image with `bands` interleaved channels (no premultiplication); `window`: only
 * that part of the output. */
export function resizeBicubic(
  src: Uint8Array, width: number, height: number, bands: number, outW: number, outH: number, window?: Window,
): Uint8Array {
  const win = checkTarget(outW, outH, window);
  return twoPass(
    src, width, height, bands, outW, outH, win,
    (s, y0, rows, c) => horizontal8(s, width, bands, y0, rows, win.width, c),
    (s, w, c, shift) => vertical8(s, w, bands, win.height, c, shift),
  );
}

/** Pillow BICUBIC resize of a mode "I" (int32) image: double-precision accumulation, rounded per pass. */
export function resizeBicubicInt32(src: Int32Array, width: number, height: number, outW: number, outH: number, window?: Window): Int32Array {
  const win = checkTarget(outW, outH, window);
  return twoPass(
    src, width, height, 1, outW, outH, win,
    (s, y0, rows, c) => horizontal32(s, width, y0, rows, win.width, c),
    (s, w, c, shift) => vertical32(s, w, win.height, c, shift),
  );
}

/** Pillow NEAREST resize (ImagingScaleAffine): source positions accumulate in doubles from half a step in (from
 * the output's first row and column even for a window, so that the sums are Pillow's). */
export function resizeNearest<T extends Uint8Array | Int32Array>(
  src: T,
  width: number,
  height: number,
  bands: number,
  outW: number,
  outH: number,
  window?: Window,
): T {
  const win = checkTarget(outW, outH, window);
  const out = new (src.constructor as new (n: number) => T)(win.width * win.height * bands);
  const ax = width / outW;
  const ay = height / outH;
  const xin = new Int32Array(win.width);
  let xo = ax * 0.5;
  for (let x = 0; x < win.x + win.width; x++, xo += ax) if (x >= win.x) xin[x - win.x] = xo < 0 ? -1 : Math.trunc(xo);
  let yo = ay * 0.5;
  for (let y = 0; y < win.y + win.height; y++, yo += ay) {
    if (y < win.y) continue;
    const yi = yo < 0 ? -1 : Math.trunc(yo);
    if (yi < 0 || yi >= height) continue; // Pillow leaves such rows zero-filled
    for (let x = 0; x < win.width; x++) {
      const xi = xin[x];
      if (xi < 0 || xi >= width) continue;
      const s = (yi * width + xi) * bands;
      const o = ((y - win.y) * win.width + x) * bands;
      for (let b = 0; b < bands; b++) out[o + b] = src[s + b];
    }
  }
  return out;
}

// Convert.c's rgbA2rgba / rgba2rgbA (and the La variants): alpha in the last band.
function premultiply(data: Uint8Array, bands: number): Uint8Array {
  const out = new Uint8Array(data.length);
  for (let i = 0; i < data.length; i += bands) {
    const a = data[i + bands - 1];
    for (let b = 0; b < bands - 1; b++) {
      const t = data[i + b] * a + 128; // MULDIV255
      out[i + b] = ((t >> 8) + t) >> 8;
    }
    out[i + bands - 1] = a;
  }
  return out;
}

function unpremultiply(data: Uint8Array, bands: number): Uint8Array {
  for (let i = 0; i < data.length; i += bands) {
    const a = data[i + bands - 1];
    if (a === 0 || a === 255) continue;
    for (let b = 0; b < bands - 1; b++) data[i + b] = Math.min(255, Math.trunc((255 * data[i + b]) / a));
  }
  return data;
}

/** `img.resize((outW, outH), Image.BICUBIC)` in Pillow 9.4, including its per-mode rules; with `window`, only that
 * part of the result (the same pixels as a crop of the whole). */
export function resizeImage(img: PixelImage, outW: number, outH: number, window?: Window): PixelImage {
  const win = checkTarget(outW, outH, window);
  const { width, height } = img;
  const size = { width: win.width, height: win.height };
  const bands = bandsOf(img.mode);
  if (outW === width && outH === height) {
    return { ...img, ...size, data: cropRows(img.data, width, bands, win.x, win.width, win.y, win.height) } as PixelImage;
  }
  if (img.mode === "I") return { mode: "I", ...size, data: resizeBicubicInt32(img.data, width, height, outW, outH, win) };
  let data: Uint8Array;
  if (img.mode === "1" || img.mode === "P") data = resizeNearest(img.data, width, height, bands, outW, outH, win);
  else if (img.mode === "LA" || img.mode === "RGBA") {
    data = unpremultiply(resizeBicubic(premultiply(img.data, bands), width, height, bands, outW, outH, win), bands);
  } else data = resizeBicubic(img.data, width, height, bands, outW, outH, win);
  return { mode: img.mode, ...size, data, ...(img.palette ? { palette: img.palette } : {}) };
}
