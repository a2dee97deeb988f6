// `npm run bench -- --load`: where loadModel's time and memory go, per weights format and towers, for a
// full-size model (seeded random weights written as fp32 and fp16 safetensors). Every measurement runs in a fresh
// child process (peak RSS is per process); the phases are the steps of loadModel, run one by one.

import { mkdirSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import type { Backend } from "../src/backend/backend.js";
import { checkpointFromBytes, createBackend, loadModel, readBytes } from "../src/clip.js";
import { foldBatchNorm } from "../src/kernels/batch_norm.js";
import { buildModel, type Towers } from "../src/model.js";
import type { StateDict } from "../src/tensor.js";
import { decodeToF32, type DType } from "../src/weights/dtypes.js";
import { writeSafetensors } from "../src/weights/safetensors.js";
import { randomStateDict } from "./inputs.js";
import { CACHE_DIR, loadSpec, present } from "./models.js";

export type LoadFormat = "fp32 safetensors" | "fp16 safetensors";
export const LOAD_FORMATS: readonly LoadFormat[] = ["fp32 safetensors", "fp16 safetensors"];

export interface LoadJob {
  file: string;
  format: LoadFormat;
  towers: Towers;
  threads: number;
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
  /** what the model keeps in JavaScript (its own copies: embeddings, norms), MiB */
  ownMiB?: number;
}

const MiB = 2 ** 20;
const maxRssMiB = () => process.resourceUsage().maxRSS / 1024; // KiB on Linux

/** The random weights of `model` as fp32 and fp16 safetensors, written once into the bench cache. */
export function loadFiles(model: string, say: (s: string) => void): Record<LoadFormat, string> {
  const spec = loadSpec(model);
  const dir = join(CACHE_DIR, "..", "load");
  const stem = spec.name.replace(/[/@]/g, "-");
  const files = { "fp32 safetensors": join(dir, `${stem}.f32.safetensors`), "fp16 safetensors": join(dir, `${stem}.f16.safetensors`) };
  if (!present(files["fp32 safetensors"]) || !present(files["fp16 safetensors"])) {
    say(`${spec.name}: writing seeded random weights to ${dir} (fp32 and fp16 safetensors)…`);
    mkdirSync(dir, { recursive: true });
    const sd = randomStateDict(spec);
    writeFileSync(files["fp32 safetensors"], writeSafetensors(sd, "F32"));
    writeFileSync(files["fp16 safetensors"], writeSafetensors(sd, "F16"));
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
    const model = await loadModel(job.file, { towers: job.towers, threads: job.threads });
    ms.loadModel = performance.now() - t;
    peakMiB.loadModel = maxRssMiB();
    const wasm = wasmBytes(model.backend);
    model.dispose();
    return { ok: true, ms, peakMiB, ...(wasm !== undefined ? { wasmMiB: wasm / MiB } : {}) };
  }

  let t = performance.now();
  const backend = await createBackend({ threads: job.threads });
  ms.backend = performance.now() - t;
  peakMiB.backend = maxRssMiB();
  t = performance.now();
  let bytes: Uint8Array | null = await readBytes(job.file);
  ms.read = performance.now() - t;
  peakMiB.read = maxRssMiB();
  const ck = phase("parse + widen", () => checkpointFromBytes(bytes!));
  bytes = null; // as in loadModel: fp16 file bytes can be collected once widened
  const prepare = timePrepare(backend);
  const model = phase("build", () => buildModel(ck.stateDict, backend, { towers: job.towers, hints: ck.hints }));
  ms.prepare = prepare.ms;
  const wasm = wasmBytes(backend);
  const own = ownKeys(ck.stateDict, job.towers);
  const ownMiB = own.reduce((a, k) => a + ck.stateDict.get(k)!.data.byteLength, 0) / MiB;

  // Re-timed alone after the load (the peaks above are already taken): the widening of fp16, the BatchNorm fold
  // and the model's own copies, which the phases above contain.
  bytes = await readBytes(job.file);
  const header = safetensorsEntries(bytes);
  t = performance.now();
  for (const e of header) if (e.dtype !== "F32") decodeToF32(bytes, e.offset, e.count, e.dtype);
  ms["  of which widen"] = performance.now() - t;
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
  for (const k of own) ck.stateDict.get(k)!.data.slice();
  ms["  of which own copies"] = performance.now() - t;
  model.dispose();
  return { ok: true, ms, peakMiB, ownMiB, ...(wasm !== undefined ? { wasmMiB: wasm / MiB } : {}) };
}

/** Offsets of a safetensors file's tensors (for re-timing the widening alone). */
function safetensorsEntries(bytes: Uint8Array): { dtype: DType; offset: number; count: number }[] {
  const n = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n))) as Record<string, { dtype: DType; shape: number[]; data_offsets: [number, number] }>;
  return Object.entries(header).filter(([k]) => k !== "__metadata__")
    .map(([, e]) => ({ dtype: e.dtype, offset: 8 + n + e.data_offsets[0], count: e.shape.reduce((a, b) => a * b, 1) }));
}

/** The markdown tables of the load measurements. */
export function loadReport(model: string, threads: number, rows: { job: LoadJob; phases: LoadResult; api: LoadResult }[]): string {
  const spec = loadSpec(model);
  const f0 = (x: number | undefined) => (x === undefined ? "–" : x.toFixed(0));
  const phaseNames = ["backend", "read", "parse + widen", "  of which widen", "build", "prepare", "  of which BatchNorm fold", "  of which own copies"];
  const out = [
    `Load of ${spec.name} (seeded random weights), ${threads} thread${threads > 1 ? "s" : ""}; one fresh process per cell. `
    + `"phases" runs loadModel's steps one by one: backend = wasm instance; read = the file into memory; parse + widen `
    + `= checkpointFromBytes (fp32 tensors are views of the file, fp16 ones widened to new f32 arrays); build = buildModel `
    + `(the checks, BatchNorm fold, projection transposes, own copies, and prepare: the copy into wasm memory and the `
    + `GEMM packing). "of which" rows are re-timed alone after the load. Peak RSS = process maxRSS after the phase.`,
    "",
    `| format | towers | file MiB | ${phaseNames.map((p) => `${p.trim()} ms`).join(" | ")} | loadModel ms | peak RSS: start / read / parsed / built, MiB | loadModel peak RSS MiB | wasm memory MiB | own copies MiB | peak ÷ resident |`,
    `|---|---|---|${phaseNames.map(() => "---").join("|")}|---|---|---|---|---|---|`,
  ];
  for (const { job, phases: p, api: a } of rows) {
    const fileMiB = statSync(job.file).size / MiB;
    const resident = (a.wasmMiB ?? 0) + (p.ownMiB ?? 0);
    out.push(`| ${job.format} | ${job.towers} | ${f0(fileMiB)} | ${phaseNames.map((n) => f0(p.ms[n])).join(" | ")} | ${f0(a.ms.loadModel)} | `
      + `${f0(p.peakMiB.start)} / ${f0(p.peakMiB.read)} / ${f0(p.peakMiB["parse + widen"])} / ${f0(p.peakMiB.build)} | ${f0(a.peakMiB.loadModel)} | `
      + `${f0(a.wasmMiB)} | ${f0(p.ownMiB)} | ${resident ? `${(a.peakMiB.loadModel / resident).toFixed(2)}× (${((a.peakMiB.loadModel - a.peakMiB.start) / resident).toFixed(2)}× over the start)` : "–"} |`);
  }
  return out.join("\n");
}
