// Held-out zero-shot accuracy of the embedded models, computed by clip-ts itself on PNGs rendered by
// tools/train/render_heldout.py (shape/colour pairs never seen in training), with the prompts the model card names.
//   /usr/bin/python3 tools/train/render_heldout.py /tmp/heldout 400 && npm run build:ts && node scripts/eval-embedded.mjs /tmp/heldout
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { load, zeroShot } from "../dist/src/index.js";

const dir = process.argv[2] ?? "/tmp/heldout";
const { colours, shapes, samples } = JSON.parse(readFileSync(join(dir, "labels.json"), "utf8"));
const tasks = {
  colour: { labels: colours, template: "a photo of a {} object", truth: (s) => s.colour },
  shape: { labels: shapes, template: "a photo of a {}", truth: (s) => s.shape },
  pair: { labels: shapes.flatMap((sh) => colours.map((c) => `${c} ${sh}`)), template: "a photo of a {}", truth: (s) => `${s.colour} ${s.shape}` },
};
for (const arch of ["vit", "rn"]) {
  const clip = await load(`weights/clip-tiny-${arch}.safetensors`);
  const pixels = samples.map((s) => clip.preprocess(readFileSync(join(dir, s.file))));
  const R = clip.model.config.imageResolution;
  const batch = { data: new Float32Array(samples.length * 3 * R * R), shape: [samples.length, 3, R, R] };
  pixels.forEach((p, i) => batch.data.set(p.data, i * p.data.length));
  const result = {};
  for (const [name, t] of Object.entries(tasks)) {
    const probs = zeroShot(clip.model, clip.tokenizer, batch, t.labels, { templates: [t.template] });
    const right = probs.filter((p, i) => t.labels[p.indexOf(Math.max(...p))] === t.truth(samples[i])).length;
    result[name] = `${((100 * right) / samples.length).toFixed(1)}%`;
  }
  console.log(`clip-tiny-${arch}: ${samples.length} held-out images`, result);
  clip.model.dispose();
}
