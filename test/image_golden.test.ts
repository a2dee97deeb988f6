// src/image against Pillow 9.4 + torchvision 0.14 goldens (tools/golden/make_preprocess_goldens.py).
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import {
  centerCrop,
  convertToRGB,
  decodeImage,
  preprocess,
  resizeImage,
  resizeShortSide,
  toTensorNormalize,
  type PixelImage,
  type RawImage,
} from "../src/image/index.js";
import { readNpy } from "../src/npy.js";

const DIR = join(import.meta.dirname, "golden", "preprocess");

interface Case {
  name: string;
  input: string;
  nPx: number;
  decoder: string;
  exact: boolean;
  mode: string;
  width: number;
  height: number;
  resized: [number, number];
  resizedMode: string;
  resizedSha256: string;
  cropSha256: string;
  tensorSha256: string;
  resizedNpy?: string;
  cropNpy?: string;
  tensorNpy?: string;
}

interface Meta {
  cases: Case[];
  rejectInputs: string[];
  resizeCases: { name: string; input: string; size: [number, number]; resultNpy: string }[];
  cropCases: { name: string; input: string; nPx: number; resultNpy: string }[];
}

const meta = JSON.parse(readFileSync(join(DIR, "cases.json"), "utf8")) as Meta;

function file(name: string): Uint8Array {
  const buf = readFileSync(join(DIR, name));
  return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
}

function npy(name: string): ArrayBufferView {
  return readNpy(file(name), name).data;
}

function bytesOf(v: ArrayBufferView): Uint8Array {
  return new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
}

function sha256(v: ArrayBufferView): string {
  return createHash("sha256").update(bytesOf(v)).digest("hex");
}

/** Number of differing elements, compared as raw integers (bit patterns for floats). */
function mismatches(actual: ArrayBufferView, expected: ArrayBufferView, elementBytes: number): number {
  const a = bytesOf(actual);
  const e = bytesOf(expected);
  if (a.length !== e.length) return Math.max(a.length, e.length) / elementBytes;
  const view = (b: Uint8Array) =>
    elementBytes === 4 ? new Uint32Array(b.slice().buffer) : b;
  const av = view(a);
  const ev = view(e);
  let n = 0;
  for (let i = 0; i < av.length; i++) if (av[i] !== ev[i]) n++;
  return n;
}

// Golden uint8 byte layout of an image in its Pillow mode ("I" as int32 little-endian).
const imageBytes = (img: PixelImage): ArrayBufferView => img.data;
const elementSize = (img: PixelImage) => (img.mode === "I" ? 4 : 1);

const table = npy("normalize_table.npy") as Float32Array; // [3, 16, 16]: channel c, value v at c*256 + v

function tensorFromTable(rgb: Uint8Array): Float32Array {
  const n = rgb.length / 3;
  const out = new Float32Array(3 * n);
  for (let c = 0; c < 3; c++) for (let i = 0; i < n; i++) out[c * n + i] = table[c * 256 + rgb[3 * i + c]];
  return out;
}

const summary: string[] = [];

describe("ToTensor + Normalize", () => {
  it("matches torch for every uint8 value in every channel (bit-exact)", () => {
    const rgb = new Uint8Array(256 * 3);
    for (let v = 0; v < 256; v++) rgb.fill(v, 3 * v, 3 * v + 3);
    const t = toTensorNormalize(rgb, 16, 16);
    expect(mismatches(t, table, 4)).toBe(0);
  });
});

describe("exact pipeline vs Pillow/torchvision", () => {
  const exact = meta.cases.filter((c) => c.exact);
  it("covers many modes, decoders, sizes and crop sizes", () => {
    expect(exact.length).toBeGreaterThanOrEqual(60);
    expect(new Set(exact.map((c) => c.mode))).toEqual(new Set(["RGB", "RGBA", "LA", "L", "1", "I", "P", "CMYK"]));
    expect(new Set(exact.map((c) => c.decoder))).toEqual(new Set(["png", "jpeg"]));
    expect(new Set(exact.map((c) => c.nPx))).toEqual(new Set([32, 64, 224, 336]));
  });

  it.each(exact.map((c) => [c.name, c] as const))("%s", (_name, c) => {
    const img = decodeImage(file(c.input));
    expect([img.mode, img.width, img.height, img.decoder, img.exact]).toEqual([c.mode, c.width, c.height, c.decoder, true]);

    const resized = resizeShortSide(img, c.nPx);
    expect([resized.width, resized.height, resized.mode]).toEqual([...c.resized, c.resizedMode]);
    const resizedMismatch = c.resizedNpy ? mismatches(imageBytes(resized), npy(c.resizedNpy), elementSize(resized)) : 0;
    expect(resizedMismatch).toBe(0);
    expect(sha256(imageBytes(resized))).toBe(c.resizedSha256);

    const rgb = convertToRGB(centerCrop(resized, c.nPx));
    const cropMismatch = c.cropNpy ? mismatches(rgb, npy(c.cropNpy), 1) : 0;
    expect(cropMismatch).toBe(0);
    expect(sha256(rgb)).toBe(c.cropSha256);

    const out = preprocess(file(c.input), { size: c.nPx });
    expect(out.shape).toEqual([1, 3, c.nPx, c.nPx]);
    expect([out.decoder, out.exact]).toEqual([c.decoder, true]);
    const expected = c.tensorNpy ? (npy(c.tensorNpy) as Float32Array) : tensorFromTable(rgb);
    const tensorMismatch = mismatches(out.data, expected, 4);
    expect(tensorMismatch).toBe(0);
    expect(sha256(out.data)).toBe(c.tensorSha256);
    summary.push(
      `${c.name}: ${c.mode} ${c.width}x${c.height} → ${c.resized.join("x")} → ${c.nPx}²; mismatches resized ${c.resizedNpy ? resizedMismatch : "(sha256 only) 0"}, crop ${c.cropNpy ? cropMismatch : "(sha256 only) 0"}, tensor bits ${tensorMismatch}`,
    );
  });

  it("prints the per-case mismatch counts", () => {
    console.log(`preprocess goldens (${summary.length} exact cases):\n  ${summary.join("\n  ")}`);
    expect(summary.length).toBe(exact.length);
  });
});

describe("Pillow resize and torchvision CenterCrop on their own", () => {
  it.each(meta.resizeCases.map((c) => [c.name, c] as const))("%s", (_name, c) => {
    const out = resizeImage(decodeImage(file(c.input)), c.size[0], c.size[1]);
    expect(mismatches(imageBytes(out), npy(c.resultNpy), elementSize(out))).toBe(0);
  });

  it.each(meta.cropCases.map((c) => [c.name, c] as const))("%s", (_name, c) => {
    const out = centerCrop(decodeImage(file(c.input)), c.nPx);
    expect([out.width, out.height]).toEqual([c.nPx, c.nPx]);
    expect(mismatches(imageBytes(out), npy(c.resultNpy), elementSize(out))).toBe(0);
  });
});

describe("raw pixel input", () => {
  const channelsOf: Record<string, RawImage["channels"]> = { L: 1, LA: 2, RGB: 3, RGBA: 4 };
  const rawCases = meta.cases.filter((c) => c.exact && c.mode in channelsOf && c.width * c.height < 300_000);
  it.each(rawCases.map((c) => [c.name, c] as const))("%s as RawImage gives the same tensor", (_name, c) => {
    const img = decodeImage(file(c.input));
    const raw: RawImage = { data: img.data as Uint8Array, width: img.width, height: img.height, channels: channelsOf[c.mode] };
    const out = preprocess(raw, { size: c.nPx });
    expect([out.decoder, out.exact]).toEqual(["raw", true]);
    expect(sha256(out.data)).toBe(c.tensorSha256);
  });

  it("accepts a canvas-style Uint8ClampedArray", () => {
    const c = meta.cases.find((k) => k.name === "rgba_150x90_n64")!;
    const img = decodeImage(file(c.input));
    const data = new Uint8ClampedArray(img.data as Uint8Array);
    expect(sha256(preprocess({ data, width: img.width, height: img.height, channels: 4 }, { size: 64 }).data)).toBe(
      c.tensorSha256,
    );
  });
});

describe("JPEG that libjpeg-turbo would block-smooth (exact: false, tolerance)", () => {
  const inexact = meta.cases.filter((c) => !c.exact);
  it("exists in the goldens", () => expect(inexact.length).toBeGreaterThan(0));
  it.each(inexact.map((c) => [c.name, c] as const))("%s", (_name, c) => {
    const img = decodeImage(file(c.input));
    expect([img.mode, img.width, img.height, img.decoder, img.exact]).toEqual([c.mode, c.width, c.height, "jpeg", false]);
    const rgb = convertToRGB(centerCrop(resizeShortSide(img, c.nPx), c.nPx));
    const ref = bytesOf(npy(c.cropNpy!));
    let maxLevels = 0;
    let sum = 0;
    for (let i = 0; i < rgb.length; i++) {
      const d = Math.abs(rgb[i] - ref[i]);
      maxLevels = Math.max(maxLevels, d);
      sum += d;
    }
    const out = preprocess(file(c.input), { size: c.nPx });
    expect([out.decoder, out.exact]).toEqual(["jpeg", false]);
    const refT = npy(c.tensorNpy!) as Float32Array;
    let maxT = 0;
    for (let i = 0; i < refT.length; i++) maxT = Math.max(maxT, Math.abs(out.data[i] - refT[i]));
    console.log(
      `${c.name}: after resize+crop max |Δ| = ${maxLevels} levels, mean ${(sum / rgb.length).toFixed(3)}; tensor max |Δ| = ${maxT.toFixed(4)}`,
    );
    expect(maxLevels).toBeGreaterThan(0); // otherwise the case would not exercise smoothing
    expect(maxLevels).toBeLessThanOrEqual(24);
    expect(sum / rgb.length).toBeLessThan(2);
  });
});
