// Malformed, truncated, oversized and hostile inputs: always an ImageError (or, where Pillow would accept the file,
// the same pixels as the intact file), never another exception, never a hang.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { deflateSync } from "node:zlib";
import fc from "fast-check";
import { zlibSync } from "fflate";
import { describe, expect, it } from "vitest";
import { decodeImage, fromRaw, ImageError, preprocess, type DecodedImage } from "../src/image/index.js";
import { crc32 } from "../src/crc32.js";

const DIR = join(import.meta.dirname, "golden", "preprocess");
const file = (name: string) => new Uint8Array(readFileSync(join(DIR, name)));


function chunk(type: string, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(12 + data.length);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, data.length);
  for (let i = 0; i < 4; i++) out[4 + i] = type.charCodeAt(i);
  out.set(data, 8);
  dv.setUint32(8 + data.length, crc32(out.subarray(4, 8 + data.length)));
  return out;
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((s, p) => s + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

const SIG = new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

function ihdr(w: number, h: number, depth = 8, colorType = 0, interlace = 0): Uint8Array {
  const d = new Uint8Array(13);
  const dv = new DataView(d.buffer);
  dv.setUint32(0, w);
  dv.setUint32(4, h);
  d.set([depth, colorType, 0, 0, interlace], 8);
  return chunk("IHDR", d);
}

/** A grey 8-bit PNG whose scanlines (filter byte included) are given. */
function greyPng(w: number, h: number, scanlines: Uint8Array, extra: Uint8Array[] = []): Uint8Array {
  return concat(SIG, ihdr(w, h), ...extra, chunk("IDAT", zlibSync(scanlines)), chunk("IEND", new Uint8Array(0)));
}

/** Chunk list of a PNG: [type, offset of the length field, offset just past the CRC]. */
function chunks(png: Uint8Array): [string, number, number][] {
  const out: [string, number, number][] = [];
  const dv = new DataView(png.buffer, png.byteOffset, png.byteLength);
  for (let p = 8; p + 12 <= png.length; ) {
    const len = dv.getUint32(p);
    const type = String.fromCharCode(...png.subarray(p + 4, p + 8));
    out.push([type, p, p + 12 + len]);
    p += 12 + len;
  }
  return out;
}

/** Runs decode, returning the image or the ImageError; anything else thrown fails the test. */
function attempt(bytes: Uint8Array, maxPixels?: number): DecodedImage | ImageError {
  try {
    return decodeImage(bytes, { maxPixels });
  } catch (e) {
    if (e instanceof ImageError) return e;
    throw new Error(`non-ImageError thrown: ${(e as Error)?.stack ?? e}`);
  }
}

function sameImage(a: DecodedImage, b: DecodedImage): boolean {
  if (a.mode !== b.mode || a.width !== b.width || a.height !== b.height || a.data.length !== b.data.length) return false;
  for (let i = 0; i < a.data.length; i++) if (a.data[i] !== b.data[i]) return false;
  return true;
}

const SMALL_PNGS = ["l1_9x5_adam7_n32.png", "rgb_2x3.png", "rgb_1x1.png", "p1_64x40_n32.png"];
const LARGER_PNGS = ["la16_90x60_n32.png", "rgba_150x90_n64.png", "p4_150x97_adam7_n64.png", "l16_full_80x70_adam7_n32.png"];
const JPEGS = ["jpeg_420_4x4_n32.jpg", "jpeg_grey_prog_77x130_n32.jpg", "cjpeg_420_restart_3mcu_prog_90x70_n64.jpg", "jpeg_q5_120x90_n32.jpg"];

describe("PNG truncation", () => {
  // Pillow accepts a file that stops anywhere after the image data is complete; before that it must fail.
  it.each(SMALL_PNGS)("%s: every cut point", (name) => {
    const full = file(name);
    const ref = decodeImage(full);
    const lastIdat = chunks(full).filter(([t]) => t === "IDAT").pop()!;
    let firstOk = -1;
    for (let cut = 0; cut < full.length; cut++) {
      const r = attempt(full.subarray(0, cut));
      if (r instanceof ImageError) {
        expect(firstOk, `cut ${cut} fails after cut ${firstOk} succeeded`).toBe(-1);
      } else {
        if (firstOk < 0) firstOk = cut;
        expect(sameImage(r, ref)).toBe(true);
      }
    }
    expect(firstOk).toBeGreaterThan(lastIdat[1]);
    expect(firstOk).toBeLessThanOrEqual(lastIdat[2]);
  });

  it.each(LARGER_PNGS)("%s: random cut points", (name) => {
    const full = file(name);
    const ref = decodeImage(full);
    const idats = chunks(full).filter(([t]) => t === "IDAT");
    fc.assert(
      fc.property(fc.integer({ min: 0, max: full.length - 1 }), (cut) => {
        const r = attempt(full.subarray(0, cut));
        if (cut <= idats[0][1]) expect(r).toBeInstanceOf(ImageError);
        if (!(r instanceof ImageError)) expect(sameImage(r, ref)).toBe(true);
        if (cut >= idats[idats.length - 1][2]) expect(r).not.toBeInstanceOf(ImageError);
      }),
      { numRuns: 150, seed: 7 },
    );
  });

  it("names the problem", () => {
    const full = file("rgb_2x3.png");
    const idat = chunks(full).find(([t]) => t === "IDAT")!;
    expect(() => decodeImage(full.subarray(0, idat[1] + 10))).toThrow(/chunk IDAT at offset \d+ declares \d+ data bytes/);
    expect(() => decodeImage(full.subarray(0, 20))).toThrow(/truncated chunk header|declares/);
    expect(() => decodeImage(full.subarray(0, 5))).toThrow(ImageError);
  });
});

describe("PNG corruption", () => {
  it("rejects CRC mismatches in critical chunks and ignores ancillary ones", () => {
    const full = file("rgb_land_97x61_n32.png");
    const ref = decodeImage(full);
    for (const [type, start] of chunks(full)) {
      const bad = full.slice();
      bad[start + 8] ^= 0x01; // first data byte (or the CRC of an empty chunk)
      const r = attempt(bad);
      if (type === "tEXt") expect(r instanceof ImageError ? r : sameImage(r, ref)).toBe(true);
      else if (type !== "IEND") expect(String(r)).toMatch(new RegExp(`CRC mismatch in ${type} chunk`));
    }
  });

  it("rejects impossible chunk lengths", () => {
    const full = file("rgb_2x3.png");
    const idat = chunks(full).find(([t]) => t === "IDAT")!;
    for (const len of [0x80000000, 0xffffffff, full.length]) {
      const bad = full.slice();
      new DataView(bad.buffer).setUint32(idat[1], len);
      expect(() => decodeImage(bad)).toThrow(/chunk IDAT at offset \d+ declares \d+ data bytes/);
    }
  });

  it("rejects bad headers", () => {
    const end = chunk("IEND", new Uint8Array(0));
    const data = chunk("IDAT", zlibSync(new Uint8Array(2)));
    const cases: [Uint8Array, RegExp][] = [
      [concat(SIG, ihdr(1, 1, 3, 0), data, end), /bit depth 3 is not allowed for colour type 0/],
      [concat(SIG, ihdr(1, 1, 8, 5), data, end), /invalid colour type 5/],
      [concat(SIG, ihdr(1, 1, 16, 3), data, end), /bit depth 16 is not allowed for colour type 3/],
      [concat(SIG, ihdr(1, 1, 8, 0, 2), data, end), /unknown interlace method 2/],
      [concat(SIG, ihdr(0, 1), data, end), /invalid image size 0x1/],
      [concat(SIG, data, end), /first chunk is IDAT, expected IHDR/],
      [concat(SIG, ihdr(1, 1, 8, 3), data, end), /palette image without a PLTE chunk/],
      [concat(SIG, ihdr(1, 1, 8, 3), chunk("PLTE", new Uint8Array(4)), data, end), /PLTE chunk has length 4/],
      [concat(SIG, ihdr(1, 1), end), /no IDAT chunk/],
      [concat(SIG, ihdr(1, 1)), /no IDAT chunk/],
      [concat(SIG, ihdr(1, 1), chunk("ID!T", new Uint8Array(1)), end), /invalid chunk type/],
      [SIG, /file ends before the IHDR chunk/],
    ];
    for (const [bytes, message] of cases) expect(() => decodeImage(bytes)).toThrow(message);
  });

  it("rejects invalid filter types, short and corrupt zlib data", () => {
    expect(() => decodeImage(greyPng(2, 1, new Uint8Array([5, 1, 2])))).toThrow(/invalid filter type 5/);
    expect(() => decodeImage(greyPng(2, 2, new Uint8Array([0, 1, 2])))).toThrow(/image data ends early/);
    const corrupt = concat(SIG, ihdr(4, 4), chunk("IDAT", new Uint8Array([0x78, 0x9c, 0xff, 0xff, 0xff, 0xff])), chunk("IEND", new Uint8Array(0)));
    expect(() => decodeImage(corrupt)).toThrow(/corrupt image data/);
    const badHeader = concat(SIG, ihdr(4, 4), chunk("IDAT", new Uint8Array([0x12, 0x34, 0, 0, 0, 0])), chunk("IEND", new Uint8Array(0)));
    expect(() => decodeImage(badHeader)).toThrow(/corrupt image data .*zlib/);
  });

  it("accepts what Pillow accepts: missing IEND, extra zlib data, split and empty IDAT chunks", () => {
    const lines = new Uint8Array([0, 10, 20, 2, 5, 5]);
    const ref = decodeImage(greyPng(2, 2, lines));
    expect(Array.from(ref.data)).toEqual([10, 20, 15, 25]);
    const noEnd = concat(SIG, ihdr(2, 2), chunk("IDAT", zlibSync(lines)));
    expect(sameImage(decodeImage(noEnd), ref)).toBe(true);
    const extra = greyPng(2, 2, concat(lines, new Uint8Array(1000)));
    expect(sameImage(decodeImage(extra), ref)).toBe(true);
    const z = zlibSync(lines);
    const split = concat(SIG, ihdr(2, 2), ...Array.from(z, (v) => chunk("IDAT", new Uint8Array([v]))), chunk("IDAT", new Uint8Array(0)), chunk("IEND", new Uint8Array(0)));
    expect(sameImage(decodeImage(split), ref)).toBe(true);
  });

  it("stops inflating a deflate bomb once the image is full", () => {
    const zeros = new Uint8Array(deflateSync(new Uint8Array(100_000_000), { level: 9 })); // 100 MB in ~100 KB
    const bomb = concat(SIG, ihdr(64, 64), chunk("IDAT", zeros), chunk("IEND", new Uint8Array(0)));
    const t0 = performance.now();
    const img = decodeImage(bomb);
    expect(img.data.every((v) => v === 0)).toBe(true);
    expect(performance.now() - t0).toBeLessThan(2000);
  });

  it("refuses declared sizes over maxPixels before allocating", () => {
    const huge = concat(SIG, ihdr(100_000, 100_000, 16, 6), chunk("IDAT", zlibSync(new Uint8Array(10))), chunk("IEND", new Uint8Array(0)));
    expect(() => decodeImage(huge)).toThrow(
      "PNG: image is 100000x100000 = 10000000000 pixels, more than the limit of 50000000 (maxPixels)",
    );
    // With no pixel limit the file is still too small to hold that many scanlines: refused without allocating.
    expect(() => decodeImage(huge, { maxPixels: Infinity })).toThrow(/more than the \d+ remaining file bytes can hold/);
    const real = file("rgb_land_97x61_n32.png");
    expect(() => decodeImage(real, { maxPixels: 97 * 61 - 1 })).toThrow(/97x61 = 5917 pixels, more than the limit of 5916/);
    expect(decodeImage(real, { maxPixels: 97 * 61 }).width).toBe(97);
    expect(() => preprocess(real, { maxPixels: 100 })).toThrow(/maxPixels/);
  });

  it("random bytes are refused", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
        expect(attempt(bytes)).toBeInstanceOf(ImageError);
        expect(attempt(concat(SIG, bytes))).toBeInstanceOf(ImageError);
      }),
      { numRuns: 300, seed: 11 },
    );
  });

  it("random chunk soups with valid CRCs are decoded or refused", () => {
    const types = ["IHDR", "PLTE", "IDAT", "IEND", "tRNS", "tEXt"];
    const soup = fc.array(fc.tuple(fc.constantFrom(...types), fc.uint8Array({ maxLength: 40 })), { maxLength: 8 });
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 40 }), fc.integer({ min: 1, max: 40 }), fc.constantFrom(0, 2, 3, 4, 6), soup, (w, h, ct, parts) => {
        const depth = ct === 3 ? 4 : 8;
        attempt(concat(SIG, ihdr(w, h, depth, ct), ...parts.map(([t, d]) => chunk(t, t === "IDAT" ? zlibSync(d) : d))));
      }),
      { numRuns: 300, seed: 12 },
    );
  });

  it.each([...SMALL_PNGS, ...LARGER_PNGS])("%s: mutated bytes (CRCs repaired) are decoded or refused", (name) => {
    const full = file(name);
    const list = chunks(full);
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.nat(), fc.integer({ min: 1, max: 255 })), { minLength: 1, maxLength: 4 }), (edits) => {
        const bad = full.slice();
        for (const [at, x] of edits) bad[8 + (at % (full.length - 8))] ^= x;
        const dv = new DataView(bad.buffer);
        for (const [, start, end] of list) dv.setUint32(end - 4, crc32(bad.subarray(start + 4, end - 4)));
        attempt(bad);
      }),
      { numRuns: 60, seed: 13 },
    );
  });
});

describe("JPEG corruption", () => {
  it.each(JPEGS)("%s: cut points are refused (every one near the end, ~300 spread over the rest)", (name) => {
    const full = file(name);
    const step = Math.ceil(full.length / 300);
    for (let cut = 0; cut < full.length; cut += cut >= full.length - 64 ? 1 : step) {
      expect(attempt(full.subarray(0, cut))).toBeInstanceOf(ImageError);
    }
    expect(attempt(full)).not.toBeInstanceOf(ImageError);
  });

  it.each(JPEGS)("%s: mutated bytes are decoded or refused", (name) => {
    const full = file(name);
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.nat(), fc.integer({ min: 1, max: 255 })), { minLength: 1, maxLength: 4 }), (edits) => {
        const bad = full.slice();
        for (const [at, x] of edits) bad[2 + (at % (full.length - 2))] ^= x;
        attempt(bad);
      }),
      { numRuns: 150, seed: 14 },
    );
  });

  it("refuses unsupported coding and declared sizes over maxPixels", () => {
    const meta = JSON.parse(readFileSync(join(DIR, "cases.json"), "utf8")) as { rejectInputs: string[] };
    for (const name of meta.rejectInputs) expect(() => decodeImage(file(name))).toThrow(/arithmetic/);
    const jpg = file("jpeg_420_160x120_n64.jpg");
    const sof = jpg.findIndex((v, i) => v === 0xff && jpg[i + 1] === 0xc0);
    const big = jpg.slice();
    big.set([0xff, 0xff, 0xff, 0xff], sof + 5); // 65535 x 65535
    expect(() => decodeImage(big)).toThrow("JPEG: image is 65535x65535 = 4294836225 pixels, more than the limit of 50000000 (maxPixels)");
    expect(() => decodeImage(big, { maxPixels: Infinity })).toThrow(/cannot fit in the \d+ remaining bytes/);
    const twelveBit = jpg.slice();
    twelveBit[sof + 4] = 12;
    expect(() => decodeImage(twelveBit)).toThrow(/12-bit samples are not supported/);
    expect(() => decodeImage(new Uint8Array([0xff, 0xd8, 0xff, 0xd9]))).toThrow(/end of image before any frame header/);
    expect(() => decodeImage(new Uint8Array([0xff, 0xd8, 0xff]))).toThrow(/truncated/);
  });
});

describe("raw input and options", () => {
  it("checks raw pixel buffers", () => {
    expect(() => fromRaw({ data: new Uint8Array(12), width: 2, height: 2, channels: 5 as 3 })).toThrow(/channels must be 1, 2, 3 or 4/);
    expect(() => fromRaw({ data: new Uint8Array(11), width: 2, height: 2, channels: 3 })).toThrow(/needs 12 bytes, data has 11/);
    expect(() => fromRaw({ data: new Uint8Array(0), width: 0, height: 2, channels: 3 })).toThrow(/invalid image size 0x2/);
    expect(() => preprocess({ data: new Uint8Array(12), width: 2, height: 2, channels: 3 }, { maxPixels: 3 })).toThrow(/maxPixels/);
    expect(() => preprocess({ data: new Uint8Array(12), width: 2, height: 2, channels: 3 }, { size: 0 })).toThrow(/invalid output size 0/);
    expect(() => preprocess({ data: new Uint8Array(12), width: 2, height: 2, channels: 3 }, { size: 2.5 })).toThrow(ImageError);
  });
});

describe("input types (what preprocess and decodeImage accept, and what they name when refusing)", () => {
  const png = file("rgb_2x3.png");

  it("takes PNG/JPEG bytes as a Uint8Array, a Buffer or an ArrayBuffer, with the same result", () => {
    const ref = preprocess(png, { size: 8 });
    const copy = png.slice();
    for (const input of [Buffer.from(png), copy.buffer]) expect(preprocess(input, { size: 8 }).data).toEqual(ref.data);
    expect(decodeImage(copy.buffer).data).toEqual(decodeImage(png).data);
    // only the view's own bytes, not the whole buffer behind it
    const padded = new Uint8Array(png.length + 10);
    padded.set(png, 5);
    expect(preprocess(padded.subarray(5, 5 + png.length), { size: 8 }).data).toEqual(ref.data);
  });

  const accepted = /^preprocess: expected PNG\/JPEG bytes \(a Uint8Array, Buffer or ArrayBuffer\) or raw pixels \{ width, height, channels, data \}, got /;
  it.each([
    ["a string", "photo.png", /got a string \("photo.png"\)$/],
    ["null", null, /got null$/],
    ["undefined", undefined, /got undefined$/],
    ["a number", 42, /got number 42$/],
    ["a Float32Array", new Float32Array(4), /got a Float32Array$/],
    ["a Uint16Array", new Uint16Array(4), /got a Uint16Array$/],
    ["a Uint8ClampedArray (canvas pixels without their size)", new Uint8ClampedArray(16), /got a Uint8ClampedArray$/],
    ["a DataView", new DataView(new ArrayBuffer(4)), /got a DataView$/],
    ["an object without data", { width: 2, height: 2 }, /got a plain object$/],
  ])("refuses %s with one line naming the accepted types", (_, input, got) => {
    const run = () => preprocess(input as unknown as Uint8Array);
    expect(run).toThrow(ImageError);
    expect(run).toThrow(accepted);
    expect(run).toThrow(got);
    expect(() => decodeImage(input as unknown as Uint8Array)).toThrow(/^expected PNG or JPEG bytes as a Uint8Array, Buffer or ArrayBuffer, got /);
  });

  it.each([
    ["data too short", { data: new Uint8Array(11), width: 2, height: 2, channels: 3 }, "raw image: 2x2x3 needs 12 bytes, data has 11"],
    ["NaN width", { data: new Uint8Array(12), width: NaN, height: 2, channels: 3 }, "raw image: invalid image size NaNx2"],
    ["width as a string", { data: new Uint8Array(12), width: "2", height: 2, channels: 3 }, 'raw image: width and height must be numbers, got a string ("2") and number 2'],
    ["channels as a string", { data: new Uint8Array(12), width: 2, height: 2, channels: "3" }, 'raw image: channels must be 1, 2, 3 or 4, got a string ("3")'],
    ["no channels (an ImageData)", { data: new Uint8ClampedArray(16), width: 2, height: 2 }, "raw image: channels must be 1, 2, 3 or 4, got undefined"],
    ["float pixels", { data: new Float32Array(12), width: 2, height: 2, channels: 3 }, "raw image: data must be a Uint8Array or Uint8ClampedArray, got a Float32Array"],
    ["data missing", { data: undefined, width: 2, height: 2, channels: 3 }, "raw image: data must be a Uint8Array or Uint8ClampedArray, got undefined"],
  ])("a raw image with %s: one line naming the field", (_, raw, message) => {
    expect(() => preprocess(raw as unknown as Uint8Array)).toThrow(ImageError);
    expect(() => preprocess(raw as unknown as Uint8Array)).toThrow(message);
  });
});

describe("limit options", () => {
  const png = file("rgb_2x3.png");
  const raw = { data: new Uint8Array(12), width: 2, height: 2, channels: 3 as const };
  it.each([NaN, -1, 0, 1.5, "100", null, -Infinity])("maxPixels / maxJpegScanWork = %s is refused, not a limit turned off", (v) => {
    for (const name of ["maxPixels", "maxJpegScanWork"]) {
      const options = { [name]: v } as Record<string, number>;
      for (const run of [() => preprocess(png, options), () => decodeImage(png, options), () => preprocess(raw, options), () => fromRaw(raw, options)]) {
        expect(run).toThrow(ImageError);
        expect(run).toThrow(new RegExp(`^invalid option ${name}: .*; expected a positive integer \\(or Infinity for no limit\\)$`));
      }
    }
  });

  it("positive integers and Infinity are limits; a too small one still refuses by name", () => {
    expect(preprocess(png, { size: 8, maxPixels: 6, maxJpegScanWork: Infinity }).shape).toEqual([1, 3, 8, 8]);
    expect(preprocess(png, { size: 8, maxPixels: Infinity }).shape).toEqual([1, 3, 8, 8]);
    expect(() => preprocess(png, { maxPixels: 5 })).toThrow("PNG: image is 2x3 = 6 pixels, more than the limit of 5 (maxPixels)");
    expect(() => preprocess(png, { size: NaN })).toThrow("invalid output size NaN (option size); expected a positive integer");
    expect(() => preprocess(png, { size: "224" as unknown as number })).toThrow('invalid output size a string ("224") (option size)');
  });
});
