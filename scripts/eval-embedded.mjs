// Held-out zero-shot accuracy of the embedded models, computed by clip-ts itself on PNGs rendered by
// tools/train/render_heldout.py (shape/colour pairs never seen in training), with the prompts the model card names.
// By default those are the 2000 images train.py measured with PyTorch (tools/train/runs/*.json), shown alongside.
//   /usr/bin/python3 tools/train/render_heldout.py /tmp/heldout && npm run build:ts && node scripts/eval-embedded.mjs /tmp/heldout
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { load } from "../dist/src/index.js";
import { normalize, scaledSimilarity } from "../dist/src/model.js";
import { classEmbeddings } from "../dist/src/zero_shot.js";

const root = fileURLToPath(new URL("..", import.meta.url));
const dir = process.argv[2] ?? "/tmp/heldout";
const { colours, shapes, samples, seed } = JSON.parse(readFileSync(join(dir, "labels.json"), "utf8"));
const tasks = {
  colour: { labels: colours, template: "a photo of a {} object", truth: (s) => s.colour },
  shape: { labels: shapes, template: "a photo of a {}", truth: (s) => s.shape },
  pair: { labels: shapes.flatMap((sh) => colours.map((c) => `${c} ${sh}`)), template: "a photo of a {}", truth: (s) => `${s.colour} ${s.shape}` },
};
const percent = (x) => `${(100 * x).toFixed(2)}%`; // 2000 images: steps of 0.05%
for (const arch of ["rn", "vit"]) {
  const run = JSON.parse(readFileSync(join(root, `tools/train/runs/${arch}.json`), "utf8"));
  // train.py's held-out set: render_set(2000, HELD_OUT_PAIRS, seed + 2)
  const sameImages = seed === run.args.seed + 2 && samples.length === 2000;
  const clip = await load(join(root, `weights/clip-tiny-${arch}.safetensors`), { threads: 1 });
  // encoded once, in batches under the model's maxBatch, for the three tasks; zeroShotLogits without its encode
  const E = clip.model.config.embedDim, R = clip.model.config.imageResolution, B = 250;
  const features = new Float32Array(samples.length * E);
  for (let start = 0; start < samples.length; start += B) {
    const chunk = samples.slice(start, start + B);
    const batch = { data: new Float32Array(chunk.length * 3 * R * R), shape: [chunk.length, 3, R, R] };
    chunk.forEach((s, i) => batch.data.set(clip.preprocess(readFileSync(join(dir, s.file))).data, i * 3 * R * R));
    features.set(clip.model.encodeImage(batch).data, start * E);
  }
  const images = normalize({ data: features, shape: [samples.length, E] });
  const rows = [];
  for (const [name, t] of Object.entries(tasks)) {
    const classes = classEmbeddings(clip.model, clip.tokenizer, t.labels, { templates: [t.template] });
    const logits = scaledSimilarity(clip.model.logit_scale, images, classes).data, L = t.labels.length;
    let right = 0;
    samples.forEach((s, i) => {
      const row = logits.subarray(i * L, (i + 1) * L);
      if (t.labels[row.indexOf(Math.max(...row))] === t.truth(s)) right++;
    });
    rows.push(`${name} ${percent(right / samples.length)}${sameImages ? ` (PyTorch ${percent(run.held_out[name])})` : ""}`);
  }
  console.log(`clip-tiny-${arch}, ${samples.length} held-out images: ${rows.join(", ")}`);
  clip.model.dispose();
}
