// One target's campaign in a worker thread, so the main thread can stop it if a case never returns.
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parentPort, workerData } from "node:worker_threads";
import { runCampaign, type Finding } from "./harness.js";
import { makeTarget } from "./targets/index.js";

export interface WorkerInput {
  target: string;
  runs: number;
  seed: number;
  start: number;
  outDir: string;
  /** Int32 slot holding the index of the case running now. */
  heartbeat: SharedArrayBuffer;
}

const input = workerData as WorkerInput;
const beat = new Int32Array(input.heartbeat);
const target = makeTarget(input.target);

const stats = await runCampaign(target, {
  runs: input.runs,
  seed: input.seed,
  start: input.start,
  beforeCase: (i) => Atomics.store(beat, 0, i),
  onFinding(kind, f: Finding, caseInput) {
    const dir = join(input.outDir, input.target, `${kind}-${f.index}`);
    mkdirSync(dir, { recursive: true });
    for (const [name, bytes] of Object.entries(target.files(caseInput as never))) writeFileSync(join(dir, name), bytes);
    writeFileSync(join(dir, "finding.json"), JSON.stringify({ target: input.target, seed: input.seed, kind, ...f }, null, 2));
    parentPort!.postMessage({ type: "finding", kind, finding: f });
  },
});
parentPort!.postMessage({ type: "done", stats: { ...stats, messages: [...stats.messages] } });
