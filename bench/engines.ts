// One engine measured in a process of its own (so each has its own peak RSS, and ORT-web its own thread pool,
// which it fixes at its first session): clip-ts on either backend, ONNX Runtime Web (wasm) or Node (CPU EP).

import { readFile } from "node:fs/promises";
import { performance } from "node:perf_hooks";
import type { Backend } from "../src/backend/backend.js";
import { createBackend, loadModel, type BackendName } from "../src/clip.js";
import { buildModel, type CLIP } from "../src/model.js";
import type { Tensor } from "../src/tensor.js";
import { randomImages, randomStateDict, tokenRows, type TextKind } from "./inputs.js";
import { loadSpec, present, type ModelSpec } from "./models.js";
import { loadPeer, type Ort } from "./peers.js";

export const ENGINES = ["clip-ts wasm", "clip-ts ts", "ORT-web", "ORT-web q8", "ORT-node"] as const;
export type EngineName = (typeof ENGINES)[number];

export type InputKind = "image" | `text-${TextKind}`;
export interface Cell { input: InputKind; batch: number }

export interface Job {
  model: string; // a key of MODEL_IDS
  engine: EngineName;
  threads: number;
  cells: Cell[];
  /** untimed runs first: at least this many, and (when not 0) for at least WARMUP_MS */
  warmup: number;
  runs: number;
  /** clip-ts: the exported safetensors ("cache") or weights made here ("random") */
  weights: "cache" | "random";
}

export interface CellResult extends Cell {
  times: number[]; // ms, in run order
  /** the features of the first row, to check that the engines compute the same function */
  firstRow: number[];
}

export type JobResult =
  | {
    ok: true;
    loadMs: number;
    cells: CellResult[];
    /** peak resident set of the whole process after the first cell (load + warm-up + runs), MiB */
    peakRssAfterFirstMiB: number;
    peakRssMiB: number;
    /** the backend's WebAssembly memory, where it exposes one, MiB */
    wasmMemoryMiB?: number;
  }
  | { ok: false; reason: string };

interface Runner {
  image(x: Tensor): Promise<Float32Array>;
  text(ids: BigInt64Array, n: number, context: number): Promise<Float32Array>;
  wasmMemoryBytes?(): number | undefined;
  dispose(): Promise<void>;
}

class Unavailable extends Error {}

async function clipTsRunner(spec: ModelSpec, backend: BackendName, threads: number, weights: Job["weights"]): Promise<Runner> {
  let model: CLIP;
  try {
    model = weights === "cache"
      ? await loadModel(spec.files.weights, { backend, threads })
      : buildModel(randomStateDict(spec), await createBackend({ backend, threads }));
  } catch (e) {
    throw new Unavailable(`clip-ts ${backend} backend: ${(e as Error).message}`);
  }
  return {
    image: async (x) => model.encodeImage(x).data,
    text: async (ids, n, context) => model.encodeText({ data: ids, shape: [n, context] }).data,
    wasmMemoryBytes: () => wasmMemory(model.backend),
    dispose: async () => model.dispose(),
  };
}

/** The WebAssembly.Memory the wasm backend keeps in its `memory` field (not part of the Backend interface). */
function wasmMemory(backend: Backend): number | undefined {
  const memory = (backend as unknown as { memory?: unknown }).memory;
  return memory instanceof WebAssembly.Memory ? memory.buffer.byteLength : undefined;
}

function importPeer(name: string): Ort {
  try {
    return loadPeer<Ort>(name);
  } catch (e) {
    throw new Unavailable((e as Error).message.split("\n")[0]);
  }
}

async function ortRunner(spec: ModelSpec, engine: "ORT-web" | "ORT-web q8" | "ORT-node", threads: number): Promise<Runner> {
  const q8 = engine === "ORT-web q8";
  const files = q8 ? { image: spec.files.imageQ8, text: spec.files.textQ8 } : spec.files;
  const missing = [files.image, files.text].filter((f) => !present(f));
  const make = q8 ? "tools/onnx/quantize_q8.py (after export_onnx.py)" : "tools/onnx/export_onnx.py";
  if (missing.length) throw new Unavailable(`${missing.join(", ")} missing: run /usr/bin/python3 ${make}`);
  let ort: Ort, options: Record<string, unknown>;
  if (engine !== "ORT-node") {
    ort = importPeer("onnxruntime-web");
    ort.env.wasm.numThreads = threads; // read once, when the first session starts the runtime
    ort.env.wasm.simd = true;
    options = { executionProviders: ["wasm"], graphOptimizationLevel: "all" };
  } else {
    ort = importPeer("onnxruntime-node");
    options = {
      executionProviders: ["cpu"], graphOptimizationLevel: "all",
      intraOpNumThreads: threads, interOpNumThreads: 1, executionMode: "sequential",
    };
  }
  // ORT-web cannot read files in Node: both get the bytes
  const imageSession = await ort.InferenceSession.create(new Uint8Array(await readFile(files.image)), options);
  const textSession = await ort.InferenceSession.create(new Uint8Array(await readFile(files.text)), options);
  const features = (out: Record<string, { data: unknown }>) => out.features.data as Float32Array;
  return {
    image: async (x) => features(await imageSession.run({ image: new ort.Tensor("float32", x.data, x.shape) })),
    text: async (ids, n, context) => features(await textSession.run({ text: new ort.Tensor("int64", ids, [n, context]) })),
    dispose: async () => {
      await imageSession.release();
      await textSession.release();
    },
  };
}

const WARMUP_MS = 500;

function peakRssMiB(): number {
  return process.resourceUsage().maxRSS / 1024; // KiB on Linux
}

export async function runJob(job: Job): Promise<JobResult> {
  const spec = loadSpec(job.model);
  const { image_resolution: R, context_length: L, embed_dim: E } = spec.config;
  const t0 = performance.now();
  let runner: Runner;
  try {
    runner = job.engine === "clip-ts wasm" ? await clipTsRunner(spec, "wasm", job.threads, job.weights)
      : job.engine === "clip-ts ts" ? await clipTsRunner(spec, "ts", job.threads, job.weights)
      : await ortRunner(spec, job.engine, job.threads);
  } catch (e) {
    if (e instanceof Unavailable) return { ok: false, reason: e.message };
    throw e;
  }
  const loadMs = performance.now() - t0;

  const maxBatch = Math.max(...job.cells.map((c) => c.batch));
  const images = randomImages(maxBatch, R);
  const rows = { short: tokenRows("short", maxBatch, L), full: tokenRows("full", maxBatch, L) };

  const cells: CellResult[] = [];
  let peakRssAfterFirstMiB = 0;
  for (const cell of job.cells) {
    const n = cell.batch;
    const once = cell.input === "image"
      ? () => runner.image({ data: images.data.subarray(0, n * 3 * R * R), shape: [n, 3, R, R] })
      : () => runner.text(rows[cell.input === "text-short" ? "short" : "full"].subarray(0, n * L), n, L);
    let out: Float32Array = new Float32Array(0);
    // at least `warmup` runs and WARMUP_MS: the first runs of a fresh process pay for V8's background compilers
    // (JavaScript and wasm tier-up), which take a core from the threads; on a short prompt that lasts ~10 runs
    const warmStart = performance.now();
    for (let i = 0; i < job.warmup || (job.warmup > 0 && performance.now() - warmStart < WARMUP_MS); i++) out = await once();
    const times: number[] = [];
    for (let i = 0; i < job.runs; i++) {
      const start = performance.now();
      out = await once();
      times.push(performance.now() - start);
    }
    cells.push({ ...cell, times, firstRow: Array.from(out.subarray(0, E)) });
    if (cells.length === 1) peakRssAfterFirstMiB = peakRssMiB();
    process.stderr.write(`  ${job.engine} ${spec.name} ${cell.input} ×${n} t${job.threads}: ${times.map((t) => t.toFixed(0)).join(" ")} ms\n`);
  }
  const wasmBytes = runner.wasmMemoryBytes?.();
  await runner.dispose();
  return {
    ok: true, loadMs, cells, peakRssAfterFirstMiB, peakRssMiB: peakRssMiB(),
    ...(wasmBytes !== undefined ? { wasmMemoryMiB: wasmBytes / 2 ** 20 } : {}),
  };
}
