import { classEmbeddings, DEFAULT_TEMPLATE, fillTemplate, softmaxRows, TEMPLATE_SETS, zeroShotLogits } from "../zero_shot.js";
import { DEFAULT_MAX_BATCH, type CLIP } from "../model.js";
import type { Tensor } from "../tensor.js";
import { choice, integer, parse, required, UsageError } from "./args.js";
import {
  batched, imageLoader, MODEL_HELP, MODEL_OPTIONS, openModel, openTokenizer, usageIfEmpty, wrap, type Command, type Io,
} from "./common.js";
import { Progress } from "./progress.js";

/** The embedded model was trained on synthetic shapes: said once, so that nobody mistakes it for CLIP on photos. */
export const EMBEDDED_MODEL_NOTE = "note: the embedded tiny model knows 7 shapes and 8 colours (weights/README.md); for photos use --model ViT-B/32";

export const zeroShotCommand: Command = {
  name: "zero-shot",
  summary: "classify images among labels by prompt similarity",
  help: `Usage:
  clip-ts zero-shot <image>... --labels "a,b,c" [--template T]... [--templates imagenet80|imagenet7] [--json]

For each image, the labels sorted by probability: the softmax over labels of logits_per_image
(exp(logit_scale)·cos between the image and each label's prompt embedding). With several templates, each
label's embedding is the renormalised mean of its prompts' normalised embeddings (the CLIP paper's ensembling).

Options:
  --labels LIST       comma-separated class names
  --template T        a prompt with "{}" for the label; repeatable (default "${DEFAULT_TEMPLATE}")
  --templates NAME    imagenet80 (the paper's 80 ImageNet prompts) or imagenet7 (their best 7)
  --top K             print only the K most probable labels per image
  --json              JSON output
  --batch-size N      images preprocessed and encoded at a time (default 16)
  --vocab FILE        the tokenizer (default: a vocab next to --model, else the embedded one)
${MODEL_HELP}`,

  async run(argv, io) {
    const { values, positionals } = parse(argv, {
      ...MODEL_OPTIONS, labels: { type: "string" }, template: { type: "string", multiple: true }, templates: { type: "string" },
      top: { type: "string" }, json: { type: "boolean" }, vocab: { type: "string" }, "batch-size": { type: "string" },
    }, true);
    if (values.help) return io.stdout.write(`${this.help}\n`);
    usageIfEmpty(positionals, "image files");
    const labels = required(values.labels, "--labels").split(",").map((l) => l.trim());
    if (labels.some((l) => l === "")) throw new UsageError(`--labels "${values.labels}" has an empty label`);
    const set = choice(values.templates, "--templates", Object.keys(TEMPLATE_SETS));
    if (set !== undefined && values.template) throw new UsageError("give either --template or --templates, not both");
    const templates = set !== undefined ? TEMPLATE_SETS[set] : values.template ?? [DEFAULT_TEMPLATE];
    for (const t of templates) wrap("--template", () => fillTemplate(t, ""));
    const top = values.top === undefined ? labels.length : Number(values.top);
    if (!(Number.isInteger(top) && top >= 1)) throw new UsageError(`--top must be a positive integer, got "${values.top}"`);
    const batch = integer(values["batch-size"], "--batch-size", 1, DEFAULT_MAX_BATCH) ?? 16;

    const opened = await openModel(io, values);
    const { model } = opened;
    if (values.model === undefined) io.stderr.write(`${EMBEDDED_MODEL_NOTE}\n`);
    try {
      const tokenizer = await openTokenizer(io, values.vocab, { file: opened.file, config: model.config });
      const load = await imageLoader(io, model.config.imageResolution, positionals);
      const bar = new Progress(io.stderr, "embedding labels", labels.length);
      const classes = wrap("labels", () => classEmbeddings(model, tokenizer, labels, { templates, onProgress: (d) => bar.update(d) }));
      bar.finish();
      const probs = softmaxRows(imageLogits(io, model, load, positionals, classes, batch));
      const ranked = probs.map((row) => row.map((p, i) => ({ label: labels[i], probability: p }))
        .sort((a, b) => b.probability - a.probability).slice(0, top));
      if (values.json) {
        const items = positionals.map((image, i) => JSON.stringify({ image, labels: ranked[i] }));
        return io.stdout.write(`[\n${items.join(",\n")}\n]\n`);
      }
      const lines: string[] = [];
      positionals.forEach((image, i) => {
        lines.push(image);
        for (const r of ranked[i]) lines.push(`  ${(100 * r.probability).toFixed(2).padStart(6)}%  ${r.label}`);
      });
      io.stdout.write(`${lines.join("\n")}\n`);
    } finally {
      model.dispose();
    }
  },
};

/**
 * zeroShotLogits [images, labels] of image files, preprocessed and encoded `batch` at a time (at most the
 * model's maxBatch): any number of images goes through, holding the pixels of one batch only.
 */
export function imageLogits(
  io: Io, model: CLIP, load: (paths: readonly string[]) => Tensor, paths: readonly string[], classes: Tensor, batch: number,
): Tensor {
  return wrap("images", () => batched(io, "classifying images", paths.length, Math.min(batch, model.maxBatch),
    (s, e) => zeroShotLogits(model, load(paths.slice(s, e)), classes)));
}
