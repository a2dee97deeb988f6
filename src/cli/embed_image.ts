import { DEFAULT_MAX_BATCH, normalize } from "../model.js";
import { integer, parse, UsageError } from "./args.js";
import {
  batched, f32Json, imageLoader, MODEL_HELP, MODEL_OPTIONS, openModel, readPixels, rowsOf, wrap, writeTensor,
  type Command,
} from "./common.js";
import type { Tensor } from "../tensor.js";

export const embedImage: Command = {
  name: "embed-image",
  summary: "image features (encode_image) of .npy pixels or of image files",
  help: `Usage:
  clip-ts embed-image --pixels x.npy [--out y.npy] [options]
  clip-ts embed-image <image>... [--out y.npy] [--normalize] [options]

Runs encode_image: preprocessed pixels (float32 .npy of shape [N, 3, R, R]) or PNG/JPEG files (resized,
center-cropped and normalised as the reference's preprocess) → image features [N, embed_dim] (float32).

Options:
  --pixels FILE      float32 .npy pixels, already preprocessed
  --out FILE         write a float32 .npy [N, embed_dim] (default: JSON on stdout)
  --normalize        L2-normalise each row (what forward() does before the logits)
  --batch-size N     images per forward pass (default 16)
${MODEL_HELP}`,

  async run(argv, io) {
    const { values, positionals } = parse(argv, {
      ...MODEL_OPTIONS, pixels: { type: "string" }, out: { type: "string" }, normalize: { type: "boolean" },
      "batch-size": { type: "string" },
    }, true);
    if (values.help) return io.stdout.write(`${this.help}\n`);
    if (values.pixels !== undefined && positionals.length) throw new UsageError("give either --pixels or image files, not both");
    if (values.pixels === undefined && !positionals.length) throw new UsageError("missing --pixels or image files");
    const batch = integer(values["batch-size"], "--batch-size", 1, DEFAULT_MAX_BATCH) ?? 16;

    const pixels = values.pixels !== undefined ? readPixels(io, values.pixels) : undefined;
    const { model } = await openModel(io, values, "image");
    try {
      let features: Tensor;
      if (pixels) {
        features = wrap(`--pixels "${values.pixels}"`, () =>
          batched(io, "encoding images", pixels.shape[0], Math.min(batch, model.maxBatch), (s, e) => model.encodeImage(rowsOf(pixels, s, e))));
      } else {
        const load = await imageLoader(io, model.config.imageResolution, positionals);
        features = wrap("images", () =>
          batched(io, "encoding images", positionals.length, Math.min(batch, model.maxBatch), (s, e) => model.encodeImage(load(positionals.slice(s, e)))));
      }
      if (values.normalize) features = normalize(features);
      if (values.out !== undefined) return writeTensor(io, values.out, features);
      const E = features.shape[1];
      const row = (i: number) => f32Json(features.data.subarray(i * E, (i + 1) * E));
      const items = pixels
        ? Array.from({ length: features.shape[0] }, (_, i) => row(i))
        : positionals.map((p, i) => `{"image":${JSON.stringify(p)},"embedding":${row(i)}}`);
      io.stdout.write(`[\n${items.join(",\n")}\n]\n`);
    } finally {
      model.dispose();
    }
  },
};
