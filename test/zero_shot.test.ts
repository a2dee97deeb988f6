// zeroShot on the golden ViT with a stand-in tokenizer (the golden model's vocabulary is 512 random ids):
// against the model's own forward() for one template, and against a float64 re-derivation of the notebook's
// ensembling for several.
import { readFileSync } from "node:fs";
import { describe, expect, test } from "vitest";
import { TsBackend } from "../src/backend/ts.js";
import { buildModel } from "../src/model.js";
import { loadStateDict } from "../src/weights/index.js";
import {
  classEmbeddings, fillTemplate, IMAGENET_TEMPLATES, IMAGENET_TEMPLATES_7, softmaxRows, TEMPLATE_SETS, zeroShot,
  type PromptTokenizer,
} from "../src/zero_shot.js";
import { goldenDir, npy } from "./helpers/golden.js";

const dir = goldenDir("vit");
const model = buildModel(loadStateDict(readFileSync(`${dir}/weights.safetensors`)), new TsBackend());
const pixels = npy(`${dir}/pixels.npy`); // [2, 3, 32, 32]

/** Words → ids in [1, 509] by a string hash; start 510, end 511 (the row maximum), zero padding. */
const tokenizer: PromptTokenizer & { calls: string[][] } = {
  calls: [],
  tokenize(texts, options = {}) {
    this.calls.push([...texts]);
    const L = options.contextLength ?? 77;
    const data = new Int32Array(texts.length * L);
    texts.forEach((t, r) => {
      const ids = t.split(/\s+/).filter(Boolean).map((w) => 1 + [...w].reduce((h, ch) => (h * 31 + ch.charCodeAt(0)) % 509, 7));
      data.set([510, ...ids.slice(0, L - 2), 511], r * L);
    });
    return { data, shape: [texts.length, L] };
  },
};

const labels = ["cat", "dog", "red star", "blue circle"];

function softmax(row: number[]): number[] {
  const m = Math.max(...row);
  const e = row.map((x) => Math.exp(x - m));
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((x) => x / s);
}

test("one template: the softmax of the model's own logits_per_image for the prompts", () => {
  const probs = zeroShot(model, tokenizer, pixels, labels, { templates: ["a photo of a {}."] });
  const { logitsPerImage } = model.forward(pixels, tokenizer.tokenize(labels.map((l) => `a photo of a ${l}.`)));
  expect(probs).toHaveLength(2);
  for (let i = 0; i < 2; i++) {
    const expected = softmax(Array.from(logitsPerImage.data.subarray(i * 4, i * 4 + 4)));
    expect(probs[i]).toHaveLength(4);
    probs[i].forEach((p, j) => expect(Math.abs(p - expected[j])).toBeLessThan(1e-5));
    expect(probs[i].reduce((a, b) => a + b, 0)).toBeCloseTo(1, 6); // f32
  }
});

test("several templates: normalise, mean, renormalise per label, as OpenAI's notebook (float64 re-derivation)", () => {
  const templates = IMAGENET_TEMPLATES_7;
  tokenizer.calls.length = 0;
  const probs = zeroShot(model, tokenizer, pixels, labels, { templates });
  expect(tokenizer.calls).toEqual(labels.map((l) => templates.map((t) => fillTemplate(t, l)))); // one batch per label

  const unit = (v: number[]) => { const n = Math.hypot(...v); return v.map((x) => x / n); };
  const rows = (t: { data: Float32Array; shape: number[] }) =>
    Array.from({ length: t.shape[0] }, (_, i) => Array.from(t.data.subarray(i * t.shape[1], (i + 1) * t.shape[1])));
  const classes = labels.map((l) => {
    const feats = rows(model.encodeText(tokenizer.tokenize(templates.map((t) => t.replace("{}", l))))).map(unit);
    return unit(feats[0].map((_, e) => feats.reduce((s, f) => s + f[e], 0) / feats.length));
  });
  const images = rows(model.encodeImage(pixels)).map(unit);
  const scale = Math.exp(model.logit_scale);
  images.forEach((img, i) => {
    const expected = softmax(classes.map((c) => scale * c.reduce((s, x, e) => s + x * img[e], 0)));
    probs[i].forEach((p, j) => expect(Math.abs(p - expected[j])).toBeLessThan(1e-5));
  });
  // the ensemble is not the single-template answer
  const single = zeroShot(model, tokenizer, pixels, labels, { templates: [templates[0]] });
  expect(Math.max(...single[0].map((p, j) => Math.abs(p - probs[0][j])))).toBeGreaterThan(1e-4);
});

test("class embeddings are unit vectors; permuting labels permutes the probabilities", () => {
  const classes = classEmbeddings(model, tokenizer, labels, { templates: ["{}", "a {} photo"] });
  expect(classes.shape).toEqual([4, 64]);
  for (let c = 0; c < 4; c++) expect(Math.hypot(...classes.data.subarray(c * 64, (c + 1) * 64))).toBeCloseTo(1, 5);
  const a = zeroShot(model, tokenizer, pixels, labels);
  const b = zeroShot(model, tokenizer, pixels, [...labels].reverse());
  // equal up to the f32 rounding of a sum taken in the other order
  for (let i = 0; i < 2; i++) [...a[i]].reverse().forEach((p, j) => expect(Math.abs(b[i][j] - p)).toBeLessThan(1e-7));
});

test("softmaxRows is stable for large logits", () => {
  const p = softmaxRows({ data: Float32Array.from([1000, 999, -1000]), shape: [1, 3] });
  expect(p[0][0]).toBeCloseTo(1 / (1 + Math.exp(-1)), 6);
  expect(p[0][2]).toBe(0);
});

test("bad templates and labels are rejected before any work", () => {
  expect(() => fillTemplate("no placeholder", "cat")).toThrow(/must contain "\{\}" exactly once/);
  expect(() => fillTemplate("{} and {}", "cat")).toThrow(/exactly once/);
  expect(fillTemplate("a {}.", "cat")).toBe("a cat.");
  tokenizer.calls.length = 0;
  expect(() => zeroShot(model, tokenizer, pixels, labels, { templates: ["ok {}", "bad"] })).toThrow(/"bad"/);
  expect(tokenizer.calls).toEqual([]);
  expect(() => zeroShot(model, tokenizer, pixels, [])).toThrow(/no labels/);
  expect(() => zeroShot(model, tokenizer, pixels, labels, { templates: [] })).toThrow(/no templates/);
});

describe("the published prompt templates", () => {
  test("80 ImageNet templates and the 7 selected from them, each with one placeholder", () => {
    expect(IMAGENET_TEMPLATES).toHaveLength(80);
    expect(new Set(IMAGENET_TEMPLATES).size).toBe(80);
    expect(IMAGENET_TEMPLATES_7).toHaveLength(7);
    for (const t of IMAGENET_TEMPLATES_7) expect(IMAGENET_TEMPLATES).toContain(t);
    for (const t of IMAGENET_TEMPLATES) expect(t.split("{}")).toHaveLength(2);
    expect(TEMPLATE_SETS.imagenet80).toBe(IMAGENET_TEMPLATES);
    expect(TEMPLATE_SETS.imagenet7).toBe(IMAGENET_TEMPLATES_7);
  });

  // test/golden/imagenet_templates.json: the notebook's lists, by tools/golden/extract_prompt_templates.py
  test("identical to OpenAI's notebook (Prompt_Engineering_for_ImageNet.ipynb), in order", () => {
    const golden = JSON.parse(readFileSync(new URL("golden/imagenet_templates.json", import.meta.url), "utf8")) as { templates: string[]; selected: string[] };
    expect(golden.templates).toHaveLength(80);
    expect([...IMAGENET_TEMPLATES]).toEqual(golden.templates);
    expect([...IMAGENET_TEMPLATES_7]).toEqual(golden.selected);
  });
});
