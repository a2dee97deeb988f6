// Baseline and progressive Huffman JPEG (ITU-T T.81), decoded the way the libjpeg-turbo 2.1 behind Pillow 9.4 does
// with its defaults: ISLOW integer IDCT, "fancy" (triangular) chroma upsampling, fixed-point YCbCr→RGB, colour space
// chosen from JFIF/Adobe markers and component ids. Modes follow Pillow: 1 component → "L", 3 → "RGB",
// 4 → "CMYK" (inverted, Adobe convention). Not supported (ImageError): arithmetic coding, lossless, hierarchical,
// 12-bit. Progressive files whose scans leave coefficients unrefined make libjpeg apply block smoothing, which is not
// reproduced: those decode with exact: false.
import { ImageError } from "./errors.js";
import { checkDimensions, DEFAULT_MAX_JPEG_SCAN_WORK, DEFAULT_MAX_PIXELS, type DecodedImage } from "./types.js";

// Zig-zag position → natural (row-major) index; 16 extra entries absorb run lengths that overshoot on corrupt data.
const NATURAL = new Int32Array([
  0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48, 41, 34, 27, 20, 13, 6, 7, 14, 21,
  28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51, 58, 59, 52, 45, 38, 31, 39, 46, 53, 60, 61, 54,
  47, 55, 62, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63,
]);

const MAX_SCANS = 1000;
const EMPTY = new Uint8Array(0);
// Building a Huffman lookup table writes 65 536 entries; a DHT redefined before every scan makes every scan build one.
const TABLE_WORK = 65536;

export function isJpeg(bytes: Uint8Array): boolean {
  return bytes.length >= 3 && bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff;
}

interface Component {
  id: number;
  h: number;
  v: number;
  tq: number;
  quant?: Int32Array; // latched at the component's first scan, as libjpeg does
  widthInBlocks: number; // blocks a single-component scan covers
  heightInBlocks: number;
  blocksPerLine: number; // MCU-padded allocation
  blocksPerColumn: number;
  dsWidth: number; // samples actually in the image ("downsampled_width")
  dsHeight: number;
  plane: Uint8Array; // blocksPerLine*8 wide
  coefs?: Int16Array; // progressive only
  coefBits: Int8Array; // per zig-zag position: bits still unknown (-1 = never sent)
  pred: number;
}

interface Frame {
  width: number;
  height: number;
  progressive: boolean;
  components: Component[];
  maxH: number;
  maxV: number;
  mcusX: number;
  mcusY: number;
}

/** 16-bit lookahead table: entry = (code length << 8) | symbol, 0 for bit patterns that start no code. */
type HuffTable = Uint16Array;

/** A DHT definition; its lookup table is built when a scan first uses it, so DHT floods cost no more than their bytes. */
interface HuffSpec {
  counts: Uint8Array;
  symbols: Uint8Array;
  where: string;
  built?: HuffTable;
}

function tableOf(spec: HuffSpec, budget: Budget): HuffTable {
  if (spec.built === undefined) {
    budget.charge(TABLE_WORK);
    spec.built = buildHuffman(spec.counts, spec.symbols, spec.where);
  }
  return spec.built;
}

function buildHuffman(counts: Uint8Array, symbols: Uint8Array, where: string): HuffTable {
  const lookup = new Uint16Array(65536);
  const used = [...counts].map((n, i) => (n > 0 ? i + 1 : 0)).filter((l) => l > 0);
  let code = 0;
  let k = 0;
  for (let len = 1; len <= 16; len++) {
    for (let i = 0; i < counts[len - 1]; i++, code++) {
      const shift = 16 - len;
      lookup.fill((len << 8) | symbols[k++], code << shift, (code + 1) << shift);
    }
    // As libjpeg checks: between the shortest and longest length in use, codes must fit (no all-ones code).
    if (used.length > 0 && len >= used[0] && len <= used[used.length - 1] && code >= 1 << len) {
      throw new ImageError(`JPEG: bad Huffman table (${where})`);
    }
    code <<= 1;
  }
  return lookup;
}

class BitReader {
  private acc = 0;
  private n = 0;
  private fake = 0; // zero bits appended past the end of the segment
  private markerAt = -1;

  constructor(
    private readonly d: Uint8Array,
    public pos: number,
  ) {}

  private fill(): void {
    while (this.n <= 24) {
      let byte = 0;
      if (this.markerAt < 0 && this.pos < this.d.length) {
        byte = this.d[this.pos];
        if (byte === 0xff) {
          let q = this.pos + 1;
          while (q < this.d.length && this.d[q] === 0xff) q++; // fill bytes
          if (q < this.d.length && this.d[q] === 0) this.pos = q + 1;
          else {
            this.markerAt = this.pos;
            byte = 0;
            this.fake += 8;
          }
        } else this.pos++;
      } else {
        if (this.markerAt < 0) this.markerAt = this.d.length;
        this.fake += 8;
      }
      this.acc = ((this.acc << 8) | byte) >>> 0;
      this.n += 8;
    }
  }

  private consumed(k: number): void {
    this.n -= k;
    if (this.n < this.fake) throw new ImageError(`JPEG: entropy-coded data ends early (offset ${this.markerAt})`);
  }

  bits(k: number): number {
    if (k === 0) return 0;
    if (this.n < k) this.fill();
    const v = (this.acc >>> (this.n - k)) & ((1 << k) - 1);
    this.consumed(k);
    return v;
  }

  decode(t: HuffTable): number {
    if (this.n < 16) this.fill();
    const e = t[(this.acc >>> (this.n - 16)) & 0xffff];
    if (e === 0) throw new ImageError(`JPEG: invalid Huffman code near offset ${this.pos}`);
    this.consumed(e >> 8);
    return e & 0xff;
  }

  /** Value of an s-bit magnitude category (T.81 F.2.2.1 EXTEND). */
  receiveExtend(s: number): number {
    if (s === 0) return 0;
    const v = this.bits(s);
    return v < 1 << (s - 1) ? v - (1 << s) + 1 : v;
  }

  /** Offset where marker parsing resumes: at the marker that ended the data, or after the bytes read. */
  end(): number {
    return this.markerAt >= 0 ? this.markerAt : this.pos;
  }

  /** Drops buffered bits and consumes the expected RSTn marker. */
  restart(expected: number): void {
    let p = this.end();
    while (p < this.d.length && this.d[p] !== 0xff) p++; // libjpeg discards stray bytes here
    while (p < this.d.length && this.d[p] === 0xff) p++;
    if (p >= this.d.length || this.d[p] !== 0xd0 + expected) {
      throw new ImageError(`JPEG: expected restart marker RST${expected} near offset ${p}`);
    }
    this.pos = p + 1;
    this.acc = this.n = this.fake = 0;
    this.markerAt = -1;
  }
}

// ---------------------------------------------------------------- ISLOW inverse DCT (libjpeg jidctint.c arithmetic)

const CONST_BITS = 13;
const PASS1_BITS = 2;
const FIX_0_298631336 = 2446;
const FIX_0_390180644 = 3196;
const FIX_0_541196100 = 4433;
const FIX_0_765366865 = 6270;
const FIX_0_899976223 = 7373;
const FIX_1_175875602 = 9633;
const FIX_1_501321110 = 12299;
const FIX_1_847759065 = 15137;
const FIX_1_961570560 = 16069;
const FIX_2_053119869 = 16819;
const FIX_2_562915447 = 20995;
const FIX_3_072711026 = 25172;

// Products can pass 2^31 on extreme coefficients (JLONG is 64-bit in libjpeg-turbo): shift in int32 when the value
// fits, else divide exactly in doubles.
function descale11(x: number): number {
  const y = x + 1024;
  return (y | 0) === y ? y >> 11 : Math.floor(y / 2048);
}

function descale18(x: number): number {
  const y = x + 131072;
  return (y | 0) === y ? y >> 18 : Math.floor(y / 262144);
}

function toSample(x: number): number {
  const v = descale18(x) + 128;
  return v < 0 ? 0 : v > 255 ? 255 : v;
}

const ws = new Int32Array(64);

/**
 * Dequantises a natural-order block and writes its 8x8 samples (level-shifted, clamped) into `plane`: columns first
 * (descaled by CONST_BITS - PASS1_BITS), then rows (by CONST_BITS + PASS1_BITS + 3). A column or row whose AC terms
 * are all zero gives the same result through the shortcut as through the full butterfly.
 */
function idctBlock(blk: Int16Array, bo: number, q: Int32Array, plane: Uint8Array, po: number, stride: number): void {
  for (let c = 0; c < 8; c++) {
    const i = bo + c;
    if ((blk[i + 8] | blk[i + 16] | blk[i + 24] | blk[i + 32] | blk[i + 40] | blk[i + 48] | blk[i + 56]) === 0) {
      const dc = blk[i] * q[c] * (1 << PASS1_BITS);
      for (let k = 0; k < 64; k += 8) ws[c + k] = dc;
      continue;
    }
    const z2e = blk[i + 16] * q[c + 16];
    const z3e = blk[i + 48] * q[c + 48];
    const z1e = (z2e + z3e) * FIX_0_541196100;
    const t2e = z1e - z3e * FIX_1_847759065;
    const t3e = z1e + z2e * FIX_0_765366865;
    const d0 = blk[i] * q[c];
    const d4 = blk[i + 32] * q[c + 32];
    const t0e = (d0 + d4) * (1 << CONST_BITS);
    const t1e = (d0 - d4) * (1 << CONST_BITS);
    const t10 = t0e + t3e;
    const t13 = t0e - t3e;
    const t11 = t1e + t2e;
    const t12 = t1e - t2e;
    let t0 = blk[i + 56] * q[c + 56];
    let t1 = blk[i + 40] * q[c + 40];
    let t2 = blk[i + 24] * q[c + 24];
    let t3 = blk[i + 8] * q[c + 8];
    const z5 = (t0 + t2 + t1 + t3) * FIX_1_175875602;
    const z1 = (t0 + t3) * -FIX_0_899976223;
    const z2 = (t1 + t2) * -FIX_2_562915447;
    const z3 = (t0 + t2) * -FIX_1_961570560 + z5;
    const z4 = (t1 + t3) * -FIX_0_390180644 + z5;
    t0 = t0 * FIX_0_298631336 + z1 + z3;
    t1 = t1 * FIX_2_053119869 + z2 + z4;
    t2 = t2 * FIX_3_072711026 + z2 + z3;
    t3 = t3 * FIX_1_501321110 + z1 + z4;
    ws[c] = descale11(t10 + t3);
    ws[c + 56] = descale11(t10 - t3);
    ws[c + 8] = descale11(t11 + t2);
    ws[c + 48] = descale11(t11 - t2);
    ws[c + 16] = descale11(t12 + t1);
    ws[c + 40] = descale11(t12 - t1);
    ws[c + 24] = descale11(t13 + t0);
    ws[c + 32] = descale11(t13 - t0);
  }
  for (let r = 0; r < 8; r++) {
    const w = r * 8;
    const o = po + r * stride;
    if ((ws[w + 1] | ws[w + 2] | ws[w + 3] | ws[w + 4] | ws[w + 5] | ws[w + 6] | ws[w + 7]) === 0) {
      plane.fill(toSample(ws[w] * (1 << CONST_BITS)), o, o + 8);
      continue;
    }
    const z2e = ws[w + 2];
    const z3e = ws[w + 6];
    const z1e = (z2e + z3e) * FIX_0_541196100;
    const t2e = z1e - z3e * FIX_1_847759065;
    const t3e = z1e + z2e * FIX_0_765366865;
    const t0e = (ws[w] + ws[w + 4]) * (1 << CONST_BITS);
    const t1e = (ws[w] - ws[w + 4]) * (1 << CONST_BITS);
    const t10 = t0e + t3e;
    const t13 = t0e - t3e;
    const t11 = t1e + t2e;
    const t12 = t1e - t2e;
    let t0 = ws[w + 7];
    let t1 = ws[w + 5];
    let t2 = ws[w + 3];
    let t3 = ws[w + 1];
    const z5 = (t0 + t2 + t1 + t3) * FIX_1_175875602;
    const z1 = (t0 + t3) * -FIX_0_899976223;
    const z2 = (t1 + t2) * -FIX_2_562915447;
    const z3 = (t0 + t2) * -FIX_1_961570560 + z5;
    const z4 = (t1 + t3) * -FIX_0_390180644 + z5;
    t0 = t0 * FIX_0_298631336 + z1 + z3;
    t1 = t1 * FIX_2_053119869 + z2 + z4;
    t2 = t2 * FIX_3_072711026 + z2 + z3;
    t3 = t3 * FIX_1_501321110 + z1 + z4;
    plane[o] = toSample(t10 + t3);
    plane[o + 7] = toSample(t10 - t3);
    plane[o + 1] = toSample(t11 + t2);
    plane[o + 6] = toSample(t11 - t2);
    plane[o + 2] = toSample(t12 + t1);
    plane[o + 5] = toSample(t12 - t1);
    plane[o + 3] = toSample(t13 + t0);
    plane[o + 4] = toSample(t13 - t0);
  }
}

// ---------------------------------------------------------------- upsampling (libjpeg-turbo jdsample.c, fancy)

function upsample(c: Component, f: Frame): Uint8Array {
  const { width: W, height: H } = f;
  const hr = f.maxH / c.h;
  const vr = f.maxV / c.v;
  const src = c.plane;
  const stride = c.blocksPerLine * 8;
  const dw = c.dsWidth;
  const dh = c.dsHeight;
  const out = new Uint8Array(W * H);
  if (hr === 1 && vr === 1) {
    for (let y = 0; y < H; y++) out.set(src.subarray(y * stride, y * stride + W), y * W);
    return out;
  }
  const row = new Uint8Array(2 * dw + 2);
  if (hr === 2 && vr === 1 && dw > 2) {
    for (let y = 0; y < H; y++) {
      const s = y * stride;
      row[0] = src[s];
      row[1] = (src[s] * 3 + src[s + 1] + 2) >> 2;
      for (let i = 1; i < dw - 1; i++) {
        const v = src[s + i] * 3;
        row[2 * i] = (v + src[s + i - 1] + 1) >> 2;
        row[2 * i + 1] = (v + src[s + i + 1] + 2) >> 2;
      }
      row[2 * dw - 2] = (src[s + dw - 1] * 3 + src[s + dw - 2] + 1) >> 2;
      row[2 * dw - 1] = src[s + dw - 1];
      out.set(row.subarray(0, W), y * W);
    }
    return out;
  }
  if (hr === 1 && vr === 2) {
    for (let y = 0; y < H; y++) {
      const iy = y >> 1;
      // Context rows beyond the component's edges repeat its first / last row.
      const ny = y & 1 ? Math.min(iy + 1, dh - 1) : Math.max(iy - 1, 0);
      const bias = y & 1 ? 2 : 1;
      for (let x = 0; x < W; x++) out[y * W + x] = (src[iy * stride + x] * 3 + src[ny * stride + x] + bias) >> 2;
    }
    return out;
  }
  if (hr === 2 && vr === 2 && dw > 2) {
    const sums = new Int32Array(dw);
    for (let y = 0; y < H; y++) {
      const iy = y >> 1;
      const ny = y & 1 ? Math.min(iy + 1, dh - 1) : Math.max(iy - 1, 0);
      for (let i = 0; i < dw; i++) sums[i] = src[iy * stride + i] * 3 + src[ny * stride + i];
      row[0] = (sums[0] * 4 + 8) >> 4;
      row[1] = (sums[0] * 3 + sums[1] + 7) >> 4;
      for (let i = 1; i < dw - 1; i++) {
        row[2 * i] = (sums[i] * 3 + sums[i - 1] + 8) >> 4;
        row[2 * i + 1] = (sums[i] * 3 + sums[i + 1] + 7) >> 4;
      }
      row[2 * dw - 2] = (sums[dw - 1] * 3 + sums[dw - 2] + 8) >> 4;
      row[2 * dw - 1] = (sums[dw - 1] * 4 + 7) >> 4;
      out.set(row.subarray(0, W), y * W);
    }
    return out;
  }
  // Integral factors (and 2x with at most two columns): plain replication.
  for (let y = 0; y < H; y++) {
    const s = Math.floor(y / vr) * stride;
    for (let x = 0; x < W; x++) out[y * W + x] = src[s + Math.floor(x / hr)];
  }
  return out;
}

// ---------------------------------------------------------------- colour conversion (jdcolor.c tables)

const CR_R = new Int32Array(256);
const CB_B = new Int32Array(256);
const CR_G = new Int32Array(256);
const CB_G = new Int32Array(256);
for (let i = 0; i < 256; i++) {
  const x = i - 128;
  CR_R[i] = (91881 * x + 32768) >> 16; // FIX(1.40200)
  CB_B[i] = (116130 * x + 32768) >> 16; // FIX(1.77200)
  CR_G[i] = -46802 * x; // FIX(0.71414)
  CB_G[i] = -22554 * x + 32768; // FIX(0.34414), plus the rounding half
}

// Clamp to 0..255 by lookup at offset 256 (colour conversion results stay within -256..511).
const LIMIT = new Uint8Array(768);
for (let i = 0; i < 768; i++) LIMIT[i] = Math.min(255, Math.max(0, i - 256));

// ---------------------------------------------------------------- markers and scans

interface Scan {
  comps: Component[];
  dc: (HuffTable | undefined)[];
  ac: (HuffTable | undefined)[];
  ss: number;
  se: number;
  ah: number;
  al: number;
}

function u16(b: Uint8Array, p: number): number {
  return (b[p] << 8) | b[p + 1];
}

/** The frame header's block geometry, or undefined where parseFrame would refuse it. */
function geometryOf(b: Uint8Array, p: number, len: number, progressive: boolean): Geometry | undefined {
  const height = u16(b, p + 1);
  const width = u16(b, p + 3);
  const n = b[p + 5];
  if (len < 8 || height === 0 || width === 0 || len !== 6 + 3 * n) return undefined;
  const raw = Array.from({ length: n }, (_, i) => ({ id: b[p + 6 + 3 * i], h: b[p + 7 + 3 * i] >> 4, v: b[p + 7 + 3 * i] & 15 }));
  if (raw.some((c) => c.h < 1 || c.v < 1)) return undefined;
  const maxH = Math.max(...raw.map((c) => c.h));
  const maxV = Math.max(...raw.map((c) => c.v));
  const components = raw.map((c) => ({
    ...c,
    widthInBlocks: Math.ceil((width * c.h) / (8 * maxH)),
    heightInBlocks: Math.ceil((height * c.v) / (8 * maxV)),
  }));
  return { width, height, progressive, mcusX: Math.ceil(width / (8 * maxH)), mcusY: Math.ceil(height / (8 * maxV)), components };
}

/** Parses and checks a frame header; `beforeAllocate` sees its geometry before the planes are allocated. */
function parseFrame(
  b: Uint8Array,
  p: number,
  len: number,
  progressive: boolean,
  maxPixels: number,
  beforeAllocate: (g: Geometry) => void,
): Frame {
  if (len < 8) throw new ImageError(`JPEG: frame header of ${len} bytes is too short`);
  const precision = b[p];
  const height = u16(b, p + 1);
  const width = u16(b, p + 3);
  const n = b[p + 5];
  if (precision !== 8) throw new ImageError(`JPEG: ${precision}-bit samples are not supported`);
  if (height === 0) throw new ImageError("JPEG: height defined by a DNL marker is not supported");
  if (width === 0) throw new ImageError("JPEG: image width is 0");
  if (n !== 1 && n !== 3 && n !== 4) throw new ImageError(`JPEG: ${n} colour components are not supported`);
  if (len !== 6 + 3 * n) throw new ImageError(`JPEG: frame header length ${len} does not match ${n} components`);
  checkDimensions(width, height, maxPixels, "JPEG");
  const raw = [];
  for (let i = 0; i < n; i++) {
    const q = p + 6 + 3 * i;
    const h = b[q + 1] >> 4;
    const v = b[q + 1] & 15;
    if (h < 1 || h > 4 || v < 1 || v > 4) throw new ImageError(`JPEG: invalid sampling factors ${h}x${v}`);
    if (b[q + 2] > 3) throw new ImageError(`JPEG: invalid quantisation table ${b[q + 2]}`);
    raw.push({ id: b[q], h, v, tq: b[q + 2] });
  }
  const maxH = Math.max(...raw.map((c) => c.h));
  const maxV = Math.max(...raw.map((c) => c.v));
  if (raw.some((c) => maxH % c.h !== 0 || maxV % c.v !== 0)) {
    throw new ImageError(`JPEG: fractional sampling factors (${raw.map((c) => `${c.h}x${c.v}`).join(", ")}) are not supported`);
  }
  const mcusX = Math.ceil(width / (8 * maxH));
  const mcusY = Math.ceil(height / (8 * maxV));
  beforeAllocate(geometryOf(b, p, len, progressive)!);
  const allocate = <T>(make: () => T): T => {
    try {
      return make();
    } catch (e) {
      if (e instanceof RangeError) throw new ImageError(`JPEG: cannot allocate a ${width}x${height} image: ${e.message}`);
      throw e;
    }
  };
  const components = raw.map((c): Component => {
    const blocksPerLine = mcusX * c.h;
    const blocksPerColumn = mcusY * c.v;
    return {
      ...c,
      widthInBlocks: Math.ceil((width * c.h) / (8 * maxH)),
      heightInBlocks: Math.ceil((height * c.v) / (8 * maxV)),
      blocksPerLine,
      blocksPerColumn,
      dsWidth: Math.ceil((width * c.h) / maxH),
      dsHeight: Math.ceil((height * c.v) / maxV),
      plane: allocate(() => new Uint8Array(blocksPerLine * blocksPerColumn * 64)),
      coefs: progressive ? allocate(() => new Int16Array(blocksPerLine * blocksPerColumn * 64)) : undefined,
      coefBits: new Int8Array(64).fill(-1),
      pred: 0,
    };
  });
  return { width, height, progressive, components, maxH, maxV, mcusX, mcusY };
}

function checkProgression(scan: Scan, progressive: boolean): void {
  const { ss, se, ah, al } = scan;
  if (!progressive) return; // libjpeg only warns about odd Ss/Se/Ah/Al in sequential scans
  const bad =
    (ss === 0 ? se !== 0 : se < ss || se > 63 || scan.comps.length !== 1) || (ah !== 0 && al !== ah - 1) || al > 13;
  if (bad) throw new ImageError(`JPEG: invalid progressive scan (Ss=${ss}, Se=${se}, Ah=${ah}, Al=${al})`);
  for (const c of scan.comps) for (let k = ss; k <= se; k++) c.coefBits[k] = al;
}

function decodeScan(b: Uint8Array, pos: number, f: Frame, scan: Scan, restartInterval: number): number {
  const r = new BitReader(b, pos);
  const single = scan.comps.length === 1;
  const first = scan.comps[0];
  const perRow = single ? first.widthInBlocks : f.mcusX;
  const total = single ? first.widthInBlocks * first.heightInBlocks : f.mcusX * f.mcusY;
  const block = new Int16Array(64);
  let eobrun = 0;
  let nextRst = 0;
  for (const c of scan.comps) c.pred = 0;

  const p1 = 1 << scan.al;
  const m1 = -1 << scan.al;
  const refine = (coefs: Int16Array, i: number): void => {
    if (coefs[i] !== 0 && r.bits(1) && (coefs[i] & p1) === 0) coefs[i] += coefs[i] >= 0 ? p1 : m1;
  };

  const decodeBlock = (ci: number, row: number, col: number): void => {
    const c = scan.comps[ci];
    const index = (row * c.blocksPerLine + col) * 64;
    if (!f.progressive) {
      block.fill(0);
      const t = r.decode(scan.dc[ci]!);
      c.pred += r.receiveExtend(t);
      block[0] = c.pred;
      const ac = scan.ac[ci]!;
      for (let k = 1; k < 64; k++) {
        const rs = r.decode(ac);
        const s = rs & 15;
        if (s) {
          k += rs >> 4;
          block[NATURAL[k]] = r.receiveExtend(s);
        } else if (rs >> 4 === 15) k += 15;
        else break;
      }
      idctBlock(block, 0, c.quant!, c.plane, row * 8 * c.blocksPerLine * 8 + col * 8, c.blocksPerLine * 8);
      return;
    }
    const coefs = c.coefs!;
    if (scan.ss === 0) {
      if (scan.ah === 0) {
        const t = r.decode(scan.dc[ci]!);
        c.pred += r.receiveExtend(t);
        coefs[index] = c.pred * p1;
      } else if (r.bits(1)) coefs[index] |= p1;
      return;
    }
    const ac = scan.ac[ci]!;
    if (scan.ah === 0) {
      if (eobrun > 0) {
        eobrun--;
        return;
      }
      for (let k = scan.ss; k <= scan.se; k++) {
        const rs = r.decode(ac);
        const s = rs & 15;
        const run = rs >> 4;
        if (s) {
          k += run;
          coefs[index + NATURAL[k]] = r.receiveExtend(s) * p1;
        } else if (run === 15) k += 15;
        else {
          eobrun = (1 << run) + r.bits(run) - 1;
          break;
        }
      }
      return;
    }
    // Successive approximation of AC coefficients (T.81 G.1.2.3).
    let k = scan.ss;
    if (eobrun === 0) {
      for (; k <= scan.se; k++) {
        const rs = r.decode(ac);
        let s = rs & 15;
        let run = rs >> 4;
        if (s) {
          s = r.bits(1) ? p1 : m1;
        } else if (run !== 15) {
          eobrun = (1 << run) + r.bits(run);
          break;
        }
        while (k <= scan.se) {
          const i = index + NATURAL[k];
          if (coefs[i] !== 0) refine(coefs, i);
          else if (--run < 0) break;
          k++;
        }
        if (s) coefs[index + NATURAL[k]] = s;
      }
    }
    if (eobrun > 0) {
      for (; k <= scan.se; k++) refine(coefs, index + NATURAL[k]);
      eobrun--;
    }
  };

  for (let mcu = 0; mcu < total; mcu++) {
    if (restartInterval > 0 && mcu > 0 && mcu % restartInterval === 0) {
      r.restart(nextRst);
      nextRst = (nextRst + 1) & 7;
      eobrun = 0;
      for (const c of scan.comps) c.pred = 0;
    }
    const my = Math.floor(mcu / perRow);
    const mx = mcu - my * perRow;
    if (single) decodeBlock(0, my, mx);
    else {
      for (let ci = 0; ci < scan.comps.length; ci++) {
        const c = scan.comps[ci];
        for (let v = 0; v < c.v; v++) for (let h = 0; h < c.h; h++) decodeBlock(ci, my * c.v + v, mx * c.h + h);
      }
    }
  }
  return r.end();
}

/** Next marker at or after p, skipping stray bytes and 0xff fill as libjpeg does; returns [marker, offset after it]. */
function findMarker(b: Uint8Array, p: number): [number, number] | undefined {
  for (;;) {
    while (p < b.length && b[p] !== 0xff) p++;
    while (p < b.length && b[p] === 0xff) p++;
    if (p >= b.length) return undefined;
    if (b[p] !== 0) return [b[p], p + 1];
    p++; // 0xff 0x00 outside entropy-coded data: garbage
  }
}

function nextMarker(b: Uint8Array, p: number): [number, number] {
  const found = findMarker(b, p);
  if (!found) throw new ImageError("JPEG: file ends before the end-of-image marker (truncated?)");
  return found;
}

// ---------------------------------------------------------------- work budget

/** What the scan loop needs to price a scan: the blocks each component and each MCU hold. */
interface Geometry {
  width: number;
  height: number;
  progressive: boolean;
  mcusX: number;
  mcusY: number;
  components: { id: number; h: number; v: number; widthInBlocks: number; heightInBlocks: number }[];
}

/**
 * Work of one scan, in coefficient visits: it walks every block of its components (an MCU at a time when interleaved),
 * each costing about 8 (measured: locating the block, EOB-run bookkeeping), and may visit each coefficient of its
 * band (a refinement scan does, even inside an EOB run). An EOB run makes the walk nearly free in bits, not in time.
 */
function scanWork(g: Geometry, comps: Geometry["components"], ss: number, se: number): number {
  const blocks =
    comps.length === 1 ? comps[0].widthInBlocks * comps[0].heightInBlocks : g.mcusX * g.mcusY * comps.reduce((n, c) => n + c.h * c.v, 0);
  return blocks * (8 + (g.progressive ? Math.max(1, Math.min(se, 63) - ss + 1) : 64));
}

class Budget {
  used = 0;
  scans = 0;
  constructor(readonly max: number) {}
  charge(work: number): void {
    this.used += work;
    if (this.used > this.max) {
      throw new ImageError(`JPEG: decoding asks for more than ${this.max} units of work (maxJpegScanWork)`);
    }
  }
}

/**
 * The work all scans of the file ask for, priced from the headers before anything is decoded or allocated (the scan
 * loop prices each scan again as it goes, as a backstop). Malformed structure ends the count: the decoder reports it.
 */
function plannedWork(b: Uint8Array): { work: number; scans: number } {
  const fresh = [new Array<boolean>(4).fill(false), new Array<boolean>(4).fill(false)]; // DC, AC slots defined, not built
  let g: Geometry | undefined;
  let work = 0;
  let scans = 0;
  for (let pos = 2; ; ) {
    const found = findMarker(b, pos);
    if (!found || found[0] === 0xd9 || found[0] === 0xd8) break;
    const m = found[0];
    pos = found[1];
    if ((m >= 0xd0 && m <= 0xd7) || m === 0x01) continue;
    const len = pos + 2 <= b.length ? u16(b, pos) : 0;
    if (len < 2 || pos + len > b.length) break;
    const p = pos + 2;
    const end = pos + len;
    pos = end;
    if (m === 0xc0 || m === 0xc1 || m === 0xc2) {
      if (g) break;
      g = geometryOf(b, p, len - 2, m === 0xc2);
      if (!g) break;
    } else if (m === 0xc4) {
      for (let q = p; q + 17 <= end; ) {
        if (b[q] >> 4 <= 1 && (b[q] & 15) <= 3) fresh[b[q] >> 4][b[q] & 15] = true;
        q += 17 + b.subarray(q + 1, q + 17).reduce((s, v) => s + v, 0);
      }
    } else if (m === 0xda) {
      const ns = b[p];
      if (!g || ns < 1 || ns > 4 || len !== 6 + 2 * ns) break;
      const ss = b[p + 1 + 2 * ns];
      const ah = b[p + 3 + 2 * ns] >> 4;
      const comps = [];
      for (let i = 0; i < ns; i++) {
        const c = g.components.find((k) => k.id === b[p + 1 + 2 * i]);
        if (!c) return { work, scans: scans + 1 };
        comps.push(c);
        const td = b[p + 2 + 2 * i] >> 4;
        const ta = b[p + 2 + 2 * i] & 15;
        if ((!g.progressive || (ss === 0 && ah === 0)) && td <= 3 && fresh[0][td]) (work += TABLE_WORK), (fresh[0][td] = false);
        if ((!g.progressive || ss > 0) && ta <= 3 && fresh[1][ta]) (work += TABLE_WORK), (fresh[1][ta] = false);
      }
      scans++;
      work += scanWork(g, comps, ss, b[p + 2 + 2 * ns]);
    }
  }
  return { work, scans };
}

/** Decodes a baseline or progressive JPEG. Throws ImageError for malformed, truncated or oversized files. */
export function decodeJpeg(
  bytes: Uint8Array,
  maxPixels: number = DEFAULT_MAX_PIXELS,
  maxJpegScanWork: number = DEFAULT_MAX_JPEG_SCAN_WORK,
): DecodedImage {
  const b = bytes;
  if (!(b.length >= 2 && b[0] === 0xff && b[1] === 0xd8)) throw new ImageError("JPEG: missing start-of-image marker");
  const plan = plannedWork(b);
  const budget = new Budget(maxJpegScanWork);
  const quant: (Int32Array | undefined)[] = [];
  const dcTables: (HuffSpec | undefined)[] = [];
  const acTables: (HuffSpec | undefined)[] = [];
  let scans = 0;
  let frame: Frame | undefined;
  let restartInterval = 0;
  let jfif = false;
  let adobeTransform = -1;
  let pos = 2;
  for (;;) {
    const [m, after] = nextMarker(b, pos);
    pos = after;
    if (m === 0xd9) break; // EOI
    if (m === 0xd8) throw new ImageError(`JPEG: second start-of-image marker at offset ${pos - 2}`);
    if ((m >= 0xd0 && m <= 0xd7) || m === 0x01) continue; // parameterless
    if (pos + 2 > b.length) throw new ImageError(`JPEG: file ends inside marker 0xff${m.toString(16)}`);
    const len = u16(b, pos);
    if (len < 2 || pos + len > b.length) {
      throw new ImageError(`JPEG: segment 0xff${m.toString(16)} at offset ${pos - 2} declares ${len} bytes, ${b.length - pos} remain`);
    }
    const p = pos + 2;
    const end = pos + len;
    pos = end;
    if (m === 0xc0 || m === 0xc1 || m === 0xc2) {
      if (frame) throw new ImageError("JPEG: more than one frame");
      frame = parseFrame(b, p, len - 2, m === 0xc2, maxPixels, (g) => {
        if (!g.progressive) {
          // Every block of every component costs at least 2 bits (a DC code and an end-of-block code).
          const blocks = g.components.reduce((s, c) => s + c.widthInBlocks * c.heightInBlocks, 0);
          if ((b.length - end) * 4 < blocks) {
            throw new ImageError(`JPEG: ${g.width}x${g.height} image cannot fit in the ${b.length - end} remaining bytes`);
          }
        }
        // The scans were priced from their headers before the loop: refused before a byte of pixels is decoded.
        if (plan.scans > MAX_SCANS) throw new ImageError(`JPEG: ${plan.scans} scans, more than ${MAX_SCANS}`);
        if (plan.work > maxJpegScanWork) {
          throw new ImageError(
            `JPEG: the ${plan.scans} scans of this ${g.width}x${g.height} image ask for ${plan.work} units of work ` +
              `(per scan: blocks walked × (8 + coefficients in its band)), more than the limit of ${maxJpegScanWork} (maxJpegScanWork)`,
          );
        }
      });
    } else if (m >= 0xc3 && m <= 0xcf && m !== 0xc4 && m !== 0xc8 && m !== 0xcc) {
      throw new ImageError(`JPEG: coding process SOF${m - 0xc0} (lossless, arithmetic or hierarchical) is not supported`);
    } else if (m === 0xc4) {
      for (let q = p; q < end; ) {
        const tc = b[q] >> 4;
        const th = b[q] & 15;
        if (tc > 1 || th > 3 || q + 17 > end) throw new ImageError(`JPEG: bad DHT segment at offset ${q}`);
        const counts = b.subarray(q + 1, q + 17);
        const total = counts.reduce((s, v) => s + v, 0);
        if (total > 256 || q + 17 + total > end) throw new ImageError(`JPEG: bad Huffman table size at offset ${q}`);
        const spec = { counts: counts.slice(), symbols: b.slice(q + 17, q + 17 + total), where: `DHT at offset ${q}` };
        (tc === 0 ? dcTables : acTables)[th] = spec;
        q += 17 + total;
      }
    } else if (m === 0xdb) {
      for (let q = p; q < end; ) {
        const wide = b[q] >> 4;
        const tq = b[q] & 15;
        const size = wide ? 128 : 64;
        if (wide > 1 || tq > 3 || q + 1 + size > end) throw new ImageError(`JPEG: bad DQT segment at offset ${q}`);
        const t = new Int32Array(64);
        for (let k = 0; k < 64; k++) t[NATURAL[k]] = wide ? u16(b, q + 1 + 2 * k) : b[q + 1 + k];
        quant[tq] = t;
        q += 1 + size;
      }
    } else if (m === 0xdd) {
      if (len !== 4) throw new ImageError(`JPEG: DRI segment has length ${len}`);
      restartInterval = u16(b, p);
    } else if (m === 0xe0) {
      // libjpeg needs 14 bytes of APP0 data to accept a JFIF header.
      if (len - 2 >= 14 && String.fromCharCode(...b.subarray(p, p + 5)) === "JFIF\0") jfif = true;
    } else if (m === 0xee) {
      if (len - 2 >= 12 && String.fromCharCode(...b.subarray(p, p + 5)) === "Adobe") adobeTransform = b[p + 11];
    } else if (m === 0xda) {
      if (!frame) throw new ImageError(`JPEG: scan at offset ${p - 4} before the frame header`);
      const f = frame;
      if (++scans > MAX_SCANS) throw new ImageError(`JPEG: more than ${MAX_SCANS} scans`);
      const ns = b[p];
      if (ns < 1 || ns > 4 || len !== 6 + 2 * ns) throw new ImageError(`JPEG: bad scan header at offset ${p - 4}`);
      const scan: Scan = { comps: [], dc: [], ac: [], ss: b[p + 1 + 2 * ns], se: b[p + 2 + 2 * ns], ah: b[p + 3 + 2 * ns] >> 4, al: b[p + 3 + 2 * ns] & 15 };
      let blocksInMcu = 0;
      for (let i = 0; i < ns; i++) {
        const c = f.components.find((k) => k.id === b[p + 1 + 2 * i]);
        if (!c || scan.comps.includes(c)) throw new ImageError(`JPEG: scan names unknown or repeated component ${b[p + 1 + 2 * i]}`);
        blocksInMcu += c.h * c.v;
        const td = b[p + 2 + 2 * i] >> 4;
        const ta = b[p + 2 + 2 * i] & 15;
        const needDc = !f.progressive || (scan.ss === 0 && scan.ah === 0);
        const needAc = !f.progressive || scan.ss > 0;
        const dcSpec = dcTables[td & 3];
        const acSpec = acTables[ta & 3];
        if (needDc && (td > 3 || !dcSpec)) throw new ImageError(`JPEG: scan uses undefined DC Huffman table ${td}`);
        if (needAc && (ta > 3 || !acSpec)) throw new ImageError(`JPEG: scan uses undefined AC Huffman table ${ta}`);
        if (needDc && dcSpec!.symbols.some((s) => s > 15)) throw new ImageError(`JPEG: DC Huffman table ${td} has symbols above 15`);
        const dc = needDc ? tableOf(dcSpec!, budget) : undefined;
        const ac = needAc ? tableOf(acSpec!, budget) : undefined;
        if (!c.quant) {
          const q = quant[c.tq];
          if (!q) throw new ImageError(`JPEG: component ${c.id} uses undefined quantisation table ${c.tq}`);
          c.quant = q.slice();
        }
        scan.comps.push(c);
        scan.dc.push(dc);
        scan.ac.push(ac);
      }
      if (ns > 1 && blocksInMcu > 10) throw new ImageError(`JPEG: ${blocksInMcu} blocks per MCU (at most 10)`);
      checkProgression(scan, f.progressive);
      budget.charge(scanWork(f, scan.comps, scan.ss, scan.se));
      pos = decodeScan(b, end, f, scan, restartInterval);
    } else if (m === 0xdc) {
      throw new ImageError("JPEG: DNL marker is not supported");
    } else if (!(m >= 0xe0 && m <= 0xef) && m !== 0xfe) {
      throw new ImageError(`JPEG: unknown marker 0xff${m.toString(16)} at offset ${p - 4}`);
    }
  }
  if (!frame) throw new ImageError("JPEG: end of image before any frame header");
  const f = frame;
  if (f.components.some((c) => !c.quant)) throw new ImageError("JPEG: a component has no scan data");

  // libjpeg-turbo 2.1 smooths progressive blocks (jdcoefct.c smoothing_ok) when one of the first 10 coefficients was
  // left unrefined, provided every component has DC data and nonzero quantisers there. Not reproduced: flag it.
  const first10 = NATURAL.subarray(0, 10);
  const smoothed =
    f.progressive &&
    f.components.every((c) => c.coefBits[0] >= 0 && first10.every((k) => c.quant![k] !== 0)) &&
    f.components.some((c) => c.coefBits.subarray(1, 10).some((v) => v !== 0));
  if (f.progressive) {
    for (const c of f.components) {
      const stride = c.blocksPerLine * 8;
      for (let row = 0; row < c.heightInBlocks; row++) {
        for (let col = 0; col < c.widthInBlocks; col++) {
          idctBlock(c.coefs!, (row * c.blocksPerLine + col) * 64, c.quant!, c.plane, row * 8 * stride + col * 8, stride);
        }
      }
      c.coefs = undefined; // garbage from here on: 2 bytes per sample less held at the peak
    }
  }

  const { width, height } = f;
  const n = width * height;
  const planes = f.components.map((c) => {
    const full = upsample(c, f);
    c.plane = EMPTY;
    return full;
  });
  const base = { width, height, decoder: "jpeg" as const, exact: !smoothed };
  if (planes.length === 1) return { ...base, mode: "L", data: planes[0] };
  if (planes.length === 4) {
    // Adobe transform 0 is plain CMYK; any other value is taken as YCCK; no Adobe marker means CMYK.
    const ycck = adobeTransform > 0;
    const out = new Uint8Array(n * 4);
    const [p0, p1, p2, p3] = planes;
    for (let i = 0; i < n; i++) {
      let c0 = p0[i];
      let c1 = p1[i];
      let c2 = p2[i];
      if (ycck) {
        const y = p0[i];
        c0 = 255 - LIMIT[256 + y + CR_R[p2[i]]];
        c1 = 255 - LIMIT[256 + y + ((CB_G[p1[i]] + CR_G[p2[i]]) >> 16)];
        c2 = 255 - LIMIT[256 + y + CB_B[p1[i]]];
      }
      // Pillow reads 4-component JPEGs as "CMYK;I" (Adobe's inverted convention).
      out[4 * i] = 255 - c0;
      out[4 * i + 1] = 255 - c1;
      out[4 * i + 2] = 255 - c2;
      out[4 * i + 3] = 255 - p3[i];
    }
    return { ...base, mode: "CMYK", data: out };
  }
  const ids = f.components.map((c) => c.id).join(",");
  const rgb = jfif ? false : adobeTransform >= 0 ? adobeTransform === 0 : ids === "82,71,66";
  const out = new Uint8Array(n * 3);
  const [py, pb, pr] = planes;
  if (rgb) {
    for (let i = 0; i < n; i++) {
      out[3 * i] = py[i];
      out[3 * i + 1] = pb[i];
      out[3 * i + 2] = pr[i];
    }
  } else {
    for (let i = 0; i < n; i++) {
      const y = py[i];
      const cb = pb[i];
      const cr = pr[i];
      out[3 * i] = LIMIT[256 + y + CR_R[cr]];
      out[3 * i + 1] = LIMIT[256 + y + ((CB_G[cb] + CR_G[cr]) >> 16)];
      out[3 * i + 2] = LIMIT[256 + y + CB_B[cb]];
    }
  }
  return { ...base, mode: "RGB", data: out };
}
