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
