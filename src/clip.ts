// clip/clip.py of openai/CLIP: loading a checkpoint into a model (and, as the reference, the tokenizer and the
// image transform that go with it). Weights are read from bytes whatever their format; nothing is downloaded.

import type { Backend } from "./backend/backend.js";
import { TsBackend } from "./backend/ts.js";
import { buildModel, type CLIP } from "./model.js";
import { loadStateDict } from "./weights/index.js";

export type BackendName = "ts" | "wasm";

export interface LoadOptions {
  /** "wasm" (SIMD WebAssembly, the default) or "ts" (the readable kernels); both give the same bits. */
  backend?: BackendName;
  /** Worker threads for the wasm backend (default: the available cores); never changes a bit. */
  threads?: number;
}

export async function createBackend(options: LoadOptions = {}): Promise<Backend> {
  const name = options.backend ?? "wasm";
  if (name === "ts") return new TsBackend();
  if (name === "wasm") {
    const { createWasmBackend } = await import("./backend/wasm.js");
    return createWasmBackend({ threads: options.threads });
  }
  throw new Error(`unknown backend "${name as string}" (expected "ts" or "wasm")`);
}

/** Reads a file in Node; bytes pass through (the browser's way in). */
export async function readBytes(source: string | Uint8Array): Promise<Uint8Array> {
  if (typeof source !== "string") return source;
  const { readFile } = await import("node:fs/promises");
  return new Uint8Array(await readFile(source));
}

/**
 * A CLIP model from a checkpoint in any supported format (safetensors, torch.save, OpenAI's TorchScript .pt,
 * Hugging Face CLIPModel), detected from its content; hyper-parameters inferred as the reference build_model.
 */
export async function loadModel(source: string | Uint8Array, options: LoadOptions = {}): Promise<CLIP> {
  const stateDict = loadStateDict(await readBytes(source));
  const backend = await createBackend(options);
  try {
    return buildModel(stateDict, backend);
  } catch (e) {
    backend.dispose();
    throw e;
  }
}
