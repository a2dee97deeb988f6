// Zero-shot classification as in the CLIP paper (§3.1.4) and OpenAI's notebook Prompt_Engineering_for_ImageNet:
// each label becomes prompts ("a photo of a {}."), the prompts' text features are L2-normalised, averaged and
// renormalised into one class embedding, and an image's logits are exp(logit_scale)·cos(image, class).
import { expf } from "./kernels/exp.js";
import { f } from "./kernels/f32.js";
import { normalize, scaledSimilarity, type CLIP } from "./model.js";
import { tensor, type Tensor } from "./tensor.js";

/** What zero-shot needs of a tokenizer: clip.tokenize's contract (rows of ids padded to contextLength). */
export interface PromptTokenizer {
  tokenize(texts: string[], options?: { contextLength?: number; truncate?: boolean }): { data: Int32Array; shape: number[] };
}

export interface ZeroShotOptions {
  /** Prompt templates with one "{}" for the label (default: ["a photo of a {}."]). */
  templates?: readonly string[];
  /** Called after each label is embedded: (labels done, labels in all). */
  onProgress?: (done: number, total: number) => void;
}

export const DEFAULT_TEMPLATE = "a photo of a {}.";

/** The 80 ImageNet templates of the CLIP paper (OpenAI's notebook Prompt_Engineering_for_ImageNet.ipynb). */
export const IMAGENET_TEMPLATES: readonly string[] = [
  "a bad photo of a {}.", "a photo of many {}.", "a sculpture of a {}.", "a photo of the hard to see {}.",
  "a low resolution photo of the {}.", "a rendering of a {}.", "graffiti of a {}.", "a bad photo of the {}.",
  "a cropped photo of the {}.", "a tattoo of a {}.", "the embroidered {}.", "a photo of a hard to see {}.",
  "a bright photo of a {}.", "a photo of a clean {}.", "a photo of a dirty {}.", "a dark photo of the {}.",
  "a drawing of a {}.", "a photo of my {}.", "the plastic {}.", "a photo of the cool {}.",
  "a close-up photo of a {}.", "a black and white photo of the {}.", "a painting of the {}.", "a painting of a {}.",
  "a pixelated photo of the {}.", "a sculpture of the {}.", "a bright photo of the {}.", "a cropped photo of a {}.",
  "a plastic {}.", "a photo of the dirty {}.", "a jpeg corrupted photo of a {}.", "a blurry photo of the {}.",
  "a photo of the {}.", "a good photo of the {}.", "a rendering of the {}.", "a {} in a video game.",
  "a photo of one {}.", "a doodle of a {}.", "a close-up photo of the {}.", "a photo of a {}.",
  "the origami {}.", "the {} in a video game.", "a sketch of a {}.", "a doodle of the {}.",
  "a origami {}.", "a low resolution photo of a {}.", "the toy {}.", "a rendition of the {}.",
  "a photo of the clean {}.", "a photo of a large {}.", "a rendition of a {}.", "a photo of a nice {}.",
  "a photo of a weird {}.", "a blurry photo of a {}.", "a cartoon {}.", "art of a {}.",
  "a sketch of the {}.", "a embroidered {}.", "a pixelated photo of a {}.", "itap of the {}.",
  "a jpeg corrupted photo of the {}.", "a good photo of a {}.", "a plushie {}.", "a photo of the nice {}.",
  "a photo of the small {}.", "a photo of the weird {}.", "the cartoon {}.", "art of the {}.",
  "a drawing of the {}.", "a photo of the large {}.", "a black and white photo of a {}.", "the plushie {}.",
  "a dark photo of a {}.", "itap of a {}.", "graffiti of the {}.", "a toy {}.",
  "itap of my {}.", "a photo of a cool {}.", "a photo of a small {}.", "a tattoo of the {}.",
];

/** The 7 templates that sequential forward selection over the 80 picked, in its order (same notebook). */
export const IMAGENET_TEMPLATES_7: readonly string[] = [
  "itap of a {}.", "a bad photo of the {}.", "a origami {}.", "a photo of the large {}.",
  "a {} in a video game.", "art of the {}.", "a photo of the small {}.",
];

export const TEMPLATE_SETS: Readonly<Record<string, readonly string[]>> = {
  imagenet80: IMAGENET_TEMPLATES,
  imagenet7: IMAGENET_TEMPLATES_7,
};

/** template.format(label) for templates with exactly one "{}". */
export function fillTemplate(template: string, label: string): string {
  const parts = template.split("{}");
  if (parts.length !== 2) throw new RangeError(`template "${template}" must contain "{}" exactly once`);
  return parts[0] + label + parts[1];
}

/**
 * zeroshot_classifier of the notebook: one unit-norm class embedding per label, [labels, embed_dim]:
 * normalise each template's text features, take their mean, normalise again.
 */
export function classEmbeddings(model: CLIP, tokenizer: PromptTokenizer, labels: readonly string[], options: ZeroShotOptions = {}): Tensor {
  const templates = options.templates ?? [DEFAULT_TEMPLATE];
  if (labels.length === 0) throw new RangeError("zero-shot: no labels");
  if (templates.length === 0) throw new RangeError("zero-shot: no templates");
  for (const t of templates) fillTemplate(t, ""); // reject a bad template before any work
  const E = model.config.embedDim;
  const out = tensor([labels.length, E]);
  labels.forEach((label, c) => {
    const ids = tokenizer.tokenize(templates.map((t) => fillTemplate(t, label)), { contextLength: model.config.contextLength });
    const features = normalize(model.encodeText(ids));
    const mean = tensor([1, E]);
    for (let e = 0; e < E; e++) {
      let sum = 0;
      for (let t = 0; t < templates.length; t++) sum = f(sum + features.data[t * E + e]);
      mean.data[e] = f(sum / templates.length);
    }
    out.data.set(normalize(mean).data, c * E);
    options.onProgress?.(c + 1, labels.length);
  });
  return out;
}

/** exp(logit_scale) · normalise(image features) @ classesᵀ: [images, labels]. */
export function zeroShotLogits(model: CLIP, image: Tensor, classes: Tensor): Tensor {
  return scaledSimilarity(model.logit_scale, normalize(model.encodeImage(image)), classes);
}

/** softmax over the last axis, one array per row, in f32 with the project's exp (Math.exp differs between engines). */
export function softmaxRows(logits: Tensor): number[][] {
  const [R, C] = logits.shape;
  const out: number[][] = [];
  for (let r = 0; r < R; r++) {
    const row = logits.data.subarray(r * C, (r + 1) * C);
    let max = -Infinity;
    for (const x of row) if (x > max) max = x;
    const exps = Array.from(row, (x) => expf(f(x - max)));
    let sum = 0;
    for (const e of exps) sum = f(sum + e);
    out.push(exps.map((e) => f(e / sum)));
  }
  return out;
}

/**
 * Probabilities of each label for each image: probs[image][label], the softmax of logits_per_image over labels.
 * image: preprocessed pixels [N, 3, R, R].
 */
export function zeroShot(model: CLIP, tokenizer: PromptTokenizer, image: Tensor, labels: readonly string[], options: ZeroShotOptions = {}): number[][] {
  return softmaxRows(zeroShotLogits(model, image, classEmbeddings(model, tokenizer, labels, options)));
}
