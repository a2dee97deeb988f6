// Decoding and preprocessing off the main thread, so that indexing keeps the encoder busy: worker threads
// (decode_worker.ts) hash and decode file bytes while the main thread runs encodeImage, which blocks it. The pixels
// are those of `preprocess` (src/image/transform.ts), the transform embed-image uses, to the bit.
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { availableParallelism } from "node:os";
import { fileURLToPath } from "node:url";
import { Worker } from "node:worker_threads";
import { DEFAULT_MAX_JPEG_SCAN_WORK, DEFAULT_MAX_PIXELS, describeValue, limitOption } from "../image/types.js";
import type { WorkerConfig, WorkerJob, WorkerReply } from "./decode_worker.js";
import type { InputItem } from "./inputs.js";

export type { InputItem };

export interface Decoded {
  key: string;
  /** SHA-256 of the bytes read, hex; "" when they could not be read. */
  sha256: string;
  /** [3, R, R], as the model's transform gives; absent on error. */
  pixels?: Float32Array;
  /** False when the decoder's pixels may differ from Pillow's (see src/image/decode_jpeg.ts). */
  exact?: boolean;
  /** One line: why this item has no pixels. */
  error?: string;
}

/** Results in input order. */
export type Decoder = (items: AsyncIterable<InputItem> | Iterable<InputItem>) => AsyncIterable<Decoded>;

export interface DecodeLimits {
  /** Images declaring more pixels are refused before decoding (default 50 M, as preprocess). */
  maxPixels?: number;
  /** JPEGs whose scans ask for more work are refused before decoding (default 2^30, as preprocess). */
  maxJpegScanWork?: number;
  /** Files larger than this are refused unread (default 256 MiB; by `size`, then by the bytes read). */
  maxFileBytes?: number;
  /** V8 heap of each worker, MiB (default 512): a decoder that runs away ends its worker, not the process. */
  workerHeapMb?: number;
}

export interface DecodePoolOptions {
  /** Decode threads (default defaultDecodeThreads()). */
  threads?: number;
  /** CLIP's n_px: the model's image resolution. */
  resolution: number;
  limits?: DecodeLimits;
  /** Items read, decoding or decoded but not yet taken, per decode() call (default max(32, 4 × threads)): what
   *  bounds the memory, whatever the number of inputs. Keep it at two batches of the consumer or more. */
  window?: number;
  /** Niceness of the decode threads (Linux, per thread; default 0). Niced, they yield to the encoder, but on a busy
   *  machine they then get so little CPU that the encoder waits for them (bench/README.md#index-throughput). */
  nice?: number;
  /** Tests only: let crafted inputs crash a worker (see decode_worker.ts). */
  testCrash?: boolean;
}

export interface DecodePool {
  decode: Decoder;
  /** Ends the workers; a decode() still running fails with one line. */
  close(): Promise<void>;
}

export const DEFAULT_MAX_FILE_BYTES = 256 * 2 ** 20;

/**
 * Decode threads for an encoder on `encodeThreads` threads (default: every core, as the wasm backend's default):
 * one per three encoder threads, at least one, at most the cores. One thread decodes a photo in ~50 ms where
 * ViT-B/32 takes ~200 ms per image and thread, so one keeps up with three encoder threads with margin. On a
 * 2-core machine that is one: with the encoder on one thread it has the other core; on two, it takes the ~20% of
 * the CPU that decoding costs, at the same priority (see `nice`).
 */
export function defaultDecodeThreads(encodeThreads: number = availableParallelism()): number {
  return Math.max(1, Math.min(availableParallelism(), Math.ceil(encodeThreads / 3)));
}

const oneLine = (e: unknown) => String((e as Error)?.message ?? e).replace(/\s*\n\s*/g, " ").trim() || "unknown error";

function intOption(value: unknown, name: string, lo: number, hi: number): number {
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < lo || value > hi) {
    throw new RangeError(`createDecodePool: ${name} must be an integer in [${lo}, ${hi}], got ${typeof value === "number" ? value : describeValue(value)}`);
  }
  return value;
}

/** The compiled worker: beside this file in dist/, or, when this runs from its .ts source (tests), in dist/. */
function workerFile(): string {
  const here = import.meta.url;
  const url = here.endsWith(".ts") ? new URL("../../dist/src/collection/decode_worker.js", here) : new URL("./decode_worker.js", here);
  return fileURLToPath(url);
}

interface Job {
  results: Map<number, Decoded>;
  failed?: Error;
  wake(): void;
  cancelled: boolean;
}

interface Pending { id: number; job: Job; seq: number; item: InputItem }

interface Slot {
  worker: Worker;
  /** Posted to this worker and not answered yet, in the order posted (a worker answers in that order). */
  queue: Pending[];
  ready: boolean;
  reason?: string;
}

export function createDecodePool(options: DecodePoolOptions): DecodePool {
  if (typeof options !== "object" || options === null) throw new TypeError(`createDecodePool: expected options, got ${describeValue(options)}`);
  const threads = intOption(options.threads ?? defaultDecodeThreads(), "threads", 1, 64);
  const resolution = intOption(options.resolution, "resolution", 1, 4096);
  const window = intOption(options.window ?? Math.max(32, 4 * threads), "window", 1, 1 << 20);
  const nice = intOption(options.nice ?? 0, "nice", 0, 19);
  const limits = options.limits ?? {};
  if (typeof limits !== "object" || limits === null) throw new TypeError(`createDecodePool: limits must be an object, got ${describeValue(limits)}`);
  const maxFileBytes = limitOption(limits.maxFileBytes, "maxFileBytes", DEFAULT_MAX_FILE_BYTES);
  const workerHeapMb = limitOption(limits.workerHeapMb, "workerHeapMb", 512);
  const config: WorkerConfig = {
    resolution,
    maxPixels: limitOption(limits.maxPixels, "maxPixels", DEFAULT_MAX_PIXELS),
    maxJpegScanWork: limitOption(limits.maxJpegScanWork, "maxJpegScanWork", DEFAULT_MAX_JPEG_SCAN_WORK),
    nice,
    testCrash: options.testCrash === true,
  };
  const file = workerFile();
  if (!existsSync(file)) throw new Error(`decode pool: the worker script ${file} is missing (run "npm run build:ts")`);

  const jobs = new Set<Job>();
  let nextId = 0;
  let closed = false;
  let broken: Error | undefined;

  const fail = (e: Error) => {
    for (const job of jobs) {
      job.failed ??= e;
      job.wake();
    }
  };
  const finish = (p: Pending, d: Decoded) => {
    if (p.job.cancelled) return;
    p.job.results.set(p.seq, d);
    p.job.wake();
  };

  function spawn(): Slot {
    const worker = new Worker(file, {
      workerData: config,
      resourceLimits: Number.isFinite(workerHeapMb) ? { maxOldGenerationSizeMb: workerHeapMb } : undefined,
    });
    const slot: Slot = { worker, queue: [], ready: false };
    worker.on("message", (m: WorkerReply) => {
      if ("ready" in m) return void (slot.ready = true);
      const p = slot.queue.shift();
      if (!p || p.id !== m.id) return; // cannot happen: a worker answers in order
      if (!slot.queue.length) worker.unref();
      finish(p, "error" in m ? { key: p.item.key, sha256: m.sha256, error: m.error } : { key: p.item.key, sha256: m.sha256, pixels: m.pixels, exact: m.exact });
    });
    worker.on("error", (e) => void (slot.reason ??= e.message));
    worker.on("exit", (code) => {
      if (closed) return;
      const reason = slot.reason ?? `exit code ${code}`;
      const i = slots.indexOf(slot);
      if (!slot.ready) {
        // it died loading its script: a replacement would too
        broken = new Error(`decode pool: a worker could not start (${oneLine(reason)})`);
        return fail(broken);
      }
      slots[i] = spawn();
      // the first unanswered item is the one it was decoding; the others are posted again
      const [head, ...rest] = slot.queue;
      if (head) {
        hashOf(head.item).then((sha256) => finish(head, { key: head.item.key, sha256, error: `the decoder's worker thread died on this file (${oneLine(reason)})` }));
      }
      for (const p of rest) void post(p);
    });
    worker.unref(); // referenced only while it has work: an idle pool never holds the process open
    return slot;
  }

  const slots: Slot[] = Array.from({ length: threads }, spawn);

  async function hashOf(item: InputItem): Promise<string> {
    try {
      return createHash("sha256").update(await item.read()).digest("hex");
    } catch {
      return "";
    }
  }

  /** Reads an item and hands it to the least busy worker, or finishes it with an error. */
  async function post(p: Pending): Promise<void> {
    const key = p.item.key;
    let bytes: Uint8Array;
    try {
      if (typeof p.item.size === "number" && p.item.size > maxFileBytes) {
        return finish(p, { key, sha256: "", error: `file of ${p.item.size} bytes, more than the limit of ${maxFileBytes} (maxFileBytes)` });
      }
      bytes = await p.item.read();
      if (!(bytes instanceof Uint8Array)) throw new TypeError(`read() gave ${describeValue(bytes)}, expected a Uint8Array`);
    } catch (e) {
      return finish(p, { key, sha256: "", error: `cannot read: ${oneLine(e)}` });
    }
    if (bytes.length > maxFileBytes) {
      return finish(p, { key, sha256: createHash("sha256").update(bytes).digest("hex"), error: `file of ${bytes.length} bytes, more than the limit of ${maxFileBytes} (maxFileBytes)` });
    }
    if (closed || broken || p.job.cancelled) return;
    // moved, not copied, when the bytes are a whole buffer of their own (read() gives fresh bytes)
    const whole = bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength && bytes.buffer instanceof ArrayBuffer;
    const own = whole ? bytes : new Uint8Array(bytes); // a copy (Buffer's slice() would be a view)
    let slot = slots[0];
    for (const s of slots) if (s.queue.length < slot.queue.length) slot = s;
    if (!slot.queue.length) slot.worker.ref();
    slot.queue.push(p);
    slot.worker.postMessage({ id: p.id, bytes: own } satisfies WorkerJob, [own.buffer as ArrayBuffer]);
  }

  async function* decode(items: AsyncIterable<InputItem> | Iterable<InputItem>): AsyncGenerator<Decoded> {
    if (closed) throw new Error("decode pool: closed");
    if (broken) throw broken;
    const source: AsyncIterator<InputItem> | Iterator<InputItem> =
      items != null && typeof (items as AsyncIterable<InputItem>)[Symbol.asyncIterator] === "function"
        ? (items as AsyncIterable<InputItem>)[Symbol.asyncIterator]()
        : items != null && typeof (items as Iterable<InputItem>)[Symbol.iterator] === "function"
          ? (items as Iterable<InputItem>)[Symbol.iterator]()
          : (() => { throw new TypeError(`decode: expected an iterable of items, got ${describeValue(items)}`); })();
    let signal: (() => void) | undefined;
    const job: Job = { results: new Map(), cancelled: false, wake: () => { signal?.(); signal = undefined; } };
    jobs.add(job);
    let taken = 0; // items handed out
    let started = 0; // items taken from the source
    let exhausted = false;
    let pumping = false;
    const pump = async () => {
      if (pumping || exhausted) return;
      pumping = true;
      const before = started;
      try {
        while (!exhausted && !job.cancelled && !job.failed && started - taken < window) {
          const r = await source.next();
          if (r.done) {
            exhausted = true;
            break;
          }
          const item = r.value;
          const seq = started++;
          const p: Pending = { id: nextId++, job, seq, item };
          if (typeof item !== "object" || item === null || typeof item.key !== "string" || typeof item.read !== "function") {
            finish(p, { key: typeof item?.key === "string" ? item.key : "", sha256: "", error: `not an input item: ${describeValue(item)}` });
          } else {
            await post(p);
          }
        }
      } catch (e) {
        job.failed ??= e instanceof Error ? e : new Error(oneLine(e));
      } finally {
        pumping = false;
        // only on news: a wake with nothing new would spin the consumer's loop in microtasks
        if (started !== before || exhausted || job.failed) job.wake();
      }
    };
    try {
      for (;;) {
        if (job.failed) throw job.failed;
        const d = job.results.get(taken);
        if (d) {
          job.results.delete(taken++);
          void pump();
          yield d;
          continue;
        }
        if (exhausted && taken === started) return;
        const woken = new Promise<void>((r) => (signal = r));
        void pump();
        await woken;
      }
    } finally {
      job.cancelled = true;
      jobs.delete(job);
      if (!exhausted) await (source as AsyncIterator<InputItem>).return?.();
    }
  }

  return {
    decode,
    async close() {
      if (closed) return;
      closed = true;
      fail(new Error("decode pool: closed"));
      await Promise.all(slots.map((s) => s.worker.terminate()));
    },
  };
}
