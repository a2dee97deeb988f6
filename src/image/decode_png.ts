// PNG decoder (ISO/IEC 15948 / W3C PNG spec) producing the pixels and mode Pillow 9.4's PngImagePlugin gives:
// grey 1-bit → "1"; grey 2/4-bit → "L" scaled by 0x55 / 0x11; grey 16-bit → "I"; 16-bit colour keeps the high
// byte of each sample; grey+alpha 16-bit → "RGBA"; palette → "P". Transparency (tRNS), gamma and colour profiles
// do not change Pillow's pixels and are ignored. Inflation streams through fflate row by row.
import { Unzlib } from "fflate";
import { ImageError } from "./errors.js";
import { bandsOf, checkDimensions, DEFAULT_MAX_PIXELS, type DecodedImage, type ImageMode } from "./types.js";
import { crc32 } from "../crc32.js";

const SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
// x0, y0, dx, dy of the seven Adam7 passes.
const ADAM7 = [
  [0, 0, 8, 8],
  [4, 0, 8, 8],
  [0, 4, 4, 8],
  [2, 0, 4, 4],
  [0, 2, 2, 4],
  [1, 0, 2, 2],
  [0, 1, 1, 2],
];
const SAMPLES_PER_PIXEL: Record<number, number> = { 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 };
const ALLOWED_DEPTHS: Record<number, number[]> = { 0: [1, 2, 4, 8, 16], 2: [8, 16], 3: [1, 2, 4, 8], 4: [8, 16], 6: [8, 16] };
// Deflate cannot expand input by more than 1032:1 (258-byte matches coded in 2 bits).
const MAX_INFLATE_RATIO = 1032;
const INFLATE_SLICE = 8 * 1024;
// Rows up to this many bytes are copied byte by byte rather than through a subarray.
const SHORT = 32;


function u32(b: Uint8Array, p: number): number {
  return ((b[p] << 24) | (b[p + 1] << 16) | (b[p + 2] << 8) | b[p + 3]) >>> 0;
}

export function isPng(bytes: Uint8Array): boolean {
  return bytes.length >= 8 && SIGNATURE.every((v, i) => bytes[i] === v);
}

interface Header {
  width: number;
  height: number;
  bitDepth: number;
  colorType: number;
  interlaced: boolean;
}

interface Pass {
  x0: number;
  y0: number;
  dx: number;
  dy: number;
  cols: number;
  rows: number;
  rowBytes: number;
}

function pillowMode(h: Header): ImageMode {
  switch (h.colorType) {
    case 0:
      return h.bitDepth === 1 ? "1" : h.bitDepth === 16 ? "I" : "L";
    case 2:
      return "RGB";
    case 3:
      return "P";
    case 4:
      return h.bitDepth === 16 ? "RGBA" : "LA";
    default:
      return "RGBA";
  }
}

function passesOf(h: Header): Pass[] {
  const geometry = h.interlaced ? ADAM7 : [[0, 0, 1, 1]];
  const bitsPerPixel = SAMPLES_PER_PIXEL[h.colorType] * h.bitDepth;
  const passes: Pass[] = [];
  for (const [x0, y0, dx, dy] of geometry) {
    const cols = h.width > x0 ? Math.ceil((h.width - x0) / dx) : 0;
    const rows = h.height > y0 ? Math.ceil((h.height - y0) / dy) : 0;
    // Empty passes carry no bytes at all, not even filter-type bytes.
    if (cols > 0 && rows > 0) passes.push({ x0, y0, dx, dy, cols, rows, rowBytes: Math.ceil((cols * bitsPerPixel) / 8) });
  }
  return passes;
}

function allocate<T>(make: () => T, h: Header): T {
  try {
    return make();
  } catch (e) {
    if (e instanceof RangeError) throw new ImageError(`PNG: cannot allocate a ${h.width}x${h.height} image: ${e.message}`);
    throw e;
  }
}

/**
 * Undoes a scanline's filter in place: n bytes at c[co...], the row above at p[po...] (zeros on a pass's first row).
 * False for an unknown filter type.
 */
function unfilterRow(type: number, c: Uint8Array, co: number, p: Uint8Array, po: number, n: number, bpp: number, firstRow: boolean): boolean {
  switch (type) {
    case 0:
      return true;
    case 1:
      for (let i = bpp; i < n; i++) c[co + i] = (c[co + i] + c[co + i - bpp]) & 0xff;
      return true;
    case 2:
      if (!firstRow) for (let i = 0; i < n; i++) c[co + i] = (c[co + i] + p[po + i]) & 0xff;
      return true;
    case 3:
      for (let i = 0; i < n; i++) {
        const left = i >= bpp ? c[co + i - bpp] : 0;
        const up = firstRow ? 0 : p[po + i];
        c[co + i] = (c[co + i] + ((left + up) >> 1)) & 0xff;
      }
      return true;
    case 4:
      for (let i = 0; i < n; i++) {
        const a = i >= bpp ? c[co + i - bpp] : 0;
        const b = firstRow ? 0 : p[po + i];
        const d = i >= bpp && !firstRow ? p[po + i - bpp] : 0;
        const pa = Math.abs(b - d);
        const pb = Math.abs(a - d);
        const pc = Math.abs(a + b - 2 * d);
        const pred = pa <= pb && pa <= pc ? a : pb <= pc ? b : d;
        c[co + i] = (c[co + i] + pred) & 0xff;
      }
      return true;
    default:
      return false;
  }
}

/** Receives the inflated stream piecewise, unfilters each scanline and stores its pixels in Pillow's layout. */
class ScanlineSink {
  readonly out: Uint8Array | Int32Array;
  done = false;
  private passIdx = 0;
  private row = 0;
  private filled = 0;
  private cur: Uint8Array;
  private prev: Uint8Array;
  private readonly bpp: number;
  private readonly bands: number;
  private readonly direct: boolean;
  private filter = 0;

  constructor(
    private readonly h: Header,
    private readonly passes: Pass[],
    mode: ImageMode,
  ) {
    const pixels = h.width * h.height;
    this.bands = bandsOf(mode);
    this.out = allocate(() => (mode === "I" ? new Int32Array(pixels) : new Uint8Array(pixels * this.bands)), h);
    // Filter byte distance: bytes per complete pixel, at least 1.
    this.bpp = Math.max(1, (SAMPLES_PER_PIXEL[h.colorType] * h.bitDepth) >> 3);
    this.direct = !h.interlaced && h.bitDepth === 8;
    const widest = Math.max(...passes.map((p) => p.rowBytes));
    this.cur = new Uint8Array(widest + 1);
    this.prev = new Uint8Array(widest + 1);
  }

  push(chunk: Uint8Array): void {
    if (this.direct) return this.pushDirect(chunk);
    let i = 0;
    const n = chunk.length;
    while (i < n && !this.done) {
      const pass = this.passes[this.passIdx];
      const filled = this.filled;
      const take = Math.min(pass.rowBytes + 1 - filled, n - i);
      // A thin image has millions of rows of a few bytes: a subarray per row would cost more than the row.
      const cur = this.cur;
      if (take > SHORT) cur.set(chunk.subarray(i, i + take), filled);
      else for (let k = 0; k < take; k++) cur[filled + k] = chunk[i + k];
      this.filled = filled + take;
      i += take;
      if (this.filled === pass.rowBytes + 1) this.finishRow(pass);
    }
  }

  /**
   * 8-bit, not interlaced: a scanline without its filter byte is the row of Pillow's layout, so it is unfiltered in
   * place in the output against the output's previous row, with no copy of its own.
   */
  private pushDirect(chunk: Uint8Array): void {
    const out = this.out as Uint8Array;
    const { rowBytes: n, rows } = this.passes[0];
    const len = chunk.length;
    let i = 0;
    while (i < len && !this.done) {
      if (this.filled === 0 && len - i > n) {
        // Whole rows straight from the chunk, with the row state in locals (a thin image has millions of rows).
        const bpp = this.bpp;
        let row = this.row;
        for (; row < rows && len - i > n; row++, i += n + 1) {
          const type = chunk[i];
          const o = row * n;
          if (n > SHORT) out.set(chunk.subarray(i + 1, i + 1 + n), o);
          else for (let k = 0; k < n; k++) out[o + k] = chunk[i + 1 + k];
          if (type !== 0 && !unfilterRow(type, out, o, out, o - n, n, bpp, row === 0)) {
            this.row = row;
            this.badFilter(type);
          }
        }
        this.row = row;
        if (row === rows) this.done = true;
        continue;
      }
      if (this.filled === 0) {
        this.filter = chunk[i++];
        this.filled = 1;
        continue;
      }
      const o = this.row * n + this.filled - 1;
      const take = Math.min(n + 1 - this.filled, len - i);
      if (take > SHORT) out.set(chunk.subarray(i, i + take), o);
      else for (let k = 0; k < take; k++) out[o + k] = chunk[i + k];
      this.filled += take;
      i += take;
      if (this.filled === n + 1) {
        const start = this.row * n;
        if (!unfilterRow(this.filter, out, start, out, start - n, n, this.bpp, this.row === 0)) this.badFilter(this.filter);
        this.filled = 0;
        if (++this.row === rows) this.done = true;
      }
    }
  }

  private finishRow(pass: Pass): void {
    this.unfilter(pass.rowBytes, this.row === 0);
    this.store(pass);
    const done = this.cur;
    this.cur = this.prev;
    this.prev = done;
    this.filled = 0;
    if (++this.row === pass.rows) {
      this.row = 0;
      if (++this.passIdx === this.passes.length) this.done = true;
    }
  }

  private unfilter(n: number, firstRow: boolean): void {
    // Data starts at index 1 in both buffers.
    if (!unfilterRow(this.cur[0], this.cur, 1, this.prev, 1, n, this.bpp, firstRow)) this.badFilter(this.cur[0]);
  }

  private badFilter(type: number): never {
    throw new ImageError(`PNG: invalid filter type ${type} in scanline ${this.row} of pass ${this.passIdx}`);
  }

  private store(pass: Pass): void {
    const { width, bitDepth: bd, colorType } = this.h;
    const src = this.cur;
    const y = pass.y0 + this.row * pass.dy;
    const bands = this.bands;
    let dst = y * width + pass.x0;
    const step = pass.dx;
    if (bd < 8) {
      const mask = (1 << bd) - 1;
      // Pillow unpackers: "1" → 0/255, "L;2" → v*0x55, "L;4" → v*0x11, palette indices as they are.
      const scale = colorType === 3 ? 1 : bd === 1 ? 255 : bd === 2 ? 0x55 : 0x11;
      const out = this.out as Uint8Array;
      for (let i = 0, bit = 0; i < pass.cols; i++, bit += bd, dst += step) {
        out[dst] = ((src[1 + (bit >> 3)] >> (8 - bd - (bit & 7))) & mask) * scale;
      }
      return;
    }
    if (bd === 8) {
      const out = this.out as Uint8Array;
      // Without interlacing a scanline already is Pillow's packed row.
      if (step === 1) {
        const len = pass.cols * bands;
        if (len > SHORT) return out.set(src.subarray(1, 1 + len), dst * bands);
        for (let k = 0, o = dst * bands; k < len; k++) out[o + k] = src[1 + k];
        return;
      }
      for (let i = 0, s = 1; i < pass.cols; i++, dst += step) {
        for (let k = 0, o = dst * bands; k < bands; k++) out[o + k] = src[s++];
      }
      return;
    }
    if (colorType === 0) {
      const out = this.out as Int32Array;
      for (let i = 0, s = 1; i < pass.cols; i++, s += 2, dst += step) out[dst] = (src[s] << 8) | src[s + 1];
      return;
    }
    // 16-bit colour: Pillow's "RGB;16B" / "RGBA;16B" / "LA;16B" unpackers keep the most significant byte.
    const out = this.out as Uint8Array;
    const samples = SAMPLES_PER_PIXEL[colorType];
    for (let i = 0, s = 1; i < pass.cols; i++, s += 2 * samples, dst += step) {
      const o = dst * bands;
      if (colorType === 4) {
        out[o] = out[o + 1] = out[o + 2] = src[s];
        out[o + 3] = src[s + 2];
      } else {
        for (let k = 0; k < samples; k++) out[o + k] = src[s + 2 * k];
      }
    }
  }
}

function parseHeader(bytes: Uint8Array, p: number, length: number): Header {
  if (length !== 13) throw new ImageError(`PNG: IHDR chunk has length ${length}, expected 13`);
  const h: Header = {
    width: u32(bytes, p),
    height: u32(bytes, p + 4),
    bitDepth: bytes[p + 8],
    colorType: bytes[p + 9],
    interlaced: bytes[p + 12] === 1,
  };
  if (h.width === 0 || h.height === 0 || h.width > 0x7fffffff || h.height > 0x7fffffff) {
    throw new ImageError(`PNG: invalid image size ${h.width}x${h.height} in IHDR`);
  }
  const depths = ALLOWED_DEPTHS[h.colorType];
  if (depths === undefined) throw new ImageError(`PNG: invalid colour type ${h.colorType} in IHDR`);
  if (!depths.includes(h.bitDepth)) {
    throw new ImageError(`PNG: bit depth ${h.bitDepth} is not allowed for colour type ${h.colorType}`);
  }
  if (bytes[p + 10] !== 0 || bytes[p + 11] !== 0) {
    throw new ImageError(`PNG: unknown compression method ${bytes[p + 10]} or filter method ${bytes[p + 11]}`);
  }
  if (bytes[p + 12] > 1) throw new ImageError(`PNG: unknown interlace method ${bytes[p + 12]}`);
  return h;
}

function chunkName(bytes: Uint8Array, p: number): string {
  return String.fromCharCode(bytes[p], bytes[p + 1], bytes[p + 2], bytes[p + 3]);
}

function isLetter(c: number): boolean {
  return (c >= 65 && c <= 90) || (c >= 97 && c <= 122);
}

/** Decodes a PNG file. Throws ImageError for anything malformed, truncated, or larger than maxPixels. */
export function decodePng(bytes: Uint8Array, maxPixels: number = DEFAULT_MAX_PIXELS): DecodedImage {
  if (!isPng(bytes)) throw new ImageError("PNG: missing PNG signature");
  let header: Header | undefined;
  let mode: ImageMode = "L";
  let palette: Uint8Array | undefined;
  let sink: ScanlineSink | undefined;
  let inflater: Unzlib | undefined;
  let sawIend = false;

  const guarded = (where: string, run: () => void): void => {
    try {
      run();
    } catch (e) {
      if (e instanceof ImageError) throw e;
      throw new ImageError(`PNG: corrupt image data (${where}): ${(e as Error).message}`);
    }
  };

  let pos = 8;
  while (pos < bytes.length) {
    if (pos + 8 > bytes.length) throw new ImageError(`PNG: truncated chunk header at offset ${pos}`);
    const length = u32(bytes, pos);
    const name = chunkName(bytes, pos + 4);
    if (![0, 1, 2, 3].every((k) => isLetter(bytes[pos + 4 + k]))) {
      throw new ImageError(`PNG: invalid chunk type ${JSON.stringify(name)} at offset ${pos}`);
    }
    const start = pos + 8;
    if (length > 0x7fffffff || start + length + 4 > bytes.length) {
      throw new ImageError(
        `PNG: chunk ${name} at offset ${pos} declares ${length} data bytes but only ${Math.max(0, bytes.length - start - 4)} remain`,
      );
    }
    const end = start + length;
    if (name === "IHDR" || name === "PLTE" || name === "IDAT" || name === "IEND") {
      const stored = u32(bytes, end);
      const computed = crc32(bytes.subarray(pos + 4, end));
      if (stored !== computed) {
        throw new ImageError(
          `PNG: CRC mismatch in ${name} chunk at offset ${pos}: stored ${stored.toString(16)}, computed ${computed.toString(16)}`,
        );
      }
    }
    if (header === undefined && name !== "IHDR") throw new ImageError(`PNG: first chunk is ${name}, expected IHDR`);
    switch (name) {
      case "IHDR": {
        if (header !== undefined) throw new ImageError(`PNG: second IHDR chunk at offset ${pos}`);
        header = parseHeader(bytes, start, length);
        checkDimensions(header.width, header.height, maxPixels, "PNG");
        mode = pillowMode(header);
        break;
      }
      case "PLTE": {
        if (header!.colorType !== 3) break; // a suggested palette for true-colour images; Pillow ignores it
        if (sink !== undefined) throw new ImageError(`PNG: PLTE chunk after image data at offset ${pos}`);
        if (length === 0 || length % 3 !== 0 || length > 768) {
          throw new ImageError(`PNG: PLTE chunk has length ${length}, expected a multiple of 3 from 3 to 768`);
        }
        // Pillow starts every palette as a grey ramp and overwrites the entries the file provides.
        palette = new Uint8Array(768);
        for (let i = 0; i < 256; i++) palette[3 * i] = palette[3 * i + 1] = palette[3 * i + 2] = i;
        palette.set(bytes.subarray(start, end));
        break;
      }
      case "IDAT": {
        if (sink === undefined) {
          const h = header!;
          if (h.colorType === 3 && palette === undefined) throw new ImageError("PNG: palette image without a PLTE chunk");
          const passes = passesOf(h);
          const expected = passes.reduce((s, p) => s + p.rows * (p.rowBytes + 1), 0);
          if ((bytes.length - start) * MAX_INFLATE_RATIO + 1024 < expected) {
            throw new ImageError(
              `PNG: ${h.width}x${h.height} image needs ${expected} bytes of scanlines, more than the ${bytes.length - start} remaining file bytes can hold`,
            );
          }
          const created = new ScanlineSink(h, passes, mode);
          sink = created;
          inflater = new Unzlib((chunk) => created.push(chunk));
        }
        const data = bytes.subarray(start, end);
        const target = sink;
        // Small slices bound what one push can inflate to (a deflate bomb stops as soon as the image is full).
        guarded(`IDAT at offset ${pos}`, () => {
          for (let i = 0; i < data.length && !target.done; i += INFLATE_SLICE) {
            inflater!.push(data.subarray(i, Math.min(i + INFLATE_SLICE, data.length)), false);
          }
        });
        break;
      }
      case "IEND":
        sawIend = true;
        break;
    }
    pos = end + 4;
    // Like Pillow's load_end, nothing after the complete image data can fail the decode.
    if (sawIend || sink?.done) break;
  }

  if (header === undefined) throw new ImageError("PNG: file ends before the IHDR chunk");
  if (sink === undefined) throw new ImageError("PNG: no IDAT chunk before the end of the file");
  if (!sink.done) guarded("end of IDAT stream", () => inflater!.push(new Uint8Array(0), true));
  if (!sink.done) {
    throw new ImageError(`PNG: image data ends early: the ${header.width}x${header.height} image is incomplete`);
  }
  const base = { width: header.width, height: header.height, decoder: "png" as const, exact: true };
  if (mode === "I") return { ...base, mode, data: sink.out as Int32Array };
  return { ...base, mode, data: sink.out as Uint8Array, ...(palette ? { palette } : {}) };
}
