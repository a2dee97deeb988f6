// `node dist/bench/memory.js [--model vit-b-32|rn50] [--threads 1] [--runs 7] [--rounds 3] [--batch 1]`: the speed of
// weights: "fp16" (linear weights kept f16 in wasm memory, widened per panel inside the GEMM) next to the f32 path,
// on the same full-size fp16 safetensors (bench/load.ts writes it), in one process: image, 77-token text and the
// short prompt, rounds alternating between the two models, median per cell. Checks the bits are the same.
import { performance } from "node:perf_hooks";
import { loadModel } from "../src/clip.js";
import type { CLIP } from "../src/model.js";
import { randomImages, tokenRows, type TextKind } from "./inputs.js";
import { loadFiles } from "./load.js";
import { loadSpec, MODEL_IDS } from "./models.js";

const args = process.argv.slice(2);
const opt = (name: string, d: string) => (args.includes(name) ? args[args.indexOf(name) + 1]! : d);
const model = opt("--model", "vit-b-32"), threads = Number(opt("--threads", "1"));
const runs = Number(opt("--runs", "7")), rounds = Number(opt("--rounds", "3")), batch = Number(opt("--batch", "1"));
const say = (s: string) => process.stderr.write(s + "\n");

const file = loadFiles(model, say)["fp16 safetensors"]!;
const spec = loadSpec(model);
const models: Record<"fp32" | "fp16", CLIP> = {
  fp32: await loadModel(file, { threads }),
  fp16: await loadModel(file, { threads, weights: "fp16" }),
};
const weightsMiB = (m: CLIP) => (m.backend as unknown as { top: number }).top / 2 ** 20;
const image = randomImages(batch, spec.config.image_resolution);
const text = (kind: TextKind) => ({ data: tokenRows(kind, batch, spec.config.context_length), shape: [batch, spec.config.context_length] });
const cells: Record<string, (m: CLIP) => Float32Array> = {
  image: (m) => m.encodeImage(image).data,
  "text, 77 tokens": (m) => m.encodeText(text("full")).data,
  "text, short prompt": (m) => m.encodeText(text("short")).data,
};

const times: Record<string, Record<string, number[]>> = {};
for (const [cell, run] of Object.entries(cells)) {
  const a = run(models.fp32), b = run(models.fp16);
  const same = Buffer.compare(Buffer.from(a.buffer, a.byteOffset, a.byteLength), Buffer.from(b.buffer, b.byteOffset, b.byteLength)) === 0;
  if (!same) throw new Error(`${cell}: weights fp16 gave other bits than fp32`);
  times[cell] = { fp32: [], fp16: [] };
  for (let r = 0; r < rounds; r++) {
    for (const w of ["fp32", "fp16"] as const) {
      for (let i = 0; i < runs; i++) {
        const t = performance.now();
        run(models[w]);
        times[cell]![w]!.push(performance.now() - t);
      }
    }
  }
}
const median = (xs: number[]) => xs.slice().sort((p, q) => p - q)[xs.length >> 1]!;
const out = [
  `${MODEL_IDS[model]} from fp16 safetensors (seeded random weights), wasm, ${threads} thread${threads > 1 ? "s" : ""}, batch ${batch}: `
  + `median of ${rounds}×${runs} runs per cell, rounds alternating; the same bits in every cell. Wasm weights: fp32 `
  + `${weightsMiB(models.fp32).toFixed(0)} MiB, fp16 ${weightsMiB(models.fp16).toFixed(0)} MiB.`,
  "",
  "| input | weights fp32 | weights fp16 | fp16 speed ÷ fp32 |",
  "|---|---|---|---|",
];
for (const [cell, t] of Object.entries(times)) {
  const a = median(t.fp32!), b = median(t.fp16!);
  out.push(`| ${cell} | ${a.toFixed(1)} ms | ${b.toFixed(1)} ms | ${(a / b).toFixed(2)}× |`);
}
console.log(out.join("\n"));
models.fp32.dispose();
models.fp16.dispose();
