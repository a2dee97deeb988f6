import { parse, required } from "./args.js";
import { f32Json, MODEL_HELP, MODEL_OPTIONS, openModel, readPixels, readTokens, wrap, writeTensor, type Command } from "./common.js";

export const logits: Command = {
  name: "logits",
  summary: "logits_per_image of .npy pixels against .npy token ids",
  help: `Usage:
  clip-ts logits --pixels x.npy --tokens t.npy [--out l.npy] [options]

Runs the model's forward(): logits_per_image [N_images, N_texts] = exp(logit_scale)·cos(image, text).

Options:
  --pixels FILE      float32 .npy pixels [N, 3, R, R], already preprocessed
  --tokens FILE      int32/int64 .npy token ids [N, context_length]
  --out FILE         write a float32 .npy (default: JSON rows on stdout)
${MODEL_HELP}`,

  async run(argv, io) {
    const { values } = parse(argv, { ...MODEL_OPTIONS, pixels: { type: "string" }, tokens: { type: "string" }, out: { type: "string" } }, false);
    if (values.help) return io.stdout.write(`${this.help}\n`);
    const pixels = readPixels(io, required(values.pixels, "--pixels"));
    const tokens = readTokens(io, required(values.tokens, "--tokens"));
    const { model } = await openModel(io, values);
    try {
      const { logitsPerImage: l } = wrap("logits", () => model.forward(pixels, tokens));
      if (values.out !== undefined) return writeTensor(io, values.out, l);
      const [I, T] = l.shape;
      const rows = Array.from({ length: I }, (_, i) => f32Json(l.data.subarray(i * T, (i + 1) * T)));
      io.stdout.write(`[\n${rows.join(",\n")}\n]\n`);
    } finally {
      model.dispose();
    }
  },
};
