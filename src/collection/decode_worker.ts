// One thread of the decode pool (decode_pool.ts): file bytes in, SHA-256 and CLIP's preprocessed pixels out, one
// message at a time in the order they came. Loaded from dist/ as a worker_threads script.
import { createHash } from "node:crypto";
import { readlinkSync } from "node:fs";
import { setPriority } from "node:os";
import { parentPort, workerData } from "node:worker_threads";
import { preprocess } from "../image/transform.js";

export interface WorkerConfig {
  resolution: number;
  maxPixels: number;
  maxJpegScanWork: number;
  /** Niceness of this thread (Linux: nice is per thread); > 0 makes it yield to the encoder's threads. */
  nice: number;
  /** Tests only: bytes starting with TEST_CRASH + "exit" | "oom" | "throw" end this thread that way. */
  testCrash: boolean;
}
export interface WorkerJob { id: number; bytes: Uint8Array }
export type WorkerReply =
  | { id: number; sha256: string; pixels: Float32Array; exact: boolean }
  | { id: number; sha256: string; error: string }
  | { ready: true };

export const TEST_CRASH = "CLIP-TS-TEST-CRASH:";

const oneLine = (e: unknown) => String((e as Error)?.message ?? e).replace(/\s*\n\s*/g, " ").trim() || "unknown error";

function lowerPriority(nice: number): void {
  if (nice === 0) return;
  try {
    // "/proc/thread-self" → "PID/task/TID"; setpriority(PRIO_PROCESS, TID) changes this thread only
    const tid = Number(readlinkSync("/proc/thread-self").split("/").pop());
    if (Number.isInteger(tid) && tid > 0) setPriority(tid, nice);
  } catch {
    // not Linux, or not allowed: run at the process's priority
  }
}

function testCrash(bytes: Uint8Array): void {
  const head = new TextDecoder().decode(bytes.subarray(0, TEST_CRASH.length + 5));
  if (!head.startsWith(TEST_CRASH)) return;
  const how = head.slice(TEST_CRASH.length);
  if (how === "exit") process.exit(3); // in a worker: ends this thread only
  if (how.startsWith("oom")) {
    const hoard: number[][] = [];
    for (;;) hoard.push(Array.from({ length: 1 << 16 }, (_, i) => i + 0.5)); // the heap limit ends the thread
  }
  if (how.startsWith("throw")) throw new Error("test: uncaught in the decode worker");
}

if (parentPort) {
  const port = parentPort;
  const config = workerData as WorkerConfig;
  lowerPriority(config.nice);
  const options = { size: config.resolution, maxPixels: config.maxPixels, maxJpegScanWork: config.maxJpegScanWork };
  port.on("message", ({ id, bytes }: WorkerJob) => {
    const sha256 = createHash("sha256").update(bytes).digest("hex");
    if (config.testCrash) testCrash(bytes);
    let reply: WorkerReply;
    try {
      const t = preprocess(bytes, options);
      reply = { id, sha256, pixels: t.data, exact: t.exact };
    } catch (e) {
      port.postMessage({ id, sha256, error: oneLine(e) } satisfies WorkerReply);
      return;
    }
    port.postMessage(reply, [reply.pixels.buffer as ArrayBuffer]);
  });
  port.postMessage({ ready: true } satisfies WorkerReply);
}
