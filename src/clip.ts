// clip/clip.py of openai/CLIP: loading a checkpoint into a model (and, as the reference, the tokenizer and the
// image transform that go with it). Weights are read from bytes whatever their format; nothing is downloaded.

import type { Backend } from "./backend/backend.js";
import { TsBackend } from "./backend/ts.js";
import { preprocess, type RawImage } from "./image/index.js";
import { buildModel, type CLIP, type TokenTensor } from "./model.js";
import { loadTokenizer, type SimpleTokenizer, type TokenizerSource } from "./simple_tokenizer.js";
import type { Tensor } from "./tensor.js";
import { loadStateDict } from "./weights/index.js";

export type BackendName = "ts" | "wasm";

export interface LoadOptions {
  /** "wasm" (SIMD WebAssembly, the default) or "ts" (the readable kernels); both give the same bits. */
  backend?: BackendName;
  /** Threads of the wasm backend, the calling one included (default: the available cores, at most 8); never changes a bit. */
  threads?: number;
  /** Larger batches are refused with a clear error (default 1024). */
  maxBatch?: number;
  /** Weights limits, as float32 bytes: one tensor (default 4 GiB), all together (default 16 GiB). */
  maxTensorBytes?: number;
  maxTotalBytes?: number;
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
  const buf = await readFile(source);
  // a view, not a copy: a checkpoint can be gigabytes (the parsers all honour byteOffset)
  return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
}

/**
 * A CLIP model from a checkpoint in any supported format (safetensors, torch.save, OpenAI's TorchScript .pt,
 * Hugging Face CLIPModel), detected from its content; hyper-parameters inferred as the reference build_model.
 */
export async function loadModel(source: string | Uint8Array, options: LoadOptions = {}): Promise<CLIP> {
  const bytes = await readBytes(source);
  const backend = await createBackend(options);
  try {
    const stateDict = loadStateDict(bytes, { maxTensorBytes: options.maxTensorBytes, maxTotalBytes: options.maxTotalBytes });
    return buildModel(stateDict, backend, { maxBatch: options.maxBatch });
  } catch (e) {
    backend.dispose();
    throw e;
  }
}

// ---- clip.load: the model with the tokenizer and image transform that go with it

/** Vocab files looked for next to a checkpoint, in this order. */
export const VOCAB_NAMES = ["bpe_simple_vocab_16e6.txt.gz", "vocab.txt.gz", "tokenizer.json", "vocab.json"];

export interface ClipLoadOptions extends LoadOptions {
  /** The tokenizer's vocab (merges .txt/.gz, tokenizer.json, a folder with vocab.json + merges.txt, or bytes).
   *  Default: the first of bpe_simple_vocab_16e6.txt.gz, vocab.txt.gz, tokenizer.json, vocab.json next to the weights. */
  vocab?: TokenizerSource;
  /** Images with more pixels are refused before decoding (decompression bombs). */
  maxPixels?: number;
}

export interface LoadedClip {
  model: CLIP;
  tokenizer: SimpleTokenizer;
  /** The reference's _transform(n_px): image bytes (PNG, JPEG) or raw pixels → [1, 3, n_px, n_px]. */
  preprocess(image: Uint8Array | RawImage): Tensor;
  /** clip.tokenize with the model's context length. */
  tokenize(texts: string | readonly string[], options?: { truncate?: boolean }): TokenTensor;
}

/** The embedded tiny model (Node): the ResNet in weights/ of this package, the more accurate of the two (weights/README.md). */
export async function embeddedModelPaths(): Promise<{ weights: string; vocab: string }> {
  const { existsSync } = await import("node:fs");
  const { fileURLToPath } = await import("node:url");
  // src/clip.ts in the repository, dist/src/clip.js once built
  for (const up of ["../", "../../"]) {
    const weights = fileURLToPath(new URL(`${up}weights/clip-tiny-rn.safetensors`, import.meta.url));
    if (existsSync(weights)) return { weights, vocab: fileURLToPath(new URL(`${up}weights/vocab.txt.gz`, import.meta.url)) };
  }
  throw new Error("the embedded model (weights/clip-tiny-rn.safetensors) is missing from this installation");
}

/** The first of VOCAB_NAMES in the folder of a weights file (Node). */
export async function vocabNextTo(weightsPath: string): Promise<string | undefined> {
  const { existsSync } = await import("node:fs");
  const { dirname, join } = await import("node:path");
  return VOCAB_NAMES.map((n) => join(dirname(weightsPath), n)).find((p) => existsSync(p));
}

/**
 * clip.load of the reference: `const { model, preprocess, tokenize } = await load(path)`. Without a path, the
 * embedded tiny model and its vocab.
 */
export async function load(source?: string | Uint8Array, options: ClipLoadOptions = {}): Promise<LoadedClip> {
  let vocab = options.vocab;
  if (source === undefined) {
    const paths = await embeddedModelPaths();
    source = paths.weights;
    vocab ??= paths.vocab;
  } else if (vocab === undefined && typeof source === "string") {
    vocab = await vocabNextTo(source);
  }
  if (vocab === undefined) {
    throw new Error(`no tokenizer vocab: pass options.vocab (none of ${VOCAB_NAMES.join(", ")} is next to the weights)`);
  }
  const tokenizer = await loadTokenizer(vocab);
  const model = await loadModel(source, options);
  try {
    return withTokenizer(model, tokenizer, options.maxPixels);
  } catch (e) {
    model.dispose();
    throw e;
  }
}

/** The model with its tokenizer and the reference transform at the model's resolution and context length. */
export function withTokenizer(model: CLIP, tokenizer: SimpleTokenizer, maxPixels?: number): LoadedClip {
  const { imageResolution: size, contextLength, vocabSize } = model.config;
  if (tokenizer.vocabSize !== vocabSize) {
    throw new Error(`the vocab has ${tokenizer.vocabSize} tokens but the model's token_embedding has ${vocabSize}`);
  }
  return {
    model,
    tokenizer,
    preprocess: (image) => preprocess(image, { size, maxPixels }),
    tokenize: (texts, o = {}) => tokenizer.tokenize(texts, { contextLength, truncate: o.truncate }),
  };
}
