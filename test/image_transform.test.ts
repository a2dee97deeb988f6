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
  resizeCenterCrop,
  resizeImage,
  resizeShortSide,
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

describe("windowed resize (only the centre crop is resampled)", () => {
  const modes = ["L", "LA", "RGB", "RGBA", "I", "P", "1"] as const;
  const image = (mode: (typeof modes)[number], width: number, height: number, seed: number): PixelImage => {
    const bands = { L: 1, LA: 2, RGB: 3, RGBA: 4, I: 1, P: 1, 1: 1 }[mode];
    let s = seed >>> 0;
    const next = () => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0);
    const n = width * height * bands;
    if (mode === "I") return { mode, width, height, data: Int32Array.from({ length: n }, () => (next() % 70000) - 2000) };
    const data = Uint8Array.from({ length: n }, () => (mode === "1" ? (next() & 1) * 255 : next() >>> 24));
    return mode === "P" ? { mode, width, height, data, palette: new Uint8Array(768).fill(7) } : { mode, width, height, data } as PixelImage;
  };
  const crop = (img: PixelImage, x: number, y: number, w: number, h: number): number[] => {
    const bands = img.data.length / (img.width * img.height);
    const out: number[] = [];
    for (let r = y; r < y + h; r++) out.push(...img.data.subarray((r * img.width + x) * bands, (r * img.width + x + w) * bands));
    return out;
  };

  it("gives the pixels of the whole resize, cropped, for every mode, size and window", () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...modes), fc.integer({ min: 1, max: 24 }), fc.integer({ min: 1, max: 24 }),
        fc.integer({ min: 1, max: 40 }), fc.integer({ min: 1, max: 40 }), fc.nat(), fc.nat(), fc.nat(), fc.nat(), fc.nat(),
        (mode, w, h, outW, outH, a, b, c, d, seed) => {
          const img = image(mode, w, h, seed);
          const x = a % outW, y = b % outH, cw = 1 + (c % (outW - x)), chh = 1 + (d % (outH - y));
          const part = resizeImage(img, outW, outH, { x, y, width: cw, height: chh });
          expect([part.width, part.height, part.mode]).toEqual([cw, chh, mode]);
          expect(Array.from(part.data)).toEqual(crop(resizeImage(img, outW, outH), x, y, cw, chh));
        },
      ),
      { numRuns: 400 },
    );
  });

  it("resizeCenterCrop equals CenterCrop(Resize) and handles a 1x100000 image", () => {
    for (const [w, h, n] of [[1, 300, 16], [300, 2, 32], [61, 200, 32], [7, 7, 224], [224, 500, 224]]) {
      const img = image("RGB", w, h, w * h);
      const whole = centerCrop(resizeShortSide(img, n, 1e9), n);
      expect(Array.from(resizeCenterCrop(img, n).data)).toEqual(Array.from(whole.data));
    }
    // resized whole it would be 224 x 22,400,000 pixels; the crop alone is 224 x 224
    const thin = resizeCenterCrop(image("RGB", 1, 100_000, 5), 224);
    expect([thin.width, thin.height, thin.data.length]).toEqual([224, 224, 224 * 224 * 3]);
  });

  it("refuses a window outside the output", () => {
    const img = image("RGB", 4, 4, 1);
    expect(() => resizeImage(img, 8, 8, { x: 4, y: 0, width: 5, height: 1 })).toThrow(/window 5x1 at \(4, 0\)/);
    expect(() => resizeImage(img, 8, 8, { x: 0, y: 0, width: 0, height: 1 })).toThrow(ImageError);
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
