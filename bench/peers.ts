// The peer engines live in bench/node_modules (`npm run bench:setup`, from bench/package.json), not in the
// project's install: this file runs as dist/bench/peers.js, whose own lookup would never reach bench/, so the peers
// are required from bench/. Each is typed by the few members the bench uses (below), so the build needs none of them.

import { createRequire } from "node:module";
import { join } from "node:path";
import { ROOT } from "./models.js";

export const SETUP = "run `npm run bench:setup` to install the bench's peers into bench/node_modules";

const fromBench = createRequire(join(ROOT, "bench", "package.json"));

/** The peers of `names` that cannot be found. */
export function missingPeers(names: readonly string[]): string[] {
  return names.filter((name) => {
    try {
      fromBench.resolve(name);
      return false;
    } catch {
      return true;
    }
  });
}

/** The peer's module (its CommonJS build: the tfjs backend registers on the same tfjs-core as the bench uses). */
export function loadPeer<T>(name: string): T {
  if (missingPeers([name]).length) throw new Error(`${name} is not installed: ${SETUP}`);
  return fromBench(name) as T;
}

/** The subset of onnxruntime-common's API used here, shared by onnxruntime-web and onnxruntime-node. */
export interface OrtSession {
  run(feeds: Record<string, unknown>): Promise<Record<string, { data: unknown }>>;
  release(): Promise<void>;
}
export interface Ort {
  Tensor: new (type: string, data: Float32Array | BigInt64Array, dims: number[]) => unknown;
  InferenceSession: { create(model: Uint8Array | string, options: Record<string, unknown>): Promise<OrtSession> };
  env: { wasm: { numThreads?: number; simd?: boolean | string } };
}

/** @tensorflow/tfjs-core, the part bench:gemm uses. */
export interface TfTensor {
  dataSync(): unknown;
  dispose(): void;
}
export interface Tf {
  setBackend(name: string): Promise<boolean>;
  env(): { getBool(flag: string): boolean };
  randomUniform(shape: number[], min: number, max: number): TfTensor;
  matMul(a: TfTensor, b: TfTensor): TfTensor;
}
/** @tensorflow/tfjs-backend-wasm: importing it registers the "wasm" backend. */
export interface TfWasm {
  setThreadsCount(n: number): void;
}
