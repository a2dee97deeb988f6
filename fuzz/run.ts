// `npm run fuzz`: a long campaign over every parser, each target in a worker thread watched for hangs.
//   --runs N      cases per target (env FUZZ_RUNS, default 10000)
//   --seed S      campaign seed (env FUZZ_SEED, default 1); case i of a target is a pure function of (S, target, i)
//   --only a,b    targets to run (env FUZZ_ONLY; default all: safetensors torch pickle npy png jpeg tokenizer amplified tar)
//   --case I      regenerate case I of each selected target, save its files and print what it does and how it ends
//   --out DIR     where findings are saved (default <tmp>/clip-ts-fuzz)
//   --hang-ms T   a case running longer than this is reported as a hang and its worker stopped (default 60000)
// Exit status 1 when any case crashed or hung.
import { mkdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Worker } from "node:worker_threads";
import { caseOf, formatStats, runOne, STATS_HEADER, type CampaignStats, type Finding } from "./harness.js";
import { makeTarget, TARGET_NAMES } from "./targets/index.js";
import type { WorkerInput } from "./worker.js";

function arg(name: string, env: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  if (i >= 0 && i + 1 < process.argv.length) return process.argv[i + 1]!;
  return process.env[env] ?? fallback;
}

const runs = Number(arg("runs", "FUZZ_RUNS", "10000"));
const seed = Number(arg("seed", "FUZZ_SEED", "1"));
const only = arg("only", "FUZZ_ONLY", TARGET_NAMES.join(",")).split(",").filter(Boolean);
const outDir = arg("out", "FUZZ_OUT", join(tmpdir(), "clip-ts-fuzz"));
const hangMs = Number(arg("hang-ms", "FUZZ_HANG_MS", "60000"));
const caseIndex = arg("case", "FUZZ_CASE", "");
if (!Number.isSafeInteger(runs) || runs < 1 || !Number.isSafeInteger(seed)) throw new Error("fuzz: --runs and --seed must be integers");

interface Hang {
  index: number;
}

/** Runs `count` cases from `start` in a worker; resolves with its stats, or with the index of a case that hung. */
function campaign(target: string, start: number, count: number): Promise<{ stats?: CampaignStats; hang?: Hang; error?: Error }> {
  const heartbeat = new SharedArrayBuffer(4);
  const beat = new Int32Array(heartbeat);
  Atomics.store(beat, 0, start);
  const input: WorkerInput = { target, runs: count, seed, start, outDir, heartbeat };
  const worker = new Worker(new URL("./worker.js", import.meta.url), { workerData: input });
  return new Promise((resolve) => {
    let last = start;
    let since = Date.now();
    const timer = setInterval(() => {
      const now = Atomics.load(beat, 0);
      if (now !== last) {
        last = now;
        since = Date.now();
      } else if (Date.now() - since > hangMs) {
        clearInterval(timer);
        void worker.terminate();
        resolve({ hang: { index: now } });
      }
    }, 250);
    worker.on("message", (m: { type: string; kind?: string; finding?: Finding; stats?: CampaignStats & { messages: [string, number][] } }) => {
      if (m.type === "finding") console.log(`  ${target} ${m.kind} #${m.finding!.index}: ${m.finding!.detail}\n    ${m.finding!.how}`);
      else if (m.type === "done") {
        clearInterval(timer);
        resolve({ stats: { ...m.stats!, messages: new Map(m.stats!.messages) } });
      }
    });
    worker.on("error", (error) => {
      clearInterval(timer);
      resolve({ error });
    });
  });
}

async function one(target: string, index: number): Promise<void> {
  const t = makeTarget(target);
  const c = caseOf(t, seed, index);
  const dir = join(outDir, target, `case-${index}`);
  mkdirSync(dir, { recursive: true });
  for (const [name, bytes] of Object.entries(t.files(c.input))) writeFileSync(join(dir, name), bytes);
  const { outcome, ms, bytes } = await runOne(t, c.input);
  const end = outcome.kind === "crash" ? `CRASH ${outcome.detail}` : outcome.kind === "typed" ? `${t.errorName}: ${outcome.message}` : "parsed";
  console.log(`${target} #${index} (seed ${seed}): ${c.how}\n  → ${end}\n  ${ms.toFixed(1)} ms, ${(bytes / 2 ** 20).toFixed(1)} MiB; files in ${dir}`);
}

if (caseIndex !== "") {
  for (const target of only) await one(target, Number(caseIndex));
} else {
  console.log(`fuzz: ${runs} cases per target, seed ${seed}, findings saved under ${outDir}`);
  let failed = false;
  const rows: string[] = [];
  for (const target of only) {
    makeTarget(target); // unknown names fail before any worker starts
    let stats: CampaignStats | undefined;
    const hangs: number[] = [];
    for (let start = 0; start < runs; ) {
      const r = await campaign(target, start, runs - start);
      if (r.stats) {
        stats = r.stats;
        break;
      }
      if (r.error) {
        // A failure of the fuzz code itself (a generator), not of the parser: reported, and the next target runs.
        console.log(`  ${target} campaign failed: ${r.error.stack}`);
        failed = true;
        break;
      }
      console.log(`  ${target} HANG #${r.hang!.index}: no progress for ${hangMs} ms (reproduce with --only ${target} --case ${r.hang!.index})`);
      hangs.push(r.hang!.index);
      start = r.hang!.index + 1;
    }
    // A hung worker takes its counts with it: the totals then cover the resumed cases, and the hang is the finding.
    const s = stats ?? ({ target, cases: 0, ok: 0, typed: 0, crashes: [], slow: [], heavy: [], maxMs: 0, maxMsHow: "", maxBytes: 0, totalMs: 0, messages: new Map() } as CampaignStats);
    s.cases += hangs.length;
    for (const index of hangs) s.crashes.push({ index, how: "hang", detail: `no progress for ${hangMs} ms`, ms: hangMs, bytes: 0 });
    if (s.crashes.length > 0) failed = true;
    rows.push(formatStats(s));
    console.log(`${target}: ${s.cases} cases in ${(s.totalMs / 1000).toFixed(1)} s; slowest ${s.maxMs.toFixed(1)} ms (${s.maxMsHow.slice(0, 160)})`);
  }
  console.log(`\n${STATS_HEADER}\n${rows.join("\n")}`);
  console.log("(slow: cases over 1 s; heavy: cases growing ArrayBuffers by over 256 MiB; errors: distinct typed-error messages)");
  process.exitCode = failed ? 1 : 0;
}
