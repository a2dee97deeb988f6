// Photo-like test images for the index bench on a clean clone: baseline JPEG (YCbCr 4:2:0, quality 85, Huffman
// tables made for each image as libjpeg's optimize_coding does) and RGB PNG, of a realistic size and file size.
// Only for timing: clip-ts itself never encodes images.
import { deflateSync } from "node:zlib";
import { crc32 } from "../src/crc32.js";
import { rng } from "./inputs.js";

/** Smooth gradients, waves and grain: ~2 bits per pixel as JPEG, like a photo. */
export function photoLike(width: number, height: number, seed: number): Uint8Array {
  const next = rng(seed);
  const rgb = new Uint8Array(width * height * 3);
  const [a, b, c] = [next() * 6, next() * 6, next() * 6];
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const u = x / width, v = y / height;
      const wave = 40 * Math.sin(x / (13 + 9 * a) + y / (17 + 5 * b)) * Math.cos(y / (29 + 7 * c));
      const base = [255 * u * (0.3 + 0.1 * a), 255 * v * (0.3 + 0.1 * b), 255 * (1 - u * v) * (0.3 + 0.1 * c)];
      for (let k = 0; k < 3; k++) {
        const grain = (next() - 0.5) * 24;
        rgb[(y * width + x) * 3 + k] = Math.max(0, Math.min(255, Math.round(base[k] + wave * (k === 1 ? -1 : 1) + grain + 40)));
      }
    }
  }
  return rgb;
}

function chunk(type: string, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(12 + data.length);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, data.length);
  out.set(new TextEncoder().encode(type), 4);
  out.set(data, 8);
  dv.setUint32(8 + data.length, crc32(out.subarray(4, 8 + data.length)));
  return out;
}

/** 8-bit RGB PNG, every row Paeth-filtered, zlib level 6. */
export function encodePng(rgb: Uint8Array, width: number, height: number): Uint8Array {
  const stride = width * 3;
  const raw = new Uint8Array((stride + 1) * height);
  for (let y = 0; y < height; y++) {
    raw[y * (stride + 1)] = 4;
    for (let i = 0; i < stride; i++) {
      const a = i >= 3 ? rgb[y * stride + i - 3] : 0;
      const b = y > 0 ? rgb[(y - 1) * stride + i] : 0;
      const c = i >= 3 && y > 0 ? rgb[(y - 1) * stride + i - 3] : 0;
      const p = a + b - c, pa = Math.abs(p - a), pb = Math.abs(p - b), pc = Math.abs(p - c);
      const pred = pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
      raw[y * (stride + 1) + 1 + i] = (rgb[y * stride + i] - pred) & 255;
    }
  }
  const ihdr = new Uint8Array(13);
  const dv = new DataView(ihdr.buffer);
  dv.setUint32(0, width);
  dv.setUint32(4, height);
  ihdr.set([8, 2, 0, 0, 0], 8);
  const parts = [Uint8Array.of(0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a), chunk("IHDR", ihdr), chunk("IDAT", deflateSync(raw, { level: 6 })), chunk("IEND", new Uint8Array(0))];
  return Buffer.concat(parts);
}

const LUMA_Q = [
  16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56, 14, 17, 22, 29, 51, 87, 80, 62,
  18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92, 49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99,
];
const CHROMA_Q = [
  17, 18, 24, 47, 99, 99, 99, 99, 18, 21, 26, 66, 99, 99, 99, 99, 24, 26, 56, 99, 99, 99, 99, 99, 47, 66, 99, 99, 99, 99, 99, 99,
  ...new Array(32).fill(99),
];

/** Natural index of each zigzag position. */
const ZIGZAG = (() => {
  const z: number[] = [];
  for (let s = 0; s < 15; s++) {
    const lo = Math.max(0, s - 7), hi = Math.min(s, 7);
    if (s % 2 === 0) for (let r = hi; r >= lo; r--) z.push(r * 8 + s - r);
    else for (let r = lo; r <= hi; r++) z.push(r * 8 + s - r);
  }
  return z;
})();
const ZIGZAG_POS = ZIGZAG.reduce((pos, k, i) => ((pos[k] = i), pos), new Array<number>(64));

const COS = Array.from({ length: 64 }, (_, i) => {
  const u = i >> 3, x = i & 7;
  return (u === 0 ? Math.SQRT1_2 : 1) / 2 * Math.cos(((2 * x + 1) * u * Math.PI) / 16);
});

/** Quantised coefficients of one 8x8 block (level-shifted samples), in zigzag order. */
function fdct(block: Float64Array, q: number[]): Int32Array {
  const tmp = new Float64Array(64), out = new Int32Array(64);
  for (let y = 0; y < 8; y++) for (let u = 0; u < 8; u++) {
    let s = 0;
    for (let x = 0; x < 8; x++) s += COS[u * 8 + x] * block[y * 8 + x];
    tmp[y * 8 + u] = s;
  }
  for (let v = 0; v < 8; v++) for (let u = 0; u < 8; u++) {
    let s = 0;
    for (let y = 0; y < 8; y++) s += COS[v * 8 + y] * tmp[y * 8 + u];
    const k = v * 8 + u;
    out[ZIGZAG_POS[k]] = Math.round(s / q[k]);
  }
  return out;
}

const category = (v: number) => (v === 0 ? 0 : 32 - Math.clz32(Math.abs(v)));

/** JPEG Annex K.2: code lengths limited to 16 from symbol counts; returns [bits[1..16], values]. */
function huffmanTable(counts: number[]): { bits: number[]; values: number[] } {
  const freq = [...counts, 1]; // a reserved symbol, so no code is all ones
  const size = new Array(257).fill(0), others = new Array(257).fill(-1);
  for (;;) {
    let c1 = -1, c2 = -1;
    for (let i = 0; i < 257; i++) if (freq[i] > 0 && (c1 < 0 || freq[i] <= freq[c1])) c1 = i;
    for (let i = 0; i < 257; i++) if (freq[i] > 0 && i !== c1 && (c2 < 0 || freq[i] <= freq[c2])) c2 = i;
    if (c2 < 0) break;
    freq[c1] += freq[c2];
    freq[c2] = 0;
    for (size[c1]++; others[c1] >= 0; size[c1]++) c1 = others[c1];
    others[c1] = c2;
    for (size[c2]++; others[c2] >= 0; size[c2]++) c2 = others[c2];
  }
  const bits = new Array(33).fill(0);
  for (let i = 0; i < 257; i++) if (size[i]) bits[size[i]]++;
  for (let i = 32; i > 16; i--) {
    while (bits[i] > 0) {
      let j = i - 2;
      while (bits[j] === 0) j--;
      bits[i] -= 2;
      bits[i - 1]++;
      bits[j + 1] += 2;
      bits[j]--;
    }
  }
  let i = 16;
  while (bits[i] === 0) i--;
  bits[i]--; // drop the reserved symbol's code
  const values: number[] = [];
  for (let len = 1; len <= 32; len++) for (let s = 0; s < 256; s++) if (size[s] === len) values.push(s);
  return { bits: bits.slice(1, 17), values };
}

function codes(t: { bits: number[]; values: number[] }): Map<number, [number, number]> {
  const m = new Map<number, [number, number]>();
  let code = 0, k = 0;
  for (let len = 1; len <= 16; len++) {
    for (let n = 0; n < t.bits[len - 1]; n++) m.set(t.values[k++], [code++, len]);
    code <<= 1;
  }
  return m;
}

/** Baseline JPEG, YCbCr 4:2:0, quality 85 (libjpeg's scaling of the Annex K tables). */
export function encodeJpeg(rgb: Uint8Array, width: number, height: number, quality = 85): Uint8Array {
  const scale = quality < 50 ? 5000 / quality : 200 - 2 * quality;
  const qt = (t: number[]) => t.map((v) => Math.max(1, Math.min(255, Math.floor((v * scale + 50) / 100))));
  const qY = qt(LUMA_Q), qC = qt(CHROMA_Q);
  const mw = Math.ceil(width / 16), mh = Math.ceil(height / 16);
  const plane = (k: number) => {
    const p = new Float64Array(mw * 16 * mh * 16);
    for (let y = 0; y < mh * 16; y++) for (let x = 0; x < mw * 16; x++) {
      const i = (Math.min(y, height - 1) * width + Math.min(x, width - 1)) * 3;
      const [r, g, b] = [rgb[i], rgb[i + 1], rgb[i + 2]];
      p[y * mw * 16 + x] = k === 0 ? 0.299 * r + 0.587 * g + 0.114 * b
        : k === 1 ? -0.168736 * r - 0.331264 * g + 0.5 * b + 128 : 0.5 * r - 0.418688 * g - 0.081312 * b + 128;
    }
    return p;
  };
  const [Y, Cb, Cr] = [plane(0), plane(1), plane(2)];
  const W = mw * 16;
  // blocks in scan order: per MCU four Y, one Cb, one Cr (chroma averaged over 2x2)
  const blocks: { comp: number; coef: Int32Array }[] = [];
  const block = new Float64Array(64);
  for (let my = 0; my < mh; my++) for (let mx = 0; mx < mw; mx++) {
    for (let b = 0; b < 4; b++) {
      const x0 = mx * 16 + (b & 1) * 8, y0 = my * 16 + (b >> 1) * 8;
      for (let i = 0; i < 64; i++) block[i] = Y[(y0 + (i >> 3)) * W + x0 + (i & 7)] - 128;
      blocks.push({ comp: 0, coef: fdct(block, qY) });
    }
    for (const [comp, P] of [[1, Cb], [2, Cr]] as const) {
      for (let i = 0; i < 64; i++) {
        const x = mx * 16 + (i & 7) * 2, y = my * 16 + (i >> 3) * 2;
        block[i] = (P[y * W + x] + P[y * W + x + 1] + P[(y + 1) * W + x] + P[(y + 1) * W + x + 1]) / 4 - 128;
      }
      blocks.push({ comp, coef: fdct(block, qC) });
    }
  }
  // symbols: DC differences per component, AC run/size with EOB (0x00) and ZRL (0xf0)
  type Sym = { table: number; sym: number; extra: number; n: number };
  const syms: Sym[] = [];
  const pred = [0, 0, 0];
  for (const { comp, coef } of blocks) {
    const t = comp === 0 ? 0 : 1;
    const diff = coef[0] - pred[comp];
    pred[comp] = coef[0];
    const s = category(diff);
    syms.push({ table: t * 2, sym: s, extra: diff < 0 ? diff + (1 << s) - 1 : diff, n: s });
    let run = 0;
    for (let k = 1; k < 64; k++) {
      const v = coef[k];
      if (v === 0) {
        run++;
        continue;
      }
      while (run > 15) {
        syms.push({ table: t * 2 + 1, sym: 0xf0, extra: 0, n: 0 });
        run -= 16;
      }
      const c = category(v);
      syms.push({ table: t * 2 + 1, sym: (run << 4) | c, extra: v < 0 ? v + (1 << c) - 1 : v, n: c });
      run = 0;
    }
    if (run > 0) syms.push({ table: t * 2 + 1, sym: 0, extra: 0, n: 0 });
  }
  const counts = [0, 1, 2, 3].map(() => new Array(256).fill(0));
  for (const s of syms) counts[s.table][s.sym]++;
  const tables = counts.map(huffmanTable);
  const maps = tables.map(codes);

  const out: number[] = [];
  const u16 = (v: number) => out.push(v >> 8, v & 255);
  const segment = (marker: number, body: number[]) => {
    out.push(0xff, marker);
    u16(body.length + 2);
    out.push(...body);
  };
  out.push(0xff, 0xd8);
  segment(0xe0, [0x4a, 0x46, 0x49, 0x46, 0, 1, 1, 0, 0, 1, 0, 1, 0, 0]);
  segment(0xdb, [0, ...ZIGZAG.map((k) => qY[k]), 1, ...ZIGZAG.map((k) => qC[k])]);
  segment(0xc0, [8, height >> 8, height & 255, width >> 8, width & 255, 3, 1, 0x22, 0, 2, 0x11, 1, 3, 0x11, 1]);
  const dht: number[] = [];
  [[0x00, 0], [0x10, 1], [0x01, 2], [0x11, 3]].forEach(([id, t]) => dht.push(id, ...tables[t].bits, ...tables[t].values));
  segment(0xc4, dht);
  segment(0xda, [3, 1, 0x00, 2, 0x11, 3, 0x11, 0, 63, 0]);
  let acc = 0, nbits = 0;
  const put = (value: number, n: number) => {
    for (let i = n - 1; i >= 0; i--) {
      acc = (acc << 1) | ((value >> i) & 1);
      if (++nbits === 8) {
        out.push(acc);
        if (acc === 0xff) out.push(0);
        acc = 0;
        nbits = 0;
      }
    }
  };
  for (const s of syms) {
    const [code, len] = maps[s.table].get(s.sym)!;
    put(code, len);
    put(s.extra, s.n);
  }
  if (nbits) put(0x7f, 8 - nbits); // pad with ones
  out.push(0xff, 0xd9);
  return Uint8Array.from(out);
}
