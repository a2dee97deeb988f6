// PNG and JPEG through CLIP's preprocess (decode, resize, crop, normalise). PNG: chunk data edited behind repaired
// CRCs, IHDR fields, scanlines re-filtered and recompressed, chunk lists reordered, lying chunk lengths, extreme
// aspect ratios. JPEG: SOF/DHT/DQT/SOS/DRI fields, lying segment lengths, segments dropped, repeated and reordered,
// entropy-coded data edited (markers inserted, bits flipped, cut).
import { deflateSync } from "node:zlib";
import { unzlibSync, zlibSync } from "fflate";
import { ImageError, preprocess } from "../../src/image/index.js";
import type { FuzzTarget } from "../harness.js";
import { concat, crc32, getUint, havoc, interestingInt, mutateBytes, setUint, utf8 } from "../mutate.js";
import type { Rng } from "../rng.js";
import { pickSeed, seedFiles, type SeedFile } from "../seeds.js";

export interface ImageCase {
  bytes: Uint8Array;
  size: number;
  maxPixels?: number;
}

/**
 * CLIP's sizes, and 32/64 as the tiny test models use. Far smaller sizes are left out: Pillow's resize keeps ~70 bytes
 * of coefficients per output row, and a thin image resized to a tiny short side has millions of rows (README).
 */
function imageCase(rng: Rng, bytes: Uint8Array): ImageCase {
  const size = rng.pick([224, 224, 224, 224, 32, 64, 336]);
  return rng.chance(0.05) ? { bytes, size, maxPixels: rng.pick([1, 100, 10_000]) } : { bytes, size };
}

// ---------------------------------------------------------------- PNG

interface Chunk {
  type: string;
  data: Uint8Array;
}

const SIG = Uint8Array.of(0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a);

function pngChunks(png: Uint8Array): Chunk[] {
  const out: Chunk[] = [];
  for (let p = 8; p + 12 <= png.length; ) {
    const len = getUint(png, p, 4, false);
    out.push({ type: String.fromCharCode(...png.subarray(p + 4, p + 8)), data: png.subarray(p + 8, p + 8 + len) });
    p += 12 + len;
  }
  return out;
}

function chunkBytes(c: Chunk, lengthLie?: number): Uint8Array {
  const out = new Uint8Array(12 + c.data.length);
  setUint(out, 0, 4, lengthLie ?? c.data.length, false);
  out.set(utf8(c.type).subarray(0, 4), 4);
  out.set(c.data, 8);
  setUint(out, 8 + c.data.length, 4, crc32(out.subarray(4, 8 + c.data.length)), false);
  return out;
}

const pngOf = (chunks: readonly Chunk[]): Uint8Array => concat(SIG, ...chunks.map((c) => chunkBytes(c)));

function ihdr(w: number, h: number, depth: number, colour: number, interlace = 0): Chunk {
  const d = new Uint8Array(13);
  setUint(d, 0, 4, w, false);
  setUint(d, 4, 4, h, false);
  d.set([depth, colour, 0, 0, interlace], 8);
  return { type: "IHDR", data: d };
}

/** Compressed all-black scanlines by size: compressing megabytes of zeros for every case would dominate the campaign. */
const blankIdat = new Map<string, Uint8Array>();

function mutatePng(rng: Rng, seed: Uint8Array): { bytes: Uint8Array; how: string } {
  const chunks = pngChunks(seed).map((c) => ({ ...c }));
  const idats = chunks.filter((c) => c.type === "IDAT");
  switch (rng.weighted([20, 15, 15, 10, 10, 5, 5, 25])) {
    case 0: {
      // Chunk contents edited, CRC repaired: the edit reaches the decoder.
      const c = rng.pick(chunks);
      const r = mutateBytes(rng, c.data);
      c.data = r.bytes;
      return { bytes: pngOf(chunks), how: `${c.type}: ${r.how} (CRC repaired)` };
    }
    case 1: {
      const h = chunks[0]!;
      const d = h.data.slice();
      const field = rng.int(6);
      if (field < 2) setUint(d, field * 4, 4, interestingInt(rng, 32, getUint(d, field * 4, 4, false)), false);
      else d[6 + field] = rng.pick([0, 1, 2, 3, 4, 5, 6, 7, 8, 16, 32, 255]);
      h.data = d;
      return { bytes: pngOf(chunks), how: `IHDR ${getUint(d, 0, 4, false)}x${getUint(d, 4, 4, false)} depth ${d[8]} colour ${d[9]} methods ${d[10]}/${d[11]}/${d[12]}` };
    }
    case 2: {
      // Scanlines edited (filter bytes included) and recompressed into randomly split IDATs.
      let lines: Uint8Array;
      try {
        lines = unzlibSync(concat(...idats.map((c) => c.data)));
      } catch {
        return { bytes: seed, how: "unchanged" };
      }
      const r = rng.chance(0.3) ? { bytes: lines.map((v) => (rng.chance(0.05) ? rng.int(256) : v)), how: "5% of bytes randomised" } : mutateBytes(rng, lines);
      const z = zlibSync(r.bytes);
      const parts: Chunk[] = [];
      for (let p = 0; p < z.length; ) {
        const n = rng.chance(0.5) ? z.length : rng.range(1, 4096);
        parts.push({ type: "IDAT", data: z.subarray(p, p + n) });
        p += n;
      }
      const first = chunks.findIndex((c) => c.type === "IDAT");
      const rest = chunks.filter((c) => c.type !== "IDAT");
      rest.splice(first, 0, ...parts);
      return { bytes: pngOf(rest), how: `scanlines: ${r.how}` };
    }
    case 3: {
      const i = rng.int(chunks.length);
      const r = rng.int(5);
      if (r === 0) chunks.splice(i, 1);
      else if (r === 1) chunks.splice(i, 0, { ...chunks[rng.int(chunks.length)]! });
      else if (r === 2) {
        const j = rng.int(chunks.length);
        [chunks[i], chunks[j]] = [chunks[j]!, chunks[i]!];
      } else if (r === 3) chunks.splice(i, 0, { type: rng.pick(["IEND", "PLTE", "IDAT", "tRNS", "ABCD", "abcd", "iCCP"]), data: rng.bytes(rng.smallInt(800)) });
      else chunks.splice(i, 0, { type: "IDAT", data: new Uint8Array(0) });
      return { bytes: pngOf(chunks), how: `chunk list edit ${r} at ${i}` };
    }
    case 4: {
      // A chunk length field that lies (the CRC is computed over the true data).
      const i = rng.int(chunks.length);
      const lie = interestingInt(rng, 32, chunks[i]!.data.length);
      return { bytes: concat(SIG, ...chunks.map((c, k) => chunkBytes(c, k === i ? lie : undefined))), how: `${chunks[i]!.type} length ${lie}` };
    }
    case 5: {
      // An honest image of extreme aspect ratio: tiny file, huge resize output.
      const long = rng.pick([5000, 100_000, 1_000_000, 20_000_000]);
      const short = rng.range(1, 3);
      const [w, h] = rng.chance(0.5) ? [short, long] : [long, short];
      const key = `${w}x${h}`;
      let idat = blankIdat.get(key);
      if (!idat) blankIdat.set(key, (idat = zlibSync(new Uint8Array(h * (w + 1)), { level: 9 })));
      return { bytes: pngOf([ihdr(w, h, 8, 0), { type: "IDAT", data: idat }, { type: "IEND", data: new Uint8Array(0) }]), how: `honest ${w}x${h} grey image` };
    }
    case 6:
      return pngBomb(rng);
    default: {
      const hot: number[] = [];
      for (let p = 8; p + 12 <= seed.length; p += 12 + getUint(seed, p, 4, false)) hot.push(p, p + 4, p + 8);
      const r = havoc(rng, seed, hot);
      return { bytes: r.bytes, how: r.how };
    }
  }
}

/** zlib streams of n zero bytes at deflate's best ratio (~1030:1), by n: native zlib, as node's fuzz workers have it. */
const zeroStreams = new Map<number, Uint8Array>();

function zerosZlib(n: number): Uint8Array {
  let z = zeroStreams.get(n);
  if (!z) zeroStreams.set(n, (z = new Uint8Array(deflateSync(new Uint8Array(n), { level: 9 }))));
  return z;
}

/**
 * Compression-amplified PNGs: honest blank images of up to 48 MB of scanlines in tiny IDATs (tall, wide or square;
 * grey, RGB or RGBA), the same streams cut short, or under an IHDR declaring far more (up to 2^31-1 per side).
 */
function pngBomb(rng: Rng): { bytes: Uint8Array; how: string } {
  const colour = rng.pick([0, 2, 6] as const);
  const bpp = { 0: 1, 2: 3, 6: 4 }[colour];
  const pixels = rng.pick([100_000, 1_000_000, 4_000_000, 12_000_000]);
  const shape = rng.int(3);
  const w = shape === 0 ? rng.range(1, 3) : shape === 1 ? Math.ceil(pixels / rng.range(1, 3)) : Math.ceil(Math.sqrt(pixels));
  const h = Math.ceil(pixels / w);
  let z = zerosZlib(h * (w * bpp + 1));
  let [dw, dh] = [w, h];
  const r = rng.int(3);
  if (r === 1) z = z.subarray(0, rng.range(2, z.length - 1));
  else if (r === 2) [dw, dh] = rng.pick([[7000, 7000], [1, 50_000_001], [2 ** 31 - 1, 1], [65535, 65535], [w, h * 1000], [w * 2, h]]);
  const bytes = pngOf([ihdr(dw, dh, 8, colour), { type: "IDAT", data: z }, { type: "IEND", data: new Uint8Array(0) }]);
  return { bytes, how: `bomb: ${z.length}-byte IDAT of ${w}x${h} colour ${colour}${r === 1 ? " cut" : ""} declared ${dw}x${dh}` };
}

// ---------------------------------------------------------------- JPEG

interface Segment {
  marker: number;
  /** Payload after the length field (undefined for markers without one). */
  payload?: Uint8Array;
  /** Entropy-coded bytes following an SOS segment, up to the next non-RST marker. */
  scan?: Uint8Array;
}

function jpegSegments(b: Uint8Array): Segment[] {
  const out: Segment[] = [];
  let p = 2;
  while (p + 1 < b.length) {
    if (b[p] !== 0xff) break;
    const marker = b[p + 1]!;
    p += 2;
    if (marker === 0xd9 || (marker >= 0xd0 && marker <= 0xd7) || marker === 0x01) {
      out.push({ marker });
      if (marker === 0xd9) break;
      continue;
    }
    const len = getUint(b, p, 2, false);
    const seg: Segment = { marker, payload: b.subarray(p + 2, p + len) };
    p += len;
    if (marker === 0xda) {
      let q = p;
      while (q + 1 < b.length && !(b[q] === 0xff && b[q + 1] !== 0 && !(b[q + 1]! >= 0xd0 && b[q + 1]! <= 0xd7))) q++;
      seg.scan = b.subarray(p, q);
      p = q;
    }
    out.push(seg);
  }
  return out;
}

function jpegOf(segs: readonly Segment[], lie?: { index: number; length: number }): Uint8Array {
  const parts: Uint8Array[] = [Uint8Array.of(0xff, 0xd8)];
  segs.forEach((s, i) => {
    parts.push(Uint8Array.of(0xff, s.marker));
    if (s.payload) {
      const len = new Uint8Array(2);
      setUint(len, 0, 2, lie?.index === i ? lie.length : s.payload.length + 2, false);
      parts.push(len, s.payload);
    }
    if (s.scan) parts.push(s.scan);
  });
  return concat(...parts);
}

/** Offsets within a segment's payload that hold its most consequential fields. */
function fieldEdit(rng: Rng, s: Segment): string {
  const d = s.payload!.slice();
  s.payload = d;
  if (d.length === 0) return "empty";
  let at: number;
  let width: 1 | 2 = 1;
  if (s.marker >= 0xc0 && s.marker <= 0xcf && s.marker !== 0xc4 && s.marker !== 0xc8 && s.marker !== 0xcc) {
    // precision, height, width, component count, then per component: id, sampling, table.
    const choice = rng.int(5);
    if (choice === 1 || choice === 2) (at = 1 + (choice - 1) * 2), (width = 2);
    else if (choice === 0) at = 0;
    else if (choice === 3) at = 5;
    else at = 6 + rng.int(Math.max(1, d.length - 6));
    if (rng.chance(0.2)) s.marker = rng.pick([0xc0, 0xc1, 0xc2, 0xc3, 0xc9, 0xcb, 0xcf]);
  } else if (s.marker === 0xc4) at = rng.chance(0.5) ? 0 : rng.int(Math.min(d.length, 17));
  else if (s.marker === 0xdb) at = rng.chance(0.3) ? 0 : rng.int(d.length);
  else if (s.marker === 0xda) at = rng.chance(0.3) ? 0 : Math.max(0, d.length - 1 - rng.int(Math.min(d.length, 6)));
  else if (s.marker === 0xdd) (at = 0), (width = 2);
  else at = rng.int(d.length);
  if (at + width > d.length) return "no field";
  const v = interestingInt(rng, width === 2 ? 16 : 8, getUint(d, at, width, false));
  setUint(d, at, width, v, false);
  return `0xff${s.marker.toString(16)} field at ${at} = ${v}`;
}

function mutateJpeg(rng: Rng, seed: Uint8Array): { bytes: Uint8Array; how: string } {
  const segs = jpegSegments(seed).map((s) => ({ ...s }));
  const withPayload = segs.map((s, i) => (s.payload ? i : -1)).filter((i) => i >= 0);
  const scans = segs.filter((s) => s.scan);
  switch (rng.weighted([30, 10, 20, 15, 5, 25])) {
    case 0: {
      const hows: string[] = [];
      for (let k = rng.range(1, 2); k > 0; k--) hows.push(fieldEdit(rng, segs[rng.pick(withPayload)]!));
      return { bytes: jpegOf(segs), how: hows.join("; ") };
    }
    case 1: {
      const index = rng.pick(withPayload);
      const length = interestingInt(rng, 16, segs[index]!.payload!.length + 2);
      return { bytes: jpegOf(segs, { index, length }), how: `0xff${segs[index]!.marker.toString(16)} length ${length}` };
    }
    case 2: {
      if (scans.length === 0) return { bytes: seed, how: "unchanged" };
      const s = rng.pick(scans);
      const r = rng.int(3);
      if (r === 0) {
        const at = rng.int(s.scan!.length + 1);
        const m = rng.pick([0xd0, 0xd1, 0xd7, 0xd9, 0xc4, 0xda, 0xff, 0x00, rng.int(256)]);
        s.scan = concat(s.scan!.subarray(0, at), Uint8Array.of(0xff, m), s.scan!.subarray(at));
        return { bytes: jpegOf(segs), how: `marker 0xff${m.toString(16)} inside scan data at ${at}` };
      }
      const e = r === 1 ? mutateBytes(rng, s.scan!) : { bytes: s.scan!.subarray(0, rng.int(s.scan!.length + 1)), how: "cut" };
      s.scan = e.bytes;
      return { bytes: jpegOf(segs), how: `scan data: ${e.how}` };
    }
    case 3: {
      const i = rng.int(segs.length);
      const r = rng.int(4);
      if (r === 0) segs.splice(i, 1);
      else if (r === 1) segs.splice(i, 0, { ...segs[rng.int(segs.length)]! });
      else if (r === 2) {
        const j = rng.int(segs.length);
        [segs[i], segs[j]] = [segs[j]!, segs[i]!];
      } else segs.splice(i, 0, { marker: rng.pick([0xdc, 0xdd, 0xc8, 0xf0, 0xfe, 0xe1, 0xee, 0xd8]), payload: rng.bytes(rng.smallInt(20)) });
      return { bytes: jpegOf(segs), how: `segment list edit ${r} at ${i}` };
    }
    case 4:
      return jpegBomb(rng);
    default: {
      const hot: number[] = [];
      for (let p = 0; p + 1 < seed.length; p++) if (seed[p] === 0xff && seed[p + 1] !== 0) hot.push(p + 2, p + 4);
      const r = havoc(rng, seed, hot);
      return { bytes: r.bytes, how: r.how };
    }
  }
}

function imageTarget(name: string, seeds: SeedFile[], mutate: (rng: Rng, seed: Uint8Array) => { bytes: Uint8Array; how: string }): FuzzTarget<ImageCase> {
  return {
    name,
    errorName: "ImageError",
    isTyped: (e) => e instanceof ImageError,
    run(c) {
      const t = preprocess(c.bytes, { size: c.size, maxPixels: c.maxPixels });
      if (t.data.length !== 3 * c.size * c.size || t.shape.join() !== `1,3,${c.size},${c.size}` || t.data.some((v) => !Number.isFinite(v))) {
        throw new Error(`oracle: preprocess returned shape [${t.shape.join(", ")}] with ${t.data.length} values`);
      }
      return t;
    },
    files: (c) => ({ [`case-size${c.size}${c.maxPixels ? `-max${c.maxPixels}` : ""}.${name === "png" ? "png" : "jpg"}`]: c.bytes }),
    generate(rng) {
      const seed = pickSeed(rng, seeds);
      const r = mutate(rng, seed.bytes);
      const c = imageCase(rng, r.bytes);
      return { input: c, how: `${seed.name}: ${r.how} → size ${c.size}${c.maxPixels ? ` maxPixels ${c.maxPixels}` : ""}` };
    },
  };
}

export const pngTarget = (): FuzzTarget<ImageCase> => imageTarget("png", seedFiles("test/golden/preprocess", /\.png$/, 16 * 1024), mutatePng);
export const jpegTarget = (): FuzzTarget<ImageCase> => imageTarget("jpeg", seedFiles("test/golden/preprocess", /\.jpe?g$/, 16 * 1024), mutateJpeg);

// ---------------------------------------------------------------- compression-amplified inputs

/** Bits into bytes, MSB first, with JPEG's 0x00 stuffing after every 0xff; the last byte is padded with ones. */
class BitWriter {
  private bytes: number[] = [];
  private acc = 0;
  private n = 0;
  put(value: number, bits: number): void {
    for (let i = bits - 1; i >= 0; i--) {
      this.acc = (this.acc << 1) | ((value >> i) & 1);
      if (++this.n === 8) this.flush();
    }
  }
  zeros(bits: number): void {
    while (bits > 0 && this.n > 0) this.put(0, 1), bits--;
    for (; bits >= 8; bits -= 8) this.bytes.push(0);
    this.put(0, bits);
  }
  private flush(): void {
    this.bytes.push(this.acc);
    if (this.acc === 0xff) this.bytes.push(0);
    this.acc = this.n = 0;
  }
  done(): Uint8Array {
    if (this.n > 0) this.put(0xff, 8 - this.n);
    return Uint8Array.from(this.bytes);
  }
}

export interface JpegBombOptions {
  /** Scans after the first (DC) one: AC scans that each walk a whole component in a few EOB-run symbols. */
  acScans: number;
  components?: 1 | 3;
  /** Successive-approximation refinement scans (Ah=1, Al=0): each visits every coefficient of the band. */
  refine?: boolean;
  /** Spectral band of the AC scans (default 1..63). */
  band?: [number, number];
  /** A DHT segment before every AC scan (so a decoder that builds its tables per definition rebuilds them). */
  dhtPerScan?: boolean;
  /** DRI value (restart interval in MCUs); RST markers are written accordingly. */
  restartInterval?: number;
}

/**
 * A valid progressive JPEG whose scans cost far more than their bytes: a first DC scan (one bit per block, as any
 * real file has), then AC scans that cover a whole component with EOB runs of 32 767 blocks, 15 bits each. A
 * 7000x7000 three-component file with 999 AC scans is 362 KB and made the decoder walk 765 M blocks.
 */
export function jpegScanBomb(width: number, height: number, o: JpegBombOptions): Uint8Array {
  const n = o.components ?? 3;
  const [ss, se] = o.band ?? [1, 63];
  const seg = (marker: number, payload: number[] | Uint8Array): Uint8Array => {
    const out = new Uint8Array(4 + payload.length);
    out.set([0xff, marker, (payload.length + 2) >> 8, (payload.length + 2) & 0xff]);
    out.set(payload, 4);
    return out;
  };
  const blocks = Math.ceil(width / 8) * Math.ceil(height / 8);
  const ri = o.restartInterval ?? 0;
  /** Entropy-coded data in restart intervals of ri MCUs (RSTn between them); `interval` codes one of `mcus` MCUs. */
  const coded = (interval: (w: BitWriter, mcus: number) => void): Uint8Array => {
    const parts: Uint8Array[] = [];
    const per = ri > 0 ? ri : blocks;
    for (let start = 0, k = 0; start < blocks; start += per, k++) {
      if (start > 0) parts.push(Uint8Array.of(0xff, 0xd0 + ((k - 1) & 7)));
      const w = new BitWriter();
      interval(w, Math.min(per, blocks - start));
      parts.push(w.done());
    }
    return concat(...parts);
  };
  // DC: one code "0" (category 0, a zero difference); AC: one code "0" = EOB14 (a run of 2^14 + 14 bits).
  const dht = concat(seg(0xc4, [0x00, 1, ...new Array(15).fill(0), 0x00]), seg(0xc4, [0x10, 1, ...new Array(15).fill(0), 0xe0]));
  const comps = Array.from({ length: n }, (_, i) => i + 1);
  const parts: Uint8Array[] = [
    Uint8Array.of(0xff, 0xd8),
    seg(0xdb, [0, ...new Array(64).fill(1)]),
    seg(0xc2, [8, height >> 8, height & 0xff, width >> 8, width & 0xff, n, ...comps.flatMap((id) => [id, 0x11, 0])]),
    dht,
  ];
  if (ri > 0) parts.push(seg(0xdd, [ri >> 8, ri & 0xff]));
  parts.push(seg(0xda, [n, ...comps.flatMap((id) => [id, 0x00]), 0, 0, o.refine ? 0x01 : 0x00]));
  parts.push(coded((w, mcus) => w.zeros(mcus * n))); // one "0" per block of every component
  // An EOB14 symbol with all ones covers 32 767 blocks from the current one; each restart interval needs its own.
  const ac = coded((w, mcus) => {
    for (let j = 0; j < mcus; j += 32767) w.put(0x3fff, 15);
  });
  for (let s = 0; s < o.acScans; s++) {
    if (o.dhtPerScan) parts.push(dht);
    parts.push(seg(0xda, [1, comps[s % n]!, 0x00, ss, se, o.refine ? 0x10 : 0x00]), ac);
  }
  parts.push(Uint8Array.of(0xff, 0xd9));
  return concat(...parts);
}

/**
 * Scan-amplified JPEGs (jpegScanBomb) of random size, scan count and kind. Images that would decode stay at most
 * 2000x2000 (a progressive 7000x7000 decode holds 770 MB, over the campaign's "heavy" mark); 7000x7000 ones come
 * with enough scans to be refused.
 */
function jpegBomb(rng: Rng): { bytes: Uint8Array; how: string } {
  const side = rng.pick([64, 500, 2000, 7000]);
  const acScans = side === 7000 ? rng.pick([40, 999, 1000, 3000]) : rng.pick([0, 1, 10, 100, 999, 1000, 1001]);
  const blocks = Math.ceil(side / 8) ** 2;
  const o: JpegBombOptions = {
    acScans,
    components: rng.pick([1, 3] as const),
    refine: rng.chance(0.3),
    dhtPerScan: rng.chance(0.2),
    // restart intervals multiply the bytes of every scan: only where that stays small
    restartInterval: blocks * (acScans + 1) < 2_000_000 && rng.chance(0.3) ? rng.pick([1, 7, 100]) : undefined,
  };
  if (rng.chance(0.3)) {
    const a = rng.range(1, 63);
    o.band = [a, rng.range(a, 63)];
  }
  return { bytes: jpegScanBomb(side, side, o), how: `bomb: ${side}x${side} ${JSON.stringify(o)}` };
}

/** An honest 8-bit grey (colour type 0) or RGB (2) PNG of black pixels, its scanlines deflated at level 9. */
export function blankPng(width: number, height: number, colour: 0 | 2 = 0): Uint8Array {
  const z = zerosZlib(height * (width * (colour === 2 ? 3 : 1) + 1));
  return pngOf([ihdr(width, height, 8, colour), { type: "IDAT", data: z }, { type: "IEND", data: new Uint8Array(0) }]);
}

/** Only the compression-amplified classes, for a short dedicated run (`test/fuzz.test.ts`). */
export const pngBombTarget = (): FuzzTarget<ImageCase> => ({ ...imageTarget("png", [{ name: "(none)", bytes: new Uint8Array(0) }], (rng) => pngBomb(rng)), name: "png-bomb" });
export const jpegBombTarget = (): FuzzTarget<ImageCase> => ({ ...imageTarget("jpeg", [{ name: "(none)", bytes: new Uint8Array(0) }], (rng) => jpegBomb(rng)), name: "jpeg-bomb" });
