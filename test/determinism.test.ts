// The promise of clip-ts: an embedding has the same bits wherever it is computed. IEEE float32 arithmetic in a
// fixed order (no FMA, no relaxed SIMD, every reduction in one stated order, our own exp), so the same bytes come
// out of repeated runs, of 1, 2, 3 or 4 threads, of the readable TypeScript kernels ("ts") and the SIMD wasm
// ("wasm"), of any batch, of Node and of browsers (test/browser/), and of any machine: the SHA-256 of the embedded
// models' embeddings of the example images and of a few prompts are committed in test/golden/determinism.json
// (scripts/make-determinism-hashes.mjs), so any change of a bit anywhere fails here.
import { createHash } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { embeddedModelPaths, load, type LoadedClip, type LoadOptions } from "../src/clip.js";
import type { Tensor } from "../src/tensor.js";

interface ModelHashes {
  file: string;
  sha256: string;
  images: Record<string, { pixels: string; embedding: string }>;
  texts: { text: string; tokens: string; embedding: string }[];
}

const REGENERATE = "if a model, the images or the prompts changed on purpose: npm run build:ts && node scripts/make-determinism-hashes.mjs";
const golden = JSON.parse(readFileSync("test/golden/determinism.json", "utf8")) as {
  vocab: { file: string; sha256: string };
  models: ModelHashes[];
};
const CONFIGS: (LoadOptions & { backend: "ts" | "wasm" })[] = [
  { backend: "ts" },
  ...[1, 2, 3, 4].map((threads) => ({ backend: "wasm" as const, threads })),
];
const label = (c: LoadOptions) => (c.backend === "ts" ? "ts" : `wasm, ${c.threads} thread${c.threads === 1 ? "" : "s"}`);

function sha256(bytes: Uint8Array | Buffer): string {
  return createHash("sha256").update(bytes).digest("hex");
}
function bytesOf(t: { data: Float32Array | Int32Array | BigInt64Array }): Uint8Array {
  return new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
}
function row(t: Tensor, r: number): Tensor {
  const E = t.shape[1];
  return { data: t.data.slice(r * E, (r + 1) * E), shape: [1, E] };
}

const imageBytes = new Map<string, Uint8Array>();
for (const m of golden.models) for (const f of Object.keys(m.images)) imageBytes.set(f, new Uint8Array(readFileSync(f)));

/** Every committed quantity of one model, computed by it. */
function embedAll(clip: LoadedClip, m: ModelHashes) {
  const images = Object.keys(m.images).map((f) => {
    const pixels = clip.preprocess(imageBytes.get(f)!);
    return [f, { pixels: sha256(bytesOf(pixels)), embedding: sha256(bytesOf(clip.model.encodeImage(pixels))) }] as const;
  });
  const texts = m.texts.map(({ text }) => {
    const tokens = clip.tokenize(text, { truncate: true });
    return { text, tokens: sha256(bytesOf(tokens)), embedding: sha256(bytesOf(clip.model.encodeText(tokens))) };
  });
  return { images: Object.fromEntries(images), texts };
}

test("the committed hashes are of these embedded models, this vocab and (for the default model) every example image", async () => {
  expect(golden.models.map((m) => m.file)).toEqual(["weights/clip-tiny-rn.safetensors", "weights/clip-tiny-vit.safetensors"]);
  expect((await embeddedModelPaths()).weights.endsWith(golden.models[0].file), "the first model is the default").toBe(true);
  for (const m of golden.models) expect(sha256(readFileSync(m.file)), `${m.file} changed; ${REGENERATE}`).toBe(m.sha256);
  expect(sha256(readFileSync(golden.vocab.file)), `${golden.vocab.file} changed; ${REGENERATE}`).toBe(golden.vocab.sha256);
  const onDisk = readdirSync("examples").filter((f) => /\.(png|jpe?g)$/i.test(f)).map((f) => `examples/${f}`).sort();
  expect(onDisk.length).toBeGreaterThan(0);
  expect(Object.keys(golden.models[0].images).sort(), `examples/ changed; ${REGENERATE}`).toEqual(onDisk);
  for (const m of golden.models) {
    expect(Object.keys(m.images).length).toBeGreaterThan(0);
    expect(m.texts.length).toBeGreaterThan(0);
  }
});

describe.each(golden.models.flatMap((m) => CONFIGS.map((c) => [`${m.file.replace(/^weights\/|\.safetensors$/g, "")}, ${label(c)}`, m, c] as const)))(
  "%s",
  (name, m, config) => {
    let clip: LoadedClip;
    beforeAll(async () => {
      clip = await load(m.file, config);
      // the configurations really differ: ts against wasm, and the thread count the wasm backend got
      expect(clip.model.backend.name).toBe(config.backend);
      expect((clip.model.backend as { threads?: number }).threads).toBe(config.threads);
    });
    afterAll(() => clip?.model.dispose());

    const again = config.backend === "wasm"; // the wasm backend reuses its memory and workers from call to call
    test(`${name}: every pixel tensor, token row and embedding has the committed SHA-256${again ? ", run after run" : ""}`, () => {
      const first = embedAll(clip, m);
      expect(first.images).toEqual(m.images);
      expect(first.texts).toEqual(m.texts);
      if (again) expect(embedAll(clip, m)).toEqual(first);
    });

    test(`${name}: an embedding does not depend on the batch it is computed in`, () => {
      const files = Object.keys(m.images);
      const pixels = files.map((f) => clip.preprocess(imageBytes.get(f)!));
      const R = pixels[0].shape[2];
      const batch = { data: new Float32Array(pixels.length * 3 * R * R), shape: [pixels.length, 3, R, R] };
      pixels.forEach((p, i) => batch.data.set(p.data, i * 3 * R * R));
      const images = clip.model.encodeImage(batch);
      files.forEach((f, i) => expect(sha256(bytesOf(row(images, i))), f).toBe(m.images[f].embedding));

      const texts = clip.model.encodeText(clip.tokenize(m.texts.map((t) => t.text), { truncate: true }));
      m.texts.forEach((t, i) => expect(sha256(bytesOf(row(texts, i))), t.text).toBe(t.embedding));
    });
  },
);
