import { readFileSync } from "node:fs";
import { describe, expect, test } from "vitest";
import { embeddedModelPaths, load } from "../src/clip.js";
import { zeroShot } from "../src/zero_shot.js";
import { agreement } from "./helpers/golden.js";

// The embedded models against the PyTorch reference on the example images (tools/train/make_examples.py wrote what
// PyTorch computes from the same PNGs through the reference _transform): image bytes to embeddings and labels.
const expected = JSON.parse(readFileSync("tools/train/eval_expected.json", "utf8"));
const examples = JSON.parse(readFileSync("examples/labels.json", "utf8"));

test("without a path, load() gives the ResNet (the more accurate of the two) and the embedded vocab", async () => {
  const paths = await embeddedModelPaths();
  expect(paths.weights).toMatch(/[/\\]weights[/\\]clip-tiny-rn\.safetensors$/);
  expect(paths.vocab).toMatch(/[/\\]weights[/\\]vocab\.txt\.gz$/);
  const clip = await load();
  expect(clip.model.config.vision).toMatchObject({ kind: "resnet", layers: [1, 1, 1, 1] });
  expect(clip.model.config.imageResolution).toBe(64);
  clip.model.dispose();
});

for (const arch of ["vit", "rn"]) {
  describe(`weights/clip-tiny-${arch}.safetensors`, async () => {
    const clip = await load(`weights/clip-tiny-${arch}.safetensors`);
    const ref = expected.models[arch];
    const files = Object.keys(ref.image_features);

    test("the expectations are of these weights", () => {
      expect(ref.file).toBe(`clip-tiny-${arch}.safetensors`);
      expect(Math.abs(Math.exp(clip.model.logit_scale) - ref.logit_scale)).toBeLessThan(1e-4 * ref.logit_scale);
    });

    test("tokens, image and text features agree with PyTorch", () => {
      const p = ref.prompts.template;
      const tokens = clip.tokenize(p.texts);
      p.tokens.forEach((ids: number[], i: number) => expect(Array.from(tokens.data.subarray(i * 77, i * 77 + ids.length), Number)).toEqual(ids));
      const text = clip.model.encodeText(tokens);
      const a = agreement(text, { data: Float32Array.from(p.text_features.flat()), shape: [p.texts.length, 64] });
      console.log(`${arch} text features: max rel ${a.maxRel.toExponential(2)}`);
      expect(a.ok).toBe(true);
      for (const f of files) {
        const img = clip.model.encodeImage(clip.preprocess(readFileSync(`examples/${f}`)));
        const b = agreement(img, { data: Float32Array.from(ref.image_features[f]), shape: [1, 64] });
        expect(b.ok, f).toBe(true);
      }
    });

    test("every example image gets its label", () => {
      for (const f of files) {
        const [probs] = zeroShot(clip.model, clip.tokenizer, clip.preprocess(readFileSync(`examples/${f}`)), examples.labels, { templates: [examples.template] });
        const top = examples.labels[probs.indexOf(Math.max(...probs))];
        expect(top, f).toBe(examples.images[f].label);
        expect(ref.prompts.template.top1[f], `PyTorch on ${f}`).toBe(top);
        ref.prompts.template.probs[f].forEach((q: number, j: number) => expect(Math.abs(probs[j] - q)).toBeLessThan(1e-4));
      }
    });
  });
}
