import { readFileSync } from "node:fs";
import { afterAll, describe, expect, test } from "vitest";
import { createWasmBackend } from "../src/backend/wasm.js";
import { TsBackend } from "../src/backend/ts.js";
import { buildModel, type CLIP } from "../src/model.js";
import { parseSafetensors } from "../src/weights/safetensors.js";
import { expectBits, goldenDir, npy, npyTokens } from "./helpers/golden.js";

// A whole model, not just kernels: the wasm backend on any thread count gives the bits of the readable path.
for (const name of ["vit", "rn"]) {
  describe(`${name}: wasm backend = TypeScript backend, bit for bit`, async () => {
    const dir = goldenDir(name);
    const sd = parseSafetensors(readFileSync(`${dir}/weights.safetensors`));
    const pixels = npy(`${dir}/pixels.npy`), tokens = npyTokens(`${dir}/tokens.npy`);
    const reference = buildModel(sd, new TsBackend());
    const expected = reference.forward(pixels, tokens);
    const expectedImage = reference.encodeImage(pixels), expectedText = reference.encodeText(tokens);
    const models: CLIP[] = [];
    afterAll(() => models.forEach((m) => m.dispose()));

    for (const threads of [1, 2, 3]) {
      test(`${threads} thread${threads > 1 ? "s" : ""}`, async () => {
        // minParallelWork 0: even these small kernels are split across the threads
        const model = buildModel(sd, await createWasmBackend({ threads, minParallelWork: 0 }));
        models.push(model);
        expectBits(model.encodeImage(pixels).data, expectedImage.data);
        expectBits(model.encodeText(tokens).data, expectedText.data);
        expectBits(model.forward(pixels, tokens).logitsPerImage.data, expected.logitsPerImage.data);
      });
    }
  });
}

// A forward pass's op results land in one array the backend keeps for the next pass (WasmBackend.scoped): what
// encode returns must be its own, and a pass whose results do not fit, or a hooked one, must not differ.
describe("wasm: op results kept between forward passes", async () => {
  const dir = goldenDir("vit");
  const sd = parseSafetensors(readFileSync(`${dir}/weights.safetensors`));
  const pixels = npy(`${dir}/pixels.npy`), tokens = npyTokens(`${dir}/tokens.npy`);
  const reference = buildModel(sd, new TsBackend());
  const expectedImage = reference.encodeImage(pixels), expectedText = reference.encodeText(tokens);

  test("a returned embedding is not overwritten by the next pass; hooked passes and results past the array's end give the same bits", async () => {
    for (const [threads, scopedResultFloats] of [[1, undefined], [2, undefined], [1, 5000], [2, 0]] as const) {
      const backend = await createWasmBackend({ threads, minParallelWork: 0, scopedResultFloats });
      const model = buildModel(sd, backend);
      const image = model.encodeImage(pixels), text = model.encodeText(tokens);
      const image2 = model.encodeImage(pixels), text2 = model.encodeText(tokens);
      model.encodeImage({ data: pixels.data.map((v) => -v), shape: pixels.shape }); // other values through the same array
      const other = tokens.data.slice();
      for (let i = 1; i < other.length; i += tokens.shape[1]!) other[i] = typeof other[i] === "bigint" ? 400n : 400;
      model.encodeText({ data: other, shape: tokens.shape } as typeof tokens);
      for (const [got, want] of [[image, expectedImage], [image2, expectedImage], [text, expectedText], [text2, expectedText]]) {
        expectBits(got.data, want.data);
      }
      expect(image.data.buffer).not.toBe(image2.data.buffer);
      const seen: string[] = [];
      expectBits(model.encodeImage(pixels, (name) => seen.push(name)).data, expectedImage.data);
      expectBits(model.encodeText(tokens, (name) => seen.push(name)).data, expectedText.data);
      expect(seen.length).toBeGreaterThan(4);
      model.dispose();
    }
  });
});
