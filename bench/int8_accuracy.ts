// How far precision "int8" moves the embeddings: the cosine of each int8 embedding to the f32 one, for a full-size
// ViT-B/32 on real photos and on short and 77-token texts, and for the embedded models; with a held-out set
// (tools/train/render_heldout.py), the embedded models' zero-shot accuracy in both precisions. Not a test
// (test/int8_model.test.ts asserts the small models); prints a markdown table.
//   npm run build:ts && node dist/bench/int8_accuracy.js [--model DIR] [--photos DIR] [--heldout DIR] [--threads N]
// Defaults: /tmp/fullsize/open_clip_ViT-B-32 (an open_clip folder; seeded random weights are a harsher test than
// trained ones: nothing in them is smooth or low-rank), /tmp/photos/set, no held-out set, 2 threads.

import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { embeddedModelPaths, load, type LoadedClip } from "../src/clip.js";
import { normalize, scaledSimilarity } from "../src/model.js";
import type { Tensor } from "../src/tensor.js";
import { classEmbeddings } from "../src/zero_shot.js";
import { ROOT } from "./models.js";

const args = new Map<string, string>();
for (let i = 2; i + 1 < process.argv.length; i += 2) args.set(process.argv[i], process.argv[i + 1]);
const modelDir = args.get("--model") ?? "/tmp/fullsize/open_clip_ViT-B-32";
const photosDir = args.get("--photos") ?? "/tmp/photos/set";
const heldout = args.get("--heldout");
const threads = Number(args.get("--threads") ?? 2);

export function rowCosines(a: Tensor, b: Tensor): number[] {
  const [N, D] = a.shape;
  return Array.from({ length: N }, (_, n) => {
    let ab = 0, aa = 0, bb = 0;
    for (let d = 0; d < D; d++) {
      const x = a.data[n * D + d], y = b.data[n * D + d];
      ab += x * y;
      aa += x * x;
      bb += y * y;
    }
    return ab / Math.sqrt(aa * bb);
  });
}

function stack(ts: Tensor[]): Tensor {
  const one = ts[0].data.length, data = new Float32Array(ts.length * one);
  ts.forEach((t, i) => data.set(t.data, i * one));
  return { data, shape: [ts.length, ...ts[0].shape.slice(1)] };
}

/** Encodes in batches of 8 (the full-size model's activations stay small). */
function encode(fn: (x: Tensor) => Tensor, items: Tensor[]): Tensor {
  const out: Tensor[] = [];
  for (let i = 0; i < items.length; i += 8) {
    const e = fn(stack(items.slice(i, i + 8)));
    for (let r = 0; r < e.shape[0]; r++) out.push({ data: e.data.subarray(r * e.shape[1], (r + 1) * e.shape[1]), shape: [1, e.shape[1]] });
  }
  return stack(out);
}

const SHORT = ["a photo of a dog", "a cat", "a red car parked on the street", "a bowl of soup", "two people walking on a beach", "a city at night", "a tree", "a photo of a mountain lake"];
const LONG_BASE = "a detailed photograph of a crowded market street in the late afternoon with people carrying baskets of fruit and vegetables while children play near a fountain and an old man sells newspapers from a wooden stall beside a red bicycle leaning against a stone wall covered in ivy and posters";
const LONG = Array.from({ length: 8 }, (_, i) => `${["", "blurry ", "black and white ", "panoramic "][i % 4]}${LONG_BASE.split(" ").slice(i).join(" ")} ${LONG_BASE}`);

const rows: string[] = [];
const stat = (c: number[]) => `${Math.min(...c).toFixed(5)} | ${(c.reduce((a, b) => a + b, 0) / c.length).toFixed(5)}`;

async function compare(label: string, path: string, images: Uint8Array[]): Promise<void> {
  const f32 = await load(path, { threads });
  const int8 = await load(path, { threads, precision: "int8" });
  const px = images.map((b) => f32.preprocess(b));
  const img = rowCosines(encode((x) => int8.model.encodeImage(x), px), encode((x) => f32.model.encodeImage(x), px));
  rows.push(`| ${label} | images (${images.length}) | ${stat(img)} |`);
  for (const [what, texts] of [["short texts", SHORT], ["77-token texts", LONG]] as const) {
    const tok = f32.tokenize(texts, { truncate: true });
    const full = what.startsWith("77") ? [...tok.data.keys()].filter((i) => i % 77 === 76).every((i) => Number(tok.data[i]) !== 0) : true;
    const c = rowCosines(int8.model.encodeText(tok), f32.model.encodeText(tok));
    rows.push(`| ${label} | ${what} (${texts.length}${full ? "" : ", not all 77 tokens"}) | ${stat(c)} |`);
  }
  f32.model.dispose();
  int8.model.dispose();
}

if (existsSync(modelDir) && existsSync(photosDir)) {
  const photos = readdirSync(photosDir).filter((f) => /\.(png|jpe?g)$/i.test(f)).sort().map((f) => new Uint8Array(readFileSync(join(photosDir, f))));
  await compare("ViT-B/32 (random weights)", modelDir, photos);
} else {
  rows.push(`| ViT-B/32 | not measured: ${modelDir} or ${photosDir} missing | | |`);
}
const examples = readdirSync(join(ROOT, "examples")).filter((f) => f.endsWith(".png")).sort().map((f) => new Uint8Array(readFileSync(join(ROOT, "examples", f))));
await compare("clip-tiny-rn (embedded)", (await embeddedModelPaths()).weights, examples);
await compare("clip-tiny-vit (embedded)", join(ROOT, "weights/clip-tiny-vit.safetensors"), examples);

console.log("| model | input | min cosine int8 : f32 | mean |\n|---|---|---|---|\n" + rows.join("\n"));

// zero-shot on the held-out set, as scripts/eval-embedded.mjs measures it, in both precisions
if (heldout) {
  const { colours, shapes, samples } = JSON.parse(readFileSync(join(heldout, "labels.json"), "utf8")) as {
    colours: string[]; shapes: string[]; samples: { file: string; colour: string; shape: string }[];
  };
  const tasks = {
    colour: { labels: colours, template: "a photo of a {} object", truth: (s: typeof samples[0]) => s.colour },
    shape: { labels: shapes, template: "a photo of a {}", truth: (s: typeof samples[0]) => s.shape },
    pair: { labels: shapes.flatMap((sh) => colours.map((c) => `${c} ${sh}`)), template: "a photo of a {}", truth: (s: typeof samples[0]) => `${s.colour} ${s.shape}` },
  };
  const out = ["", `| zero-shot, ${samples.length} held-out images | precision | colour | shape | pair |`, "|---|---|---|---|---|"];
  for (const arch of ["rn", "vit"]) {
    for (const precision of ["f32", "int8"] as const) {
      const clip: LoadedClip = await load(join(ROOT, `weights/clip-tiny-${arch}.safetensors`), { threads, precision });
      const px = samples.map((s) => clip.preprocess(new Uint8Array(readFileSync(join(heldout, s.file)))));
      const images = normalize(encode((x) => clip.model.encodeImage(x), px));
      const acc = Object.values(tasks).map((t) => {
        const logits = scaledSimilarity(clip.model.logit_scale, images, classEmbeddings(clip.model, clip.tokenizer, t.labels, { templates: [t.template] })).data;
        const L = t.labels.length;
        let right = 0;
        samples.forEach((s, i) => {
          const row = logits.subarray(i * L, (i + 1) * L);
          if (t.labels[row.indexOf(Math.max(...row))] === t.truth(s)) right++;
        });
        return `${(100 * right / samples.length).toFixed(2)}%`;
      });
      out.push(`| clip-tiny-${arch} | ${precision} | ${acc.join(" | ")} |`);
      clip.model.dispose();
    }
  }
  console.log(out.join("\n"));
}
