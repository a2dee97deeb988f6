// The pieces of the pipeline on their own: torchvision's size rule, Pillow resize invariants, CenterCrop padding,
// the Node file helper, and that the core stays browser-safe.
import { createHash } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  centerCrop,
  convertToRGB,
  ImageError,
  resizeBicubic,
  resizedSize,
  resizeImage,
  resizeNearest,
  toTensorNormalize,
  type PixelImage,
} from "../src/image/index.js";
import { preprocessFile } from "../src/image/node.js";

const DIR = join(import.meta.dirname, "golden", "preprocess");
const meta = JSON.parse(readFileSync(join(DIR, "cases.json"), "utf8")) as {
  sizeCases: [number, number, number, number, number][];
  cases: { name: string; input: string; nPx: number; tensorSha256: string }[];
};

describe("resizedSize (torchvision _compute_resized_output_size)", () => {
  it(`matches torchvision on ${meta.sizeCases.length} random shapes`, () => {
    const wrong = meta.sizeCases.filter(([w, h, n, nw, nh]) => resizedSize(w, h, n).join() !== [nw, nh].join());
    expect(wrong).toEqual([]);
  });
  it("keeps the short side at the requested size", () => {
    expect(resizedSize(640, 480, 224)).toEqual([298, 224]);
    expect(resizedSize(480, 640, 224)).toEqual([224, 298]);
    expect(resizedSize(7, 7, 224)).toEqual([224, 224]);
  });
});

describe("Pillow resize invariants", () => {
  it("bicubic keeps a constant image constant (weights are normalised)", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 60 }),
        fc.integer({ min: 1, max: 60 }),
        fc.integer({ min: 1, max: 90 }),
        fc.integer({ min: 1, max: 90 }),
        fc.integer({ min: 1, max: 4 }),
        fc.integer({ min: 0, max: 255 }),
        (w, h, ow, oh, bands, v) => {
          const out = resizeBicubic(new Uint8Array(w * h * bands).fill(v), w, h, bands, ow, oh);
          expect(out.length).toBe(ow * oh * bands);
          expect(out.every((x) => x === v)).toBe(true);
        },
      ),
      { numRuns: 200, seed: 3 },
    );
  });

  it("nearest replicates pixels for integer upscales", () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 1, maxLength: 30 }), fc.integer({ min: 1, max: 5 }), (row, k) => {
        const out = resizeNearest(row, row.length, 1, 1, row.length * k, k);
        for (let y = 0; y < k; y++) for (let x = 0; x < row.length * k; x++) expect(out[y * row.length * k + x]).toBe(row[Math.floor(x / k)]);
      }),
      { numRuns: 100, seed: 4 },
    );
  });

  it("returns a copy for an unchanged size and refuses empty targets", () => {
    const img: PixelImage = { mode: "RGB", width: 2, height: 1, data: new Uint8Array([1, 2, 3, 4, 5, 6]) };
    const same = resizeImage(img, 2, 1);
    expect(same.data).toEqual(img.data);
    expect(same.data).not.toBe(img.data);
    expect(() => resizeImage(img, 0, 5)).toThrow(ImageError);
    expect(() => resizeBicubic(img.data as Uint8Array, 2, 1, 3, 3, 0)).toThrow(/invalid target size 3x0/);
  });
});

describe("CenterCrop padding (torchvision pads with zeros, floor half before)", () => {
  it("pads a 1x1 image into the middle of a 4x3 crop area", () => {
    const img: PixelImage = { mode: "L", width: 1, height: 1, data: new Uint8Array([9]) };
    const out = centerCrop(img, 4);
    // left pad (4-1)//2 = 1, top pad 1.
    expect(Array.from(out.data)).toEqual([0, 0, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
  });
  it("keeps the palette of P images and pads with index 0", () => {
    const palette = new Uint8Array(768).fill(7);
    const img: PixelImage = { mode: "P", width: 1, height: 2, data: new Uint8Array([3, 4]), palette };
    const out = centerCrop(img, 3);
    expect(out.mode === "P" && out.palette).toBe(palette);
    expect(Array.from(out.data)).toEqual([0, 3, 0, 0, 4, 0, 0, 0, 0]);
    expect(Array.from(convertToRGB(out).subarray(0, 6))).toEqual([7, 7, 7, 7, 7, 7]);
  });
});

describe("toTensorNormalize", () => {
  it("refuses a buffer of the wrong size", () => {
    expect(() => toTensorNormalize(new Uint8Array(11), 2, 2)).toThrow(/11 bytes is not 2x2x3/);
  });
});

describe("Node helper and browser safety", () => {
  it("preprocessFile reads a file and matches the golden tensor", async () => {
    const c = meta.cases.find((k) => k.name === "jpeg_420_160x120_n64")!;
    const out = await preprocessFile(join(DIR, c.input), { size: c.nPx });
    expect(createHash("sha256").update(new Uint8Array(out.data.buffer)).digest("hex")).toBe(c.tensorSha256);
  });
  it("only node.ts imports Node built-ins", () => {
    const src = join(import.meta.dirname, "..", "src", "image");
    const offenders = readdirSync(src)
      .filter((f) => f.endsWith(".ts") && f !== "node.ts")
      .filter((f) => /from\s+["'](node:|fs|path|zlib|crypto)/.test(readFileSync(join(src, f), "utf8")));
    expect(offenders).toEqual([]);
  });
});
