import { existsSync } from "node:fs";
import { expect, test } from "vitest";

// The package imports by its own name from inside its folder (package.json "exports", built into dist/ by npm ci).
test('import { loadModel, load } from "clip-ts"', async () => {
  expect(existsSync("dist/src/index.js"), "dist/ is built by `npm ci` (prepare) or `npm run build`").toBe(true);
  const api = await import("clip-ts");
  for (const name of ["load", "loadModel", "loadTokenizer", "preprocess", "zeroShot", "buildModel", "loadStateDict"]) {
    expect(typeof (api as Record<string, unknown>)[name], name).toBe("function");
  }
  const golden = await api.loadModel("test/golden/models/vit/weights.safetensors", { backend: "ts" });
  expect(golden.config).toMatchObject({ embedDim: 64, imageResolution: 32, visionLayers: 2, visionPatchSize: 8, vocabSize: 512 });
  golden.dispose();
});
