// `npm run bench -- --load`: where loadModel's time and memory go, per weights format and towers, for a
// full-size model (seeded random weights written as fp32 and fp16 safetensors). Every measurement runs in a fresh
// child process (peak RSS is per process); the phases are the steps of loadModel, run one by one.

import { spawnSync } from "node:child_process";
import { mkdirSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import type { Backend } from "../src/backend/backend.js";
import type { WeightPrecision } from "../src/backend/backend.js";
import { createBackend, loadModel, modelFromCheckpoint, readCheckpoint } from "../src/clip.js";
import { foldBatchNorm } from "../src/kernels/batch_norm.js";
import type { Towers } from "../src/model.js";
import { numel, storedOf, type StateDict } from "../src/tensor.js";
import { writeSafetensors } from "../src/weights/safetensors.js";
import { randomStateDict } from "./inputs.js";
import { CACHE_DIR, loadSpec, present } from "./models.js";

export type LoadFormat = "fp32 safetensors" | "fp16 safetensors" | "fp16 .pt";
/** Each format loaded with f32 weights, and the fp16 ones also with `weights: "fp16"` (f16-resident). */
export const LOAD_FORMATS: readonly LoadFormat[] = ["fp32 safetensors", "fp16 safetensors", "fp16 .pt"];
export const LOAD_CELLS: readonly { format: LoadFormat; weights: WeightPrecision }[] = [
  { format: "fp32 safetensors", weights: "fp32" }, { format: "fp16 safetensors", weights: "fp32" },
  { format: "fp16 safetensors", weights: "fp16" }, { format: "fp16 .pt", weights: "fp32" }, { format: "fp16 .pt", weights: "fp16" },
];
/** The Python that writes the .pt (torch.save of the fp16 safetensors' tensors): the venv with safetensors. */
const PT_PYTHON = process.env.CLIP_TS_BENCH_PYTHON ?? "/root/.cache/hfvenv/bin/python";

export interface LoadJob {
  file: string;
  format: LoadFormat;
  towers: Towers;
  threads: number;
  /** loadModel's weights option (default "fp32") */
  weights?: WeightPrecision;
  /** "phases": loadModel's steps one by one, each timed; "api": loadModel itself */
  mode: "phases" | "api";
}

export interface LoadResult {
  ok: boolean;
  reason?: string;
  /** ms per phase, in order */
  ms: Record<string, number>;
  /** peak RSS (process maxRSS) after each phase, MiB; "start" before any */
  peakMiB: Record<string, number>;
  wasmMiB?: number;
  /** the part of wasm memory the weights take (its size may be larger: grown once to an upper bound, the rest
   *  never written, so never resident), MiB */
  weightsMiB?: number;
  /** what the model keeps in JavaScript (its own copies: embeddings, norms), MiB */
  ownMiB?: number;
}

const MiB = 2 ** 20;
const maxRssMiB = () => process.resourceUsage().maxRSS / 1024; // KiB on Linux

/** The random weights of `model` as fp32 and fp16 safetensors and an fp16 torch.save .pt, written once into the
 *  bench cache (the .pt by PyTorch, when PT_PYTHON has torch and safetensors; else that format is left out). */
export function loadFiles(model: string, say: (s: string) => void): Partial<Record<LoadFormat, string>> {
  const spec = loadSpec(model);
  const dir = join(CACHE_DIR, "..", "load");
  const stem = spec.name.replace(/[/@]/g, "-");
  const files = {
    "fp32 safetensors": join(dir, `${stem}.f32.safetensors`), "fp16 safetensors": join(dir, `${stem}.f16.safetensors`),
    "fp16 .pt": join(dir, `${stem}.f16.pt`),
  };
  if (!present(files["fp32 safetensors"]) || !present(files["fp16 safetensors"])) {
    say(`${spec.name}: writing seeded random weights to ${dir} (fp32 and fp16 safetensors)…`);
    mkdirSync(dir, { recursive: true });
    const sd = randomStateDict(spec);
    writeFileSync(files["fp32 safetensors"], writeSafetensors(sd, "F32"));
    writeFileSync(files["fp16 safetensors"], writeSafetensors(sd, "F16"));
  }
  if (!present(files["fp16 .pt"])) {
    const script = "import sys, torch; from safetensors.torch import load_file; torch.save(load_file(sys.argv[1]), sys.argv[2])";
    const r = spawnSync(PT_PYTHON, ["-c", script, files["fp16 safetensors"], files["fp16 .pt"]], { stdio: "inherit" });
    if (r.status !== 0) {
      say(`${spec.name}: no fp16 .pt (${PT_PYTHON} could not write it): that format is left out`);
      return { "fp32 safetensors": files["fp32 safetensors"], "fp16 safetensors": files["fp16 safetensors"] };
    }
  }
  return files;
}

/** Times the backend's prepare calls (the copy into wasm memory and the packing), leaving the backend as it is. */
function timePrepare(backend: Backend): { ms: number } {
  const acc = { ms: 0 };
  for (const name of ["prepareLinear", "prepareConv2d"] as const) {
    const original = backend[name].bind(backend) as (...a: unknown[]) => unknown;
    (backend as unknown as Record<string, unknown>)[name] = (...a: unknown[]) => {
      const t = performance.now();
      try {
        return original(...a);
      } finally {
        acc.ms += performance.now() - t;
      }
    };
  }
  return acc;
}

function wasmBytes(backend: Backend): number | undefined {
  const memory = (backend as unknown as { memory?: unknown }).memory;
  return memory instanceof WebAssembly.Memory ? memory.buffer.byteLength : undefined;
}

/** The end of the weights in wasm memory (the wasm backend's top), bytes. */
function weightsBytes(backend: Backend): number | undefined {
  const top = (backend as unknown as { top?: unknown }).top;
  return typeof top === "number" ? top : undefined;
}

/** The wasm figures of a loaded backend, in MiB. */
function wasmFigures(backend: Backend): Pick<LoadResult, "wasmMiB" | "weightsMiB"> {
  const wasm = wasmBytes(backend), weights = weightsBytes(backend);
  return { ...(wasm !== undefined ? { wasmMiB: wasm / MiB } : {}), ...(weights !== undefined ? { weightsMiB: weights / MiB } : {}) };
}

/** The tensors the model keeps in JavaScript (Params.own): embeddings and norms of the loaded towers. */
function ownKeys(sd: StateDict, towers: Towers): string[] {
  const image = (k: string) => k.startsWith("visual.");
  return [...sd.keys()].filter((k) => (towers === "both" || (towers === "image") === image(k))
    && /(^|\.)(ln_\w+|ln_\d)\.(weight|bias)$|(^|\.)(class_embedding|positional_embedding)$|^token_embedding\.weight$/.test(k));
}

/** Child: one load, phase by phase, or loadModel as a whole. */
export async function runLoadJob(job: LoadJob): Promise<LoadResult> {
  const ms: Record<string, number> = {}, peakMiB: Record<string, number> = { start: maxRssMiB() };
  const phase = <T>(name: string, fn: () => T): T => {
    const t = performance.now();
    const out = fn();
    ms[name] = performance.now() - t;
    peakMiB[name] = maxRssMiB();
    return out;
  };
  if (job.mode === "api") {
    const t = performance.now();
    const model = await loadModel(job.file, { towers: job.towers, threads: job.threads, weights: job.weights });
    ms.loadModel = performance.now() - t;
    peakMiB.loadModel = maxRssMiB();
    const figures = wasmFigures(model.backend);
    model.dispose();
    return { ok: true, ms, peakMiB, ...figures };
  }

  let t = performance.now();
  const backend = await createBackend({ threads: job.threads, weights: job.weights });
  ms.backend = performance.now() - t;
  peakMiB.backend = maxRssMiB();
  t = performance.now();
  // the header or zip directory and pickle only: the tensors are read by prepare, into wasm memory
  const ck = await readCheckpoint(job.file);
  ms.open = performance.now() - t;
  peakMiB.open = maxRssMiB();
  const prepare = timePrepare(backend);
  const model = phase("build", () => modelFromCheckpoint(ck, backend, { towers: job.towers }));
  ms.prepare = prepare.ms;
  const figures = wasmFigures(backend);
  const own = ownKeys(ck.stateDict, job.towers);
  // the token embedding is kept f16 when stored so (Params.ownTable)
  const ownBytes = (k: string) => numel(ck.stateDict.get(k)!.shape) * (k === "token_embedding.weight" && storedOf(ck.stateDict.get(k)!)?.dtype === "F16" ? 2 : 4);
  const ownMiB = own.reduce((a, k) => a + ownBytes(k), 0) / MiB;

  // Re-timed alone after the load (the peaks above are already taken): the BatchNorm fold and the model's own
  // copies, which the phases above contain.
  t = performance.now();
  for (const k of ck.stateDict.keys()) {
    const m = /^(.*)\.(bn(\d)|downsample\.1)\.weight$/.exec(k);
    if (!m || (job.towers === "text")) continue;
    const conv = ck.stateDict.get(m[3] ? `${m[1]}.conv${m[3]}.weight` : `${m[1]}.downsample.0.weight`)!;
    const bn = (s: string) => ck.stateDict.get(`${m[1]}.${m[2]}.${s}`)!.data;
    foldBatchNorm(conv.data, conv.shape[0], bn("weight"), bn("bias"), bn("running_mean"), bn("running_var"));
  }
  ms["  of which BatchNorm fold"] = performance.now() - t;
  t = performance.now();
  for (const k of own) {
    const t = ck.stateDict.get(k)!, stored = storedOf(t);
    if (k === "token_embedding.weight" && stored?.dtype === "F16") stored.copyTo(new Uint8Array(stored.byteLength));
    else if (stored) stored.widen(true);
    else t.data.slice();
  }
  ms["  of which own copies"] = performance.now() - t;
  model.dispose();
  return { ok: true, ms, peakMiB, ownMiB, ...figures };
}

/** The markdown tables of the load measurements. */
export function loadReport(model: string, threads: number, rows: { job: LoadJob; phases: LoadResult; api: LoadResult }[]): string {
  const spec = loadSpec(model);
  const f0 = (x: number | undefined) => (x === undefined ? "–" : x.toFixed(0));
  const phaseNames = ["backend", "open", "build", "prepare", "  of which BatchNorm fold", "  of which own copies"];
  const out = [
    `Load of ${spec.name} (seeded random weights), ${threads} thread${threads > 1 ? "s" : ""}; one fresh process per cell. `
    + `"phases" runs loadModel's steps one by one: backend = wasm instance; open = readCheckpoint (safetensors: the `
    + `header, or the .pt's zip directory and pickle, only: each tensor is read later straight into wasm memory); build = `
    + `modelFromCheckpoint (the checks, BatchNorm fold, projection transposes, own copies, and prepare: each tensor `
    + `read or copied into wasm memory, widened from f16 there and packed for the GEMM, or kept f16 with weights fp16). `
    + `"of which" rows are re-timed alone after the load. Peak RSS = process maxRSS after the phase; resident = the `
    + `weights' part of wasm memory + the model's own copies.`,
    "",
    `| format | weights | towers | file MiB | ${phaseNames.map((p) => `${p.trim()} ms`).join(" | ")} | loadModel ms | peak RSS: start / opened / built, MiB | loadModel peak RSS MiB | wasm weights MiB | own copies MiB | peak ÷ resident |`,
    `|---|---|---|---|${phaseNames.map(() => "---").join("|")}|---|---|---|---|---|---|`,
  ];
  for (const { job, phases: p, api: a } of rows) {
    const fileMiB = statSync(job.file).size / MiB;
    const resident = (a.weightsMiB ?? 0) + (p.ownMiB ?? 0);
    out.push(`| ${job.format} | ${job.weights ?? "fp32"} | ${job.towers} | ${f0(fileMiB)} | ${phaseNames.map((n) => f0(p.ms[n])).join(" | ")} | ${f0(a.ms.loadModel)} | `
      + `${f0(p.peakMiB.start)} / ${f0(p.peakMiB.open)} / ${f0(p.peakMiB.build)} | ${f0(a.peakMiB.loadModel)} | `
      + `${f0(a.weightsMiB)} | ${f0(p.ownMiB)} | ${resident ? `${(a.peakMiB.loadModel / resident).toFixed(2)}× (${((a.peakMiB.loadModel - a.peakMiB.start) / resident).toFixed(2)}× over the start)` : "–"} |`);
  }
  return out.join("\n");
}
