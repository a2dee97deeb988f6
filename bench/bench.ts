// `npm run bench`: real-size RN50 and ViT-B/32 (random weights) in clip-ts and, in the same run, in ONNX Runtime
// Web (wasm) and ONNX Runtime Node (CPU EP) at the same thread counts; prints a markdown table. Not a test.
// Each engine × model × thread count runs in a child process of its own (see engines.ts). Options: --help.

import { spawn, spawnSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { createWasmBackend } from "../src/backend/wasm.js";
import { ENGINES, runJob, type Cell, type CellResult, type EngineName, type Job, type JobResult } from "./engines.js";
import { imageFlops, loadSpec, MODEL_IDS, present, textFlops } from "./models.js";
import { LOAD_CELLS, loadFiles, loadReport, runLoadJob, type LoadJob, type LoadResult } from "./load.js";
import { missingPeers, SETUP } from "./peers.js";

const USAGE = `usage: npm run bench -- [options]
  --model rn50,vit-b-32   models (default: both)
  --threads 1,2           thread counts for clip-ts wasm and both peers (default: 1,2)
  --backend all|wasm|ts|none  clip-ts backends (default: all; wasm is skipped with a note when it cannot start)
                          --backend ts alone: the TS path only, batch 1, image + text, no peers
  --peers web,web-q8,node|none  ONNX Runtime peers, installed by npm run bench:setup (default: web,web-q8,node;
                          none with --backend ts); web-q8 is ORT-web on tools/onnx/quantize_q8.py's q8 exports
  --batch 1,8             batch sizes (default: 1,8; the TS backend always runs batch 1 only)
  --runs N                timed runs per cell after warm-up (default 10, --quick 3; TS backend: 2, --quick 1)
  --rounds N              runs are split into N rounds over all jobs, each job a fresh process per round, so that
                          a slow spell of the machine falls on every engine and thread count alike (default 5)
  --quick                 fewer runs
  --json FILE             also write every timing as JSON
  --load                  instead: the load of each model (default ViT-B/32) from fp32 and fp16 safetensors and an
                          fp16 .pt of seeded random weights (fp16 ones also with weights fp16), towers both and
                          image, at the first --threads (default 1): time
                          per phase and peak RSS, each in a fresh process (see bench/load.ts)
  --index ...             instead: indexing throughput, decode pool + encode (bench/index_throughput.ts; --index --help)
  --fp16 ...              instead: weights fp16 against f32, same process, bits checked (bench/memory.ts; --model,
                          --threads, --runs, --rounds, --batch)
  --int8 ...              instead: precision int8 against f32 and ORT-web q8 (bench/int8.ts; --model, --threads, --runs)
  --int8-accuracy ...     instead: int8's cosine to f32 on real photos and texts, zero-shot accuracy of the embedded
                          models (bench/int8_accuracy.ts; --model DIR, --photos DIR, --heldout DIR, --threads)
Weights: .cache/onnx/<model>.safetensors (or $CLIP_TS_BENCH_CACHE/…) when tools/onnx/export_onnx.py has made it:
the weights of the ONNX files; otherwise seeded random weights made here, and the peers, which need the ONNX
files, are listed as not measured.`;

interface Options {
  models: string[];
  threads: number[];
  backends: ("wasm" | "ts")[];
  peers: ("web" | "web-q8" | "node")[];
  batches: number[];
  quick: boolean;
  runs?: number;
  rounds: number;
  json?: string;
  load: boolean;
}

function list<T extends string>(value: string, allowed: readonly T[], flag: string): T[] {
  const items = value.split(",").map((s) => s.trim()).filter(Boolean);
  for (const item of items) {
    if (!allowed.includes(item as T)) throw new Error(`${flag}: "${item}" is not one of ${allowed.join(", ")}`);
  }
  return items as T[];
}

function positiveInts(value: string, flag: string): number[] {
  const items = value.split(",").map(Number);
  if (!items.length || !items.every((n) => Number.isInteger(n) && n >= 1 && n <= 64)) {
    throw new Error(`${flag}: expected integers in [1, 64] separated by commas, got "${value}"`);
  }
  return items;
}

function parseArgs(argv: string[]): Options {
  const o: Options = { models: Object.keys(MODEL_IDS), threads: [1, 2], backends: ["wasm", "ts"], peers: ["web", "web-q8", "node"], batches: [1, 8], quick: false, rounds: 5, load: false };
  let peersGiven = false, modelsGiven = false, threadsGiven = false;
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const value = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${flag} needs a value`);
      return v;
    };
    switch (flag) {
      case "--model": o.models = list(value(), Object.keys(MODEL_IDS), flag); modelsGiven = true; break;
      case "--threads": o.threads = positiveInts(value(), flag); threadsGiven = true; break;
      case "--load": o.load = true; break;
      case "--backend": {
        const v = value();
        o.backends = v === "all" ? ["wasm", "ts"] : v === "none" ? [] : list(v, ["wasm", "ts"] as const, flag);
        break;
      }
      case "--peers": {
        const v = value();
        o.peers = v === "none" ? [] : list(v, ["web", "web-q8", "node"] as const, flag);
        peersGiven = true;
        break;
      }
      case "--batch": o.batches = positiveInts(value(), flag); break;
      case "--runs": [o.runs] = positiveInts(value(), flag); break;
      case "--rounds": [o.rounds] = positiveInts(value(), flag); break;
      case "--quick": o.quick = true; break;
      case "--json": o.json = value(); break;
      case "--help": case "-h": console.log(USAGE); process.exit(0); break;
      default: throw new Error(`unknown option "${flag}"\n${USAGE}`);
    }
  }
  if (!peersGiven && o.backends.length === 1 && o.backends[0] === "ts") o.peers = [];
  if (o.load && !modelsGiven) o.models = ["vit-b-32"];
  if (o.load && !threadsGiven) o.threads = [1];
  return o;
}

const PEER_PACKAGE = { web: "onnxruntime-web", "web-q8": "onnxruntime-web", node: "onnxruntime-node" } as const;
const INPUTS = ["image", "text-short", "text-full"] as const;
const INPUT_LABEL: Record<Cell["input"], string> = { "image": "image", "text-short": "text, 8-token prompt", "text-full": "text, 77 tokens" };

/** Runs one job (or, with `--peak`, a peak measurement) in a child process; its last stdout line is the JSON result. */
function runChild<T extends JobResult | PeakResult | LoadResult>(job: Job | { peak: number } | { load: LoadJob }): Promise<T> {
  return new Promise((resolve) => {
    const args = "peak" in job ? ["--peak", String(job.peak)] : "load" in job ? ["--load-job", JSON.stringify(job.load)] : ["--job", JSON.stringify(job)];
    const child = spawn(process.execPath, [fileURLToPath(import.meta.url), ...args], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    let out = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.on("close", (code, signal) => {
      const last = out.trim().split("\n").pop() ?? "";
      try {
        resolve(JSON.parse(last) as T);
      } catch {
        resolve({ ok: false, reason: `child process ended (${signal ?? `exit ${code}`}) without a result` } as T);
      }
    });
  });
}

/** One job's results from two rounds: times concatenated, the first round's load time and features, peaks maxed. */
function pool(a: JobResult, b: JobResult): JobResult {
  if (!a.ok) return a;
  if (!b.ok) return b;
  return {
    ...a,
    cells: a.cells.map((c, i) => ({ ...c, times: [...c.times, ...b.cells[i].times] })),
    peakRssAfterFirstMiB: Math.max(a.peakRssAfterFirstMiB, b.peakRssAfterFirstMiB),
    peakRssMiB: Math.max(a.peakRssMiB, b.peakRssMiB),
  };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

interface Measured { job: Job; result: JobResult }

type PeakResult = { ok: true; gflops: number } | { ok: false; reason: string };

/**
 * Child: the wasm SIMD peak (assembly/peak.ts) on `threads` threads at once, best of 3 bursts of ~0.2 s. What the
 * threads can gain together on any kernel at that moment: on a VM the cores share clocks, power and the host.
 */
async function peakJob(threads: number): Promise<PeakResult> {
  let backend;
  try {
    backend = await createWasmBackend({ threads });
  } catch (e) {
    return { ok: false, reason: (e as Error).message };
  }
  let best = 0;
  for (let i = 0; i < 4; i++) {
    const t0 = performance.now();
    let flops = 0;
    while (performance.now() - t0 < 200) flops += backend.simdPeak(1e6);
    if (i > 0) best = Math.max(best, flops / (performance.now() - t0) / 1e6); // the first burst warms up
  }
  backend.dispose();
  return { ok: true, gflops: best };
}

/** --load: per model, format and towers, one child timing loadModel's phases and one timing loadModel itself. */
async function mainLoad(o: Options): Promise<void> {
  const say = (s: string) => process.stderr.write(s + "\n");
  const threads = o.threads[0];
  const all: unknown[] = [];
  for (const model of o.models) {
    // written by a child: a child process starts with its parent's peak RSS (Linux keeps maxrss across fork and
    // exec), so this process must stay small
    const made = spawnSync(process.execPath, [fileURLToPath(import.meta.url), "--load-files", model], { stdio: "inherit" });
    if (made.status !== 0) throw new Error(`${MODEL_IDS[model]}: writing the weights files failed`);
    const files = loadFiles(model, say);
    const rows: { job: LoadJob; phases: LoadResult; api: LoadResult }[] = [];
    for (const { format, weights } of LOAD_CELLS) {
      const file = files[format];
      if (!file) continue;
      for (const towers of ["both", "image"] as const) {
        const job: LoadJob = { file, format, towers, threads, mode: "phases", weights };
        say(`${MODEL_IDS[model]}, ${format}, weights ${weights}, towers ${towers}…`);
        const phases = await runChild<LoadResult>({ load: job });
        const api = await runChild<LoadResult>({ load: { ...job, mode: "api" } });
        for (const r of [phases, api]) if (!r.ok) throw new Error(`${format}, weights ${weights}, towers ${towers}: ${r.reason}`);
        rows.push({ job, phases, api });
      }
    }
    console.log(loadReport(model, threads, rows) + "\n");
    all.push({ model, rows });
  }
  if (o.json) writeFileSync(o.json, JSON.stringify({ date: new Date().toISOString(), options: o, load: all }, null, 1));
}

async function main(o: Options): Promise<void> {
  if (o.load) return mainLoad(o);
  const notes: string[] = [];
  const say = (s: string) => process.stderr.write(s + "\n");
  const absent = missingPeers([...new Set(o.peers.map((p) => PEER_PACKAGE[p]))]);
  if (absent.length) {
    const note = `${absent.join(" and ")} not installed, measuring without ${absent.length > 1 ? "them" : "it"}: ${SETUP}`;
    say(note);
    notes.push(note);
  }
  const peers = o.peers.filter((p) => !absent.includes(PEER_PACKAGE[p]));
  const peerEngines = ([["web", "ORT-web"], ["web-q8", "ORT-web q8"], ["node", "ORT-node"]] as const)
    .filter(([p]) => peers.includes(p)).map(([, e]): EngineName => e);
  const cellsFor = (batches: number[]): Cell[] => INPUTS.flatMap((input) => batches.map((batch) => ({ input, batch })));
  const fastRuns = o.runs ?? (o.quick ? 3 : 10), fastWarmup = o.quick ? 1 : 2;
  const tsRuns = o.runs ?? (o.quick ? 1 : 2), tsWarmup = o.quick ? 0 : 1;

  const measured: Measured[] = [];
  const peaks = new Map<number, number[]>(); // per thread count, one per round
  for (const model of o.models) {
    const spec = loadSpec(model);
    const weights = present(spec.files.weights) ? "cache" : "random";
    say(`${spec.name}: clip-ts weights from ${weights === "cache" ? spec.files.weights : "a seeded generator (no exported safetensors)"}`);
    const jobs: Job[] = [];
    for (const threads of o.threads) {
      if (o.backends.includes("wasm")) jobs.push({ model, engine: "clip-ts wasm", threads, cells: cellsFor(o.batches), warmup: fastWarmup, runs: fastRuns, weights });
      for (const engine of peerEngines) jobs.push({ model, engine, threads, cells: cellsFor(o.batches), warmup: fastWarmup, runs: fastRuns, weights });
    }
    // the TS kernels are single-threaded and slow: batch 1 only, few runs
    if (o.backends.includes("ts")) jobs.push({ model, engine: "clip-ts ts", threads: 1, cells: cellsFor([1]), warmup: tsWarmup, runs: tsRuns, weights });
    // Round r runs its share of each job's runs; the times of all rounds are pooled per job.
    const results: JobResult[] = [];
    for (let r = 0; r < o.rounds; r++) {
      if (o.backends.includes("wasm")) {
        for (const threads of o.threads) {
          const p = await runChild<PeakResult>({ peak: threads });
          if (p.ok) peaks.set(threads, [...(peaks.get(threads) ?? []), p.gflops]);
        }
      }
      for (const [i, job] of jobs.entries()) {
        const rounds = Math.min(o.rounds, job.runs); // a job with fewer runs takes part in the first rounds only
        const share = r < rounds ? Math.floor(job.runs / rounds) + (r < job.runs % rounds ? 1 : 0) : 0;
        if (share === 0 || (results[i] && !results[i].ok)) continue;
        say(`${job.engine}, ${spec.name}, ${job.threads} thread${job.threads > 1 ? "s" : ""} (round ${r + 1}/${o.rounds})…`);
        const result = await runChild<JobResult>({ ...job, runs: share });
        if (!result.ok) {
          const note = `${job.engine} (${spec.name}, ${job.threads} thread${job.threads > 1 ? "s" : ""}): not measured — ${result.reason}`;
          say(note);
          notes.push(note);
        }
        results[i] = results[i] ? pool(results[i], result) : result;
      }
    }
    jobs.forEach((job, i) => measured.push({ job, result: results[i] }));
  }
  console.log(report(o, measured, notes, peaks));
  if (o.json) writeFileSync(o.json, JSON.stringify({ date: new Date().toISOString(), options: o, measured, peaks: Object.fromEntries(peaks) }, null, 1));
}

function report(o: Options, measured: Measured[], notes: string[], peaks: Map<number, number[]>): string {
  type Key = string;
  const key = (model: string, input: string, batch: number, threads: number): Key => `${model}|${input}|${batch}|${threads}`;
  const cells = new Map<Key, Map<EngineName, CellResult>>();
  const rowKeys: { model: string; input: Cell["input"]; batch: number; threads: number }[] = [];
  for (const { job, result } of measured) {
    if (!result.ok) continue;
    for (const c of result.cells) {
      const k = key(job.model, c.input, c.batch, job.threads);
      if (!cells.has(k)) {
        cells.set(k, new Map());
        rowKeys.push({ model: job.model, input: c.input, batch: c.batch, threads: job.threads });
      }
      cells.get(k)!.set(job.engine, c);
    }
  }
  const engines = ENGINES.filter((e) => [...cells.values()].some((m) => m.has(e)));
  const ours = engines.filter((e) => e.startsWith("clip-ts"));
  const peers = engines.filter((e) => e.startsWith("ORT"));
  const order = (r: (typeof rowKeys)[number]) =>
    [o.models.indexOf(r.model), INPUTS.indexOf(r.input), r.batch, r.threads];
  rowKeys.sort((a, b) => {
    const x = order(a), y = order(b);
    for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return x[i] - y[i];
    return 0;
  });

  const short = (e: EngineName) => e.replace("clip-ts ", "").replace("ORT-", "");
  const head = ["model", "input", "batch", "threads", "GFLOP",
    ...engines.map((e) => `${e} ms (GFLOP/s)`),
    ...ours.flatMap((a) => peers.map((p) => `${short(a)} ÷ ${short(p)}`))];
  const lines = [`| ${head.join(" | ")} |`, `|${head.map(() => "---").join("|")}|`];
  for (const r of rowKeys) {
    const spec = loadSpec(r.model);
    const flops = r.batch * (r.input === "image" ? imageFlops(spec.config) : textFlops(spec.config));
    const m = cells.get(key(r.model, r.input, r.batch, r.threads))!;
    const ms = (e: EngineName) => (m.has(e) ? median(m.get(e)!.times) : undefined);
    const row = [spec.name, INPUT_LABEL[r.input], String(r.batch), String(r.threads), (flops / 1e9).toFixed(2)];
    for (const e of engines) {
      const t = ms(e);
      const c = m.get(e);
      row.push(t === undefined ? "–" : `${fmt(t)} (${(flops / 1e6 / t).toFixed(1)})${c && c.times.length < 10 ? ` [${c.times.length} run${c.times.length > 1 ? "s" : ""}]` : ""}`);
    }
    for (const a of ours) {
      for (const p of peers) {
        const ta = ms(a), tp = ms(p);
        row.push(ta !== undefined && tp !== undefined ? `${(ta / tp).toFixed(2)}×` : "–");
      }
    }
    lines.push(`| ${row.join(" | ")} |`);
  }

  const out = [
    `clip-ts bench — Node ${process.version}, ${o.quick ? "quick" : "full"} run; median ms over the runs after warm-up, `
    + `GFLOP/s from the analytic FLOP count (2 × MACs of convolutions, linears and attention matmuls); `
    + `the same count for every engine, so clip-ts, which skips the text padding after the end token, shows an `
    + `effective rate on the 8-token prompt. a ÷ b = time ratio (below 1×: clip-ts faster). `
    + `[n runs] marks cells with fewer than 10 runs.`,
    "",
    ...lines,
  ];
  if (peaks.size) {
    out.push("", "wasm SIMD peak (assembly/peak.ts: 12 chains of f32x4 mul+add; every thread at once), median over the rounds: "
      + [...peaks].map(([t, g]) => `${median(g).toFixed(1)} GFLOP/s on ${t} thread${t > 1 ? "s" : ""}`).join(", ")
      + ` (per round: ${[...peaks].map(([t, g]) => `${t}: ${g.map((x) => x.toFixed(0)).join(" ")}`).join("; ")}).`);
  }

  // throughput with more threads relative to the fewest measured, per engine (same cells, same run)
  const counts = [...new Set(rowKeys.map((r) => r.threads))].sort((a, b) => a - b);
  if (counts.length > 1) {
    const base = counts[0];
    const scaled = engines.filter((e) => e !== "clip-ts ts");
    const ceiling = (t: number) => (peaks.has(t) && peaks.has(base) ? `${(median(peaks.get(t)!) / median(peaks.get(base)!)).toFixed(2)}×` : "–");
    out.push("", `Speed-up over ${base} thread${base > 1 ? "s" : ""} (time at ${base} ÷ time at t; t× would be perfect; `
      + `the last column is the wasm SIMD peak's own speed-up in the same rounds, what this machine gave the threads):`, "",
      `| model | input | batch | t | ${scaled.join(" | ")} | wasm SIMD peak |`, `|---|---|---|---|${scaled.map(() => "---").join("|")}|---|`);
    for (const r of rowKeys.filter((r) => r.threads !== base)) {
      const m = cells.get(key(r.model, r.input, r.batch, r.threads))!;
      const b = cells.get(key(r.model, r.input, r.batch, base));
      const ratio = (e: EngineName) => (m.has(e) && b?.has(e) ? `${(median(b.get(e)!.times) / median(m.get(e)!.times)).toFixed(2)}×` : "–");
      out.push(`| ${MODEL_IDS[r.model]} | ${INPUT_LABEL[r.input]} | ${r.batch} | ${r.threads} | ${scaled.map(ratio).join(" | ")} | ${ceiling(r.threads)} |`);
    }
  }

  const mem = measured.filter((m): m is Measured & { result: { ok: true } } => m.result.ok);
  if (mem.length) {
    out.push("", "| engine | model | threads | load ms | peak RSS after load + first cell, MiB | peak RSS, MiB | wasm memory, MiB |", "|---|---|---|---|---|---|---|");
    for (const { job, result: r } of mem) {
      out.push(`| ${job.engine} | ${MODEL_IDS[job.model]} | ${job.threads} | ${r.loadMs.toFixed(0)} | ${r.peakRssAfterFirstMiB.toFixed(0)} | ${r.peakRssMiB.toFixed(0)} | ${r.wasmMemoryMiB?.toFixed(0) ?? "–"} |`);
    }
  }

  // same weights and inputs: the features must agree (to float rounding, or, for a quantized engine, in direction:
  // cosine) across engines; worst over thread counts
  const worst = new Map<string, { rel: number; cos: number }>();
  const ownWeights = new Set(measured.filter((m) => m.job.weights === "random").map((m) => m.job.model));
  for (const r of rowKeys.filter((r) => r.batch === 1 && !ownWeights.has(r.model))) {
    const m = cells.get(key(r.model, r.input, r.batch, r.threads))!;
    const refName = m.has("ORT-node") ? "ORT-node" : "ORT-web";
    const ref = m.get(refName);
    if (!ref) continue;
    const scale = Math.max(...ref.firstRow.map(Math.abs));
    for (const e of engines.filter((e) => e !== refName && m.has(e))) {
      const a = m.get(e)!.firstRow, b = ref.firstRow;
      const diff = Math.max(...a.map((x, i) => Math.abs(x - b[i])));
      let ab = 0, aa = 0, bb = 0;
      for (let i = 0; i < a.length; i++) (ab += a[i] * b[i]), (aa += a[i] * a[i]), (bb += b[i] * b[i]);
      const label = `${MODEL_IDS[r.model]}, ${INPUT_LABEL[r.input]}: ${e} vs ${refName}`;
      const w = worst.get(label) ?? { rel: 0, cos: 1 };
      worst.set(label, { rel: Math.max(w.rel, diff / scale), cos: Math.min(w.cos, ab / Math.sqrt(aa * bb)) });
    }
  }
  if (worst.size) {
    out.push("", "Same function (batch-1 features, max |Δ| / max |x| and cosine, worst over thread counts):");
    for (const [label, { rel, cos }] of worst) out.push(`- ${label}: ${rel.toExponential(1)}, cosine ${cos.toFixed(5)}`);
  }
  if (notes.length) out.push("", "Not measured:", ...notes.map((s) => `- ${s}`));
  return out.join("\n");
}

function fmt(ms: number): string {
  return ms >= 100 ? ms.toFixed(0) : ms.toFixed(1);
}

const argv = process.argv.slice(2);
if (argv[0] === "--index") {
  await (await import("./index_throughput.js")).indexBench(argv.slice(1)).catch((e: Error) => {
    console.error(e.message);
    process.exitCode = 1;
  });
} else if (argv[0] === "--peak") {
  process.stdout.write("\n" + JSON.stringify(await peakJob(Number(argv[1]))) + "\n");
  process.exit(0);
} else if (argv[0] === "--load-files") {
  loadFiles(argv[1], (s) => process.stderr.write(s + "\n"));
} else if (argv[0] === "--load-job") {
  let result: LoadResult;
  try {
    result = await runLoadJob(JSON.parse(argv[1]) as LoadJob);
  } catch (e) {
    result = { ok: false, reason: (e as Error).message, ms: {}, peakMiB: {} };
  }
  process.stdout.write("\n" + JSON.stringify(result) + "\n");
  process.exit(0);
} else if (argv[0] === "--fp16" || argv[0] === "--int8-accuracy") {
  // scripts of their own (bench/memory.ts: weights "fp16" against f32; bench/int8_accuracy.ts), each in a process
  const script = argv[0] === "--fp16" ? "./memory.js" : "./int8_accuracy.js";
  const r = spawnSync(process.execPath, [fileURLToPath(new URL(script, import.meta.url)), ...argv.slice(1)], { stdio: "inherit" });
  process.exitCode = r.status ?? 1;
} else if (argv[0] === "--int8") {
  await (await import("./int8.js")).int8Bench(argv.slice(1)); // precision int8 vs f32 and ORT-web q8: bench/int8.ts
} else if (argv[0] === "--job") {
  const result = await runJob(JSON.parse(argv[1]) as Job);
  process.stdout.write("\n" + JSON.stringify(result) + "\n");
  process.exit(0); // worker threads of a backend or ORT-web must not keep the child alive
} else {
  try {
    await main(parseArgs(argv));
  } catch (e) {
    console.error((e as Error).message);
    process.exitCode = 1;
  }
}
