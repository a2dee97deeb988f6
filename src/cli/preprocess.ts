import { integer, parse, required } from "./args.js";
import { loadImages, usageIfEmpty, writeTensor, type Command } from "./common.js";

export const preprocessCommand: Command = {
  name: "preprocess",
  summary: "images → normalised pixels .npy, as the reference's preprocess",
  help: `Usage:
  clip-ts preprocess <image>... [--size N] --out x.npy

Resizes the short side to N (bicubic), center-crops N×N, converts to RGB and normalises with CLIP's mean and
std, as the reference's transform; writes float32 [N_images, 3, N, N].

Options:
  --size N    output side (default 224; 336 for ViT-L/14@336px; the embedded tiny models use 64)
  --out FILE  the .npy to write`,

  async run(argv, io) {
    const { values, positionals } = parse(argv, { size: { type: "string" }, out: { type: "string" } }, true);
    if (values.help) return io.stdout.write(`${this.help}\n`);
    usageIfEmpty(positionals, "image files");
    const out = required(values.out, "--out");
    const size = integer(values.size, "--size", 1, 8192) ?? 224;
    writeTensor(io, out, await loadImages(io, positionals, size, true));
  },
};
