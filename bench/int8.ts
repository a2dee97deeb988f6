// `npm run bench -- --int8 [--model vit-b-32,rn50] [--threads 1,2] [--runs N]`: precision "int8" against "f32" on
// the wasm backend, batch 1, image / 77-token text / short prompt, and ONNX Runtime Web on the dynamically quantized
// (q8) export where it is there (.cache/onnx/<model>.{image,text}.q8.onnx, made by tools/onnx/export_onnx.py --q8,
// and onnxruntime-web from npm run bench:setup); prints a markdown table. Each engine × thread count runs in a
// process of its own (ORT-web fixes its thread pool at its first session); the rounds alternate the engines, so a
// slow spell of the machine falls on all alike. With the exported weights (.cache/onnx/<model>.safetensors) every
// engine computes the same function, and each row's cosine to clip-ts f32 is shown.

import { spawnSync } from "node:child_process";
import { readFile } from "node:fs/promises";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { createBackend, loadModel } from "../src/clip.js";
import { buildModel, type CLIP } from "../src/model.js";
import type { Tensor } from "../src/tensor.js";
import { randomImages, randomStateDict, tokenRows } from "./inputs.js";
import { loadSpec, MODEL_IDS, present, type ModelSpec } from "./models.js";
import { loadPeer, type Ort } from "./peers.js";

const ENGINES = ["clip-ts wasm f32", "clip-ts wasm int8", "ORT-web q8"] as const;
type Engine = (typeof ENGINES)[number];
const INPUTS = ["image", "text 77 tokens", "text short"] as const;
type Input = (typeof INPUTS)[number];
interface Job { model: string; engine: Engine; threads: number; runs: number }
type Result = { ok: true; ms: Record<Input, number[]>; cpuMs: Record<Input, number[]>; rows: Record<Input, number[]> } | { ok: false; reason: string };

interface Runner { run(input: Input): Promise<Float32Array>; dispose(): Promise<void> }

async function clipTs(spec: ModelSpec, threads: number, precision: "f32" | "int8"): Promise<Runner> {
  const model: CLIP = present(spec.files.weights)
    ? await loadModel(spec.files.weights, { threads, precision })
    : buildModel(randomStateDict(spec), await createBackend({ threads }), { precision });
  const { image_resolution: R, context_length: L } = spec.config;
  const image = randomImages(1, R), full = tokenRows("full", 1, L), short = tokenRows("short", 1, L);
  return {
    run: async (input) => (input === "image" ? model.encodeImage(image)
      : model.encodeText({ data: input === "text short" ? short : full, shape: [1, L] })).data,
    dispose: async () => model.dispose(),
  };
}

async function ortQ8(spec: ModelSpec, threads: number): Promise<Runner> {
  const files = [spec.files.image, spec.files.text].map((f) => f.replace(/\.onnx$/, ".q8.onnx"));
  const missing = files.filter((f) => !existsSync(f));
  if (missing.length) throw new Error(`${missing.join(", ")} missing: run /usr/bin/python3 tools/onnx/export_onnx.py with its q8 export`);
  const ort = loadPeer<Ort>("onnxruntime-web");
  ort.env.wasm.numThreads = threads;
  ort.env.wasm.simd = true;
  const options = { executionProviders: ["wasm"], graphOptimizationLevel: "all" };
  const [img, txt] = await Promise.all(files.map(async (f) => ort.InferenceSession.create(new Uint8Array(await readFile(f)), options)));
  const { image_resolution: R, context_length: L } = spec.config;
  const image = randomImages(1, R), full = tokenRows("full", 1, L), short = tokenRows("short", 1, L);
  const features = (out: Record<string, { data: unknown }>) => out.features.data as Float32Array;
  return {
    run: async (input) => features(input === "image"
      ? await img.run({ image: new ort.Tensor("float32", image.data, image.shape) })
      : await txt.run({ text: new ort.Tensor("int64", input === "text short" ? short : full, [1, L]) })),
    dispose: async () => {
      await img.release();
      await txt.release();
    },
  };
}

async function runJob(job: Job): Promise<Result> {
  const spec = loadSpec(job.model);
  let runner: Runner;
  try {
    runner = job.engine === "ORT-web q8" ? await ortQ8(spec, job.threads) : await clipTs(spec, job.threads, job.engine.endsWith("int8") ? "int8" : "f32");
  } catch (e) {
    return { ok: false, reason: (e as Error).message.split("\n")[0] };
  }
  const ms = {} as Record<Input, number[]>, cpuMs = {} as Record<Input, number[]>, rows = {} as Record<Input, number[]>;
  for (const input of INPUTS) {
    let out: Float32Array = new Float32Array(0);
    const warm = performance.now();
    for (let i = 0; i < 3 || performance.now() - warm < 500; i++) out = await runner.run(input);
    ms[input] = [];
    cpuMs[input] = [];
    for (let i = 0; i < job.runs; i++) {
      const t0 = performance.now(), c0 = process.cpuUsage();
      await runner.run(input);
      const c = process.cpuUsage(c0);
      ms[input].push(performance.now() - t0);
      cpuMs[input].push((c.user + c.system) / 1000);
    }
    rows[input] = Array.from(out);
  }
  await runner.dispose();
  return { ok: true, ms, cpuMs, rows };
}

const median = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];

function cosine(a: number[], b: number[]): number {
  let ab = 0, aa = 0, bb = 0;
  for (let i = 0; i < a.length; i++) {
    ab += a[i] * b[i];
    aa += a[i] * a[i];
    bb += b[i] * b[i];
  }
  return ab / Math.sqrt(aa * bb);
}

export async function int8Bench(argv: string[]): Promise<void> {
  let models = ["vit-b-32"], threads = [1, 2], runs = 6, rounds = 2;
  for (let i = 0; i < argv.length; i += 2) {
    const v = argv[i + 1] ?? "";
    if (argv[i] === "--model") models = v.split(",").filter((m) => m in MODEL_IDS);
    else if (argv[i] === "--threads") threads = v.split(",").map(Number);
    else if (argv[i] === "--runs") runs = Number(v);
    else if (argv[i] === "--rounds") rounds = Number(v);
    else throw new Error(`bench --int8: unknown option ${argv[i]} (--model, --threads, --runs, --rounds)`);
  }
  const self = fileURLToPath(import.meta.url);
  const lines = [
    "| model | input | t | clip-ts f32 ms | clip-ts int8 ms | f32 / int8 | int8 CPU-time ratio | ORT-web q8 ms | int8 / q8 speed | cosine to f32: int8, q8 |",
    "|---|---|---|---|---|---|---|---|---|---|",
  ];
  const notes: string[] = [];
  for (const model of models) {
    for (const t of threads) {
      const all = new Map<Engine, Result[]>();
      for (let r = 0; r < rounds; r++) {
        for (const engine of ENGINES) {
          const job: Job = { model, engine, threads: t, runs: Math.ceil(runs / rounds) };
          const child = spawnSync(process.execPath, [self, "--int8-job", JSON.stringify(job)], { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"], maxBuffer: 1 << 26 });
          const last = child.stdout.trim().split("\n").pop() ?? "";
          all.set(engine, [...(all.get(engine) ?? []), last.startsWith("{") ? JSON.parse(last) as Result : { ok: false, reason: `exit ${child.status}` }]);
        }
      }
      const merged = (e: Engine) => {
        const rs = all.get(e)!;
        const bad = rs.find((x) => !x.ok);
        if (bad && !bad.ok) {
          notes.push(`${e} ${MODEL_IDS[model]} t${t}: not measured: ${bad.reason}`);
          return null;
        }
        const ok = rs as Extract<Result, { ok: true }>[];
        const cat = (k: "ms" | "cpuMs", i: Input) => ok.flatMap((x) => x[k][i]);
        return { ms: (i: Input) => median(cat("ms", i)), cpu: (i: Input) => median(cat("cpuMs", i)), row: (i: Input) => ok[0].rows[i] };
      };
      const [f32, int8, q8] = ENGINES.map(merged);
      for (const input of INPUTS) {
        const fmt = (x: number | undefined) => (x === undefined ? "–" : x.toFixed(1));
        const a = f32?.ms(input), b = int8?.ms(input), c = q8?.ms(input);
        const cos = (e: typeof int8) => (e && f32 ? cosine(e.row(input), f32.row(input)).toFixed(5) : "–");
        lines.push(`| ${MODEL_IDS[model]} | ${input} | ${t} | ${fmt(a)} | ${fmt(b)} | ${a && b ? (a / b).toFixed(2) + "×" : "–"} | ` +
          `${f32 && int8 && t === 1 ? (f32.cpu(input) / int8.cpu(input)).toFixed(2) + "×" : "–"} | ${fmt(c)} | ${b && c ? (c / b).toFixed(2) + "×" : "–"} | ${cos(int8)}, ${cos(q8)} |`);
      }
    }
  }
  console.log([...lines, "", ...notes.map((n) => `- ${n}`)].join("\n"));
}

if (process.argv[2] === "--int8-job") {
  process.stdout.write("\n" + JSON.stringify(await runJob(JSON.parse(process.argv[3]) as Job)) + "\n");
  process.exit(0);
} else if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  await int8Bench(process.argv.slice(2));
}
