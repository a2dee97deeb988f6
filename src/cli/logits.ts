import { DEFAULT_MAX_BATCH, type CLIP, type TokenTensor } from "../model.js";
import type { Tensor } from "../tensor.js";
import { integer, parse, required } from "./args.js";
import {
  batched, f32Json, MODEL_HELP, MODEL_OPTIONS, openModel, readPixels, readTokens, rowsOf, wrap, writeTensor, type Command, type Io,
} from "./common.js";

export const logits: Command = {
  name: "logits",
  summary: "logits_per_image of .npy pixels against .npy token ids",
  help: `Usage:
  clip-ts logits --pixels x.npy --tokens t.npy [--out l.npy] [options]

Runs the model's forward(): logits_per_image [N_images, N_texts] = exp(logit_scale)·cos(image, text), with
each encoder run over batches of rows.

Options:
  --pixels FILE      float32 .npy pixels [N, 3, R, R], already preprocessed
  --tokens FILE      int32/int64 .npy token ids [N, context_length]
  --out FILE         write a float32 .npy (default: JSON rows on stdout)
  --batch-size N     pixel or token rows per forward pass (default 16)
${MODEL_HELP}`,

  async run(argv, io) {
    const { values } = parse(argv, {
      ...MODEL_OPTIONS, pixels: { type: "string" }, tokens: { type: "string" }, out: { type: "string" },
      "batch-size": { type: "string" },
    }, false);
    if (values.help) return io.stdout.write(`${this.help}\n`);
    const batch = integer(values["batch-size"], "--batch-size", 1, DEFAULT_MAX_BATCH) ?? 16;
    const pixels = readPixels(io, required(values.pixels, "--pixels"));
    const tokens = readTokens(io, required(values.tokens, "--tokens"));
    const { model } = await openModel(io, values);
    try {
      const l = batchedLogits(io, model, pixels, tokens, batch, [`--pixels "${values.pixels}"`, `--tokens "${values.tokens}"`]);
      if (values.out !== undefined) return writeTensor(io, values.out, l);
      const [I, T] = l.shape;
      const rows = Array.from({ length: I }, (_, i) => f32Json(l.data.subarray(i * T, (i + 1) * T)));
      io.stdout.write(`[\n${rows.join(",\n")}\n]\n`);
    } finally {
      model.dispose();
    }
  },
};

/**
 * forward()'s logits_per_image with each encoder run over batches of `batch` rows (at most the model's maxBatch),
 * so any number of rows goes through. `what` names the pixels and the tokens in errors.
 */
export function batchedLogits(io: Io, model: CLIP, pixels: Tensor, tokens: TokenTensor, batch: number, what: [string, string]): Tensor {
  const b = Math.min(batch, model.maxBatch);
  const image = wrap(what[0], () => batched(io, "encoding images", pixels.shape[0], b, (s, e) => model.encodeImage(rowsOf(pixels, s, e))));
  const text = wrap(what[1], () => batched(io, "encoding texts", tokens.shape[0], b, (s, e) => model.encodeText(rowsOf(tokens, s, e))));
  return model.logits(image, text).logitsPerImage;
}
