// Writes test/golden/determinism.json: SHA-256 of the float32 bytes of the embedded models' image embeddings of
// examples/*.png and text embeddings of a few prompts, computed by the readable TypeScript kernels. Run it only
// when the embedded models, the example images or the prompts change on purpose (after `npm run build:ts`):
//
//   node scripts/make-determinism-hashes.mjs
//
// test/determinism.test.ts then holds every backend and thread count, on every machine, to these bits.
import { createHash } from "node:crypto";
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));
const { load } = await import(`${root}dist/src/index.js`).catch((e) => {
  throw new Error(`make-determinism-hashes: run "npm run build:ts" first (${e.message})`);
});

/** Prompts of the embedded model's world (coloured shapes), one with non-ASCII text and one at the context limit. */
const PROMPTS = [
  "a photo of a red star.",
  "a photo of a blue circle.",
  "a photo of a green square.",
  "a photo of a purple triangle",
  "Ünïcödé — 形 and an emoji 🔺",
  Array.from({ length: 40 }, (_, i) => ["red", "blue", "star", "circle"][i % 4]).join(" "),
];

const sha256 = (bytes) => createHash("sha256").update(bytes).digest("hex");
const bytesOf = (t) => new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);

const images = readdirSync(`${root}examples`).filter((f) => /\.(png|jpe?g)$/i.test(f)).sort();
if (images.length === 0) throw new Error("make-determinism-hashes: no examples/*.png");
/** The default ResNet on every example image; the ViT (patch embedding, vision transformer) on two, to keep the test short. */
const MODELS = [
  { file: "weights/clip-tiny-rn.safetensors", images },
  { file: "weights/clip-tiny-vit.safetensors", images: images.slice(0, 2) },
];

async function hashes({ file, images }) {
  const clip = await load(`${root}${file}`, { backend: "ts" });
  try {
    return {
      file,
      sha256: sha256(readFileSync(`${root}${file}`)),
      images: Object.fromEntries(images.map((f) => {
        const pixels = clip.preprocess(new Uint8Array(readFileSync(`${root}examples/${f}`)));
        return [`examples/${f}`, { pixels: sha256(bytesOf(pixels)), embedding: sha256(bytesOf(clip.model.encodeImage(pixels))) }];
      })),
      texts: PROMPTS.map((text) => {
        const tokens = clip.tokenize(text, { truncate: true });
        return { text, tokens: sha256(bytesOf(tokens)), embedding: sha256(bytesOf(clip.model.encodeText(tokens))) };
      }),
    };
  } finally {
    clip.model.dispose();
  }
}

const out = {
  note: "SHA-256 of the bytes (little-endian) of the embedded models' preprocessed pixels and embeddings (float32) and token ids (int32); written by scripts/make-determinism-hashes.mjs",
  vocab: { file: "weights/vocab.txt.gz", sha256: sha256(readFileSync(`${root}weights/vocab.txt.gz`)) },
  models: [],
};
for (const m of MODELS) out.models.push(await hashes(m));
const file = `${root}test/golden/determinism.json`;
writeFileSync(file, JSON.stringify(out, null, 2) + "\n");
console.log(`wrote ${file}: ${MODELS.map((m) => `${m.file}: ${m.images.length} images`).join(", ")}; ${PROMPTS.length} prompts`);
