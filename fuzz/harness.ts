// Runs fuzz cases against one parser and classifies each: a successful parse, the parser's own typed error with a
// message, or a crash (any other exception, or a typed error without a message). Every case is timed and the growth
// of ArrayBuffer memory across it is measured, so hangs-in-the-making and allocations the input cannot back show up.
import { hashString, Rng } from "./rng.js";

export interface FuzzCase<I> {
  input: I;
  /** What was done to which seed, for the report. */
  how: string;
}

export interface FuzzTarget<I = unknown> {
  readonly name: string;
  /** The error class the parser promises to throw for bad input. */
  readonly errorName: string;
  isTyped(e: unknown): boolean;
  generate(rng: Rng): FuzzCase<I>;
  /** Parses (and, where cheap, uses) the input; throws whatever the parser throws. */
  run(input: I): unknown;
  /** Files that reproduce a case (name → bytes), for saving crashers. */
  files(input: I): Record<string, Uint8Array>;
}

export interface Finding {
  index: number;
  how: string;
  detail: string;
  ms: number;
  bytes: number;
}

export interface CampaignStats {
  target: string;
  cases: number;
  ok: number;
  typed: number;
  crashes: Finding[];
  slow: Finding[];
  heavy: Finding[];
  maxMs: number;
  maxMsHow: string;
  maxBytes: number;
  totalMs: number;
  /** Distinct typed-error messages (numbers replaced by #), with counts: how much of the parser the campaign reached. */
  messages: Map<string, number>;
}

export interface CampaignOptions {
  runs: number;
  seed: number;
  /** First case index (a resumed campaign continues after a hang). */
  start?: number;
  /** Cases slower than this are flagged (default 1000 ms). */
  slowMs?: number;
  /** Growth of ArrayBuffers plus JS heap above this is flagged (default 256 MiB). */
  heavyBytes?: number;
  /** Called before each case with its index (a watchdog's heartbeat). */
  beforeCase?: (index: number) => void;
  onFinding?: (kind: "crash" | "slow" | "heavy", f: Finding, input: unknown) => void;
}

export type Outcome = { kind: "ok" | "typed"; message?: string } | { kind: "crash"; detail: string };

/** The case `index` of a campaign: a pure function of (seed, target name, index). */
export function caseOf<I>(target: FuzzTarget<I>, seed: number, index: number): FuzzCase<I> {
  return target.generate(new Rng(seed, hashString(target.name), index));
}

export function classify(target: FuzzTarget, e: unknown): Outcome {
  if (target.isTyped(e)) {
    const message = (e as Error).message;
    if (typeof message === "string" && message.trim() !== "") return { kind: "typed", message };
    return { kind: "crash", detail: `${target.errorName} with an empty message` };
  }
  const err = e as Error | undefined;
  const name = err?.constructor?.name ?? typeof e;
  const frame = err?.stack?.split("\n").find((l) => l.includes("/src/")) ?? err?.stack?.split("\n")[1] ?? "";
  return { kind: "crash", detail: `${name}: ${err?.message ?? String(e)} ${frame.trim()}`.trim() };
}

export async function runOne<I>(target: FuzzTarget<I>, input: I): Promise<{ outcome: Outcome; ms: number; bytes: number }> {
  // ArrayBuffers and the JS heap both: a flood of small objects (pickle opcodes, JSON entries) grows only the heap.
  const m0 = process.memoryUsage();
  const t0 = performance.now();
  let outcome: Outcome;
  let result: unknown;
  try {
    result = target.run(input);
    if (result instanceof Promise) result = await result;
    outcome = { kind: "ok" };
  } catch (e) {
    outcome = classify(target, e);
  }
  const ms = performance.now() - t0;
  // Measured while the result is still alive: what the parse kept counts too.
  const m1 = process.memoryUsage();
  const bytes = Math.max(0, m1.arrayBuffers - m0.arrayBuffers) + Math.max(0, m1.heapUsed - m0.heapUsed);
  return { outcome, ms, bytes };
}

const normalise = (m: string): string =>
  m
    .replace(/"[^"]*"/g, '"…"')
    .replace(/\d+/g, "#")
    .slice(0, 90);

export async function runCampaign<I>(target: FuzzTarget<I>, opts: CampaignOptions): Promise<CampaignStats> {
  const slowMs = opts.slowMs ?? 1000;
  const heavyBytes = opts.heavyBytes ?? 256 * 2 ** 20;
  const stats: CampaignStats = {
    target: target.name,
    cases: 0,
    ok: 0,
    typed: 0,
    crashes: [],
    slow: [],
    heavy: [],
    maxMs: 0,
    maxMsHow: "",
    maxBytes: 0,
    totalMs: 0,
    messages: new Map(),
  };
  const gc = (globalThis as { gc?: () => void }).gc;
  const start = opts.start ?? 0;
  for (let i = start; i < start + opts.runs; i++) {
    opts.beforeCase?.(i);
    const c = caseOf(target, opts.seed, i);
    // Start each case from a small heap of ArrayBuffers when we can, so growth is the case's own.
    if (gc && process.memoryUsage().arrayBuffers > 512 * 2 ** 20) gc();
    const { outcome, ms, bytes } = await runOne(target, c.input);
    stats.cases++;
    stats.totalMs += ms;
    if (ms > stats.maxMs) {
      stats.maxMs = ms;
      stats.maxMsHow = `#${i} ${c.how}`;
    }
    stats.maxBytes = Math.max(stats.maxBytes, bytes);
    const finding = (detail: string): Finding => ({ index: i, how: c.how, detail, ms, bytes });
    if (outcome.kind === "ok") stats.ok++;
    else if (outcome.kind === "typed") {
      stats.typed++;
      const key = normalise(outcome.message!);
      stats.messages.set(key, (stats.messages.get(key) ?? 0) + 1);
    } else if (outcome.kind === "crash") {
      const f = finding(outcome.detail);
      stats.crashes.push(f);
      opts.onFinding?.("crash", f, c.input);
    }
    if (ms > slowMs) {
      const f = finding(`${ms.toFixed(0)} ms`);
      stats.slow.push(f);
      opts.onFinding?.("slow", f, c.input);
    }
    if (bytes > heavyBytes) {
      const f = finding(`${(bytes / 2 ** 20).toFixed(0)} MiB of ArrayBuffers and JS heap`);
      stats.heavy.push(f);
      opts.onFinding?.("heavy", f, c.input);
    }
  }
  return stats;
}

export function formatStats(s: CampaignStats): string {
  return [
    s.target.padEnd(12),
    String(s.cases).padStart(7),
    String(s.ok).padStart(7),
    String(s.typed).padStart(7),
    String(s.crashes.length).padStart(7),
    String(s.slow.length).padStart(5),
    String(s.heavy.length).padStart(5),
    s.maxMs.toFixed(1).padStart(9),
    (s.maxBytes / 2 ** 20).toFixed(1).padStart(8),
    String(s.messages.size).padStart(6),
  ].join(" ");
}

export const STATS_HEADER = [
  "parser".padEnd(12),
  "cases".padStart(7),
  "ok".padStart(7),
  "typed".padStart(7),
  "crashes".padStart(7),
  "slow".padStart(5),
  "heavy".padStart(5),
  "max ms".padStart(9),
  "max MiB".padStart(8),
  "errors".padStart(6),
].join(" ");
