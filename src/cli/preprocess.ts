import { integer, parse, required } from "./args.js";
import { imageLoader, usageIfEmpty, writeOutput, type Command } from "./common.js";
import { writeNpy } from "../npy.js";
import { Progress } from "./progress.js";

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
    const load = await imageLoader(io, size, positionals, true);
    // image by image into the file, so that memory holds one image's pixels however many there are
    const header = writeNpy({ data: new Float32Array(0), shape: [positionals.length, 3, size, size] });
    const bar = new Progress(io.stderr, "preprocessing", positionals.length);
    try {
      writeOutput(io, out, (file) => {
        file.write(header);
        positionals.forEach((p, i) => {
          const { data } = load([p]);
          file.write(new Uint8Array(data.buffer, data.byteOffset, data.byteLength)); // float32 little-endian, as '<f4'
          bar.update(i + 1);
        });
      });
    } finally {
      bar.finish();
    }
  },
};
