// clip/clip.py of openai/CLIP: loading a checkpoint into a model (and, as the reference, the tokenizer and the
// image transform that go with it). Weights are read from bytes whatever their format; nothing is downloaded.

import { ASSET_FILES, assetPath, openaiVocabPath } from "./assets.js";
import { WEIGHT_PRECISIONS, type Backend, type Precision, type WeightPrecision } from "./backend/backend.js";
import { TsBackend } from "./backend/ts.js";
import { preprocess, type RawImage } from "./image/index.js";
import { ConfigError, collectHints, OPENAI_HINTS, VOCAB_NAMES, type Hints, type HyperParamOptions } from "./config.js";
import { buildModel, type CLIP, type TokenTensor, type Towers } from "./model.js";
import { OPEN_CLIP_CONFIGS } from "./open_clip_configs.js";
import { loadTokenizer, type SimpleTokenizer, type TokenizerSource } from "./simple_tokenizer.js";
import { HalfTensor } from "./nn.js";
import { numel, storedOf, type StateDict, type Tensor } from "./tensor.js";
import { DEFAULT_MAX_TOTAL_BYTES, LIMIT_NAMES, loadStateDictWithFormat, type WeightsLimits, normaliseKeys, WeightsError, type WeightsFormat } from "./weights/index.js";

export type BackendName = "ts" | "wasm";

export interface LoadOptions extends HyperParamOptions {
  /** "wasm" (SIMD WebAssembly, the default) or "ts" (the readable kernels); both give the same bits. */
  backend?: BackendName;
  /** Threads of the wasm backend, the calling one included (default: the available cores, at most 8); never changes a bit. */
  threads?: number;
  /** Larger batches are refused with a clear error (default 1024). */
  maxBatch?: number;
  /** How the linear and conv layers' weights are kept: "fp32" (default) or "fp16", half the memory, widened inside
   *  the GEMM or before each convolution (the same bits: every weight must be an fp16 value, as in an fp16
   *  checkpoint; others are refused). */
  weights?: WeightPrecision;
  /** "image" or "text": load that tower only (encodeImage or encodeText; the other call is refused); default "both".
   *  The other tower's keys are still checked, but its weights are neither prepared nor kept. */
  towers?: Towers;
  /** "int8": the transformers' linear layers and the ViT's patch embedding run with int8 weights and activations and
   *  int32 sums, the same bits on every backend and thread count (src/kernels/linear_int8.ts); "f32" (default):
   *  every layer in float32. */
  precision?: Precision;
  /** Weights limits, as float32 bytes: one tensor (default 4 GiB), all together (default 16 GiB, counting what is
   *  inflated from a zip); tensors in a file (100 000); a safetensors header (100 MB); a torch pickle (64 MiB). */
  maxTensorBytes?: number;
  maxTotalBytes?: number;
  maxTensors?: number;
  maxHeaderBytes?: number;
  maxPickleBytes?: number;
  /** A model given by URL: its expected SHA-256 (a name's comes from clip.py's table). */
  sha256?: string;
  /** Download progress of a named or URL model: bytes so far and the total, if known. */
  onProgress?: (done: number, total: number | undefined) => void;
}

/** Every option load() and loadModel() know: any other is refused rather than ignored. */
export const LOAD_OPTION_NAMES = [
  "backend", "threads", "maxBatch", "weights", "towers", "precision", "maxTensorBytes", "maxTotalBytes", "maxTensors", "maxHeaderBytes", "maxPickleBytes", "arch", "config", "activation", "heads",
  "vocab", "maxPixels", "sha256", "onProgress",
] as const;

export function checkOptionNames(options: object, known: readonly string[], where: string): void {
  for (const k of Object.keys(options)) {
    if (!known.includes(k)) throw new TypeError(`${where}: unknown option "${k}" (known: ${known.join(", ")})`);
  }
}

export async function createBackend(options: LoadOptions = {}): Promise<Backend> {
  const name = options.backend ?? "wasm";
  const weights = options.weights ?? "fp32";
  if (!WEIGHT_PRECISIONS.includes(weights)) {
    throw new Error(`unknown weights "${weights as string}" (expected "fp32" or "fp16")`);
  }
  if (name === "ts") return new TsBackend({ weights });
  if (name === "wasm") {
    const { createWasmBackend } = await import("./backend/wasm.js");
    return createWasmBackend({ threads: options.threads, weights });
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

/** A checkpoint read, with everything found about what its weights cannot tell. */
export interface Checkpoint {
  stateDict: StateDict;
  format: WeightsFormat;
  /** Sources of the hyper-parameters, first wins (see collectHints). */
  hints: Hints[];
  /** Tokenizer files found with the weights (Node paths). */
  vocab?: string;
}

/** A checkpoint from bytes (any format), with the options' hints; no file is looked at. */
export function checkpointFromBytes(bytes: Uint8Array, options: LoadOptions = {}, fileConfig?: { json: unknown; source: string }): Checkpoint {
  const { format, stateDict, scriptClass } = loadStateDictWithFormat(bytes, weightsLimits(options));
  const hints = collectHints(options, OPEN_CLIP_CONFIGS, fileConfig, formatHints(scriptClass));
  return { stateDict, format, hints };
}

/**
 * A checkpoint from a path (Node): a weights file, a sharded checkpoint's .index.json, or a folder (Hugging Face
 * save_pretrained, open_clip push_to_hub); a config.json or open_clip_config.json with the weights is read too.
 */
export async function readCheckpoint(path: string, options: LoadOptions = {}): Promise<Checkpoint> {
  const { findCheckpoint } = await import("./checkpoint.js");
  const { basename } = await import("node:path");
  const files = findCheckpoint(await localModelPath(path, options));
  const fileConfig = files.config && { json: files.config.json, source: basename(files.config.path) };
  let ck: Checkpoint;
  if (!files.index) {
    // safetensors and torch zips are opened, not read: their tensors are read where the backend keeps them
    const { openWeightsFile } = await import("./weights/file.js");
    const opened = openWeightsFile(files.weights[0]!, weightsLimits(options));
    ck = opened
      ? { stateDict: opened.stateDict, format: opened.format, hints: collectHints(options, OPEN_CLIP_CONFIGS, fileConfig, formatHints(opened.scriptClass)) }
      : checkpointFromBytes(await readBytes(files.weights[0]!), options, fileConfig);
  } else {
    // shards: each holds exactly the keys the index gives it; names are normalised once, over the whole
    const merged: StateDict = new Map();
    let total = 0, format: WeightsFormat = "safetensors", scriptClass: string | undefined;
    const maxTotal = options.maxTotalBytes ?? DEFAULT_MAX_TOTAL_BYTES;
    for (const [file, keys] of files.index.keysByFile) {
      const path = files.weights.find((w) => basename(w) === file)!, limits = { ...weightsLimits(options), rawKeys: true };
      const { openWeightsFile } = await import("./weights/file.js");
      const opened = wrapShard(file, () => openWeightsFile(path, limits));
      const shard: { format: WeightsFormat; stateDict: StateDict; scriptClass?: string } = opened
        ?? (await readBytes(path).then((bytes) => wrapShard(file, () => loadStateDictWithFormat(bytes, limits))));
      format = shard.format;
      scriptClass ??= shard.scriptClass;
      const expected = new Set(keys);
      for (const [k, t] of shard.stateDict) {
        if (!expected.has(k)) throw new WeightsError(`shard "${file}" holds "${k}", which the index does not list for it`);
        total += numel(t.shape) * 4;
        if (total > maxTotal) throw new WeightsError(`the shards hold more than maxTotalBytes (${maxTotal} bytes as float32)`);
        merged.set(k, t);
      }
      for (const k of keys) if (!shard.stateDict.has(k)) throw new WeightsError(`shard "${file}" lacks "${k}", which the index lists`);
    }
    const hints = collectHints(options, OPEN_CLIP_CONFIGS, fileConfig, formatHints(scriptClass));
    ck = { stateDict: normaliseKeys(merged), format, hints };
  }
  ck.vocab = files.vocab;
  return ck;
}

/**
 * The local path of a model source (Node): a file or folder as it is; a name of clip.load ("ViT-B/32") or an http(s)
 * URL downloaded into the cache (CLIP_TS_CACHE), checked against its SHA-256, resumed if interrupted.
 */
export async function localModelPath(source: string, options: Pick<LoadOptions, "sha256" | "onProgress"> & { offlineHint?: string } = {}): Promise<string> {
  const { existsSync } = await import("node:fs");
  const isUrl = /^https?:\/\//i.test(source);
  if (!isUrl && existsSync(source)) return source;
  const hub = await import("./hub.js");
  if (!isUrl && !(source in hub.MODELS)) throw new ConfigError(hub.unknownModelMessage(source));
  return (await hub.resolveModel(source, { sha256: options.sha256, onProgress: options.onProgress, offlineHint: options.offlineHint })).path;
}

/** What a TorchScript archive's own module class says: OpenAI's clip/model.py (clip.load's files) means OpenAI's
 *  settings; a script of any other model (open_clip's jit export is GELU) says nothing, so its defaults are marked. */
function formatHints(scriptClass: string | undefined): Hints | undefined {
  return scriptClass === "__torch__.clip.model.CLIP" ? OPENAI_HINTS : undefined;
}

function weightsLimits(options: LoadOptions): WeightsLimits {
  const limits: WeightsLimits = {};
  for (const k of LIMIT_NAMES) if (options[k] !== undefined) limits[k] = options[k];
  return limits;
}

function wrapShard<T>(file: string, fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    if (e instanceof WeightsError) throw new WeightsError(`shard "${file}": ${e.message}`);
    throw e;
  }
}

/** The model of a checkpoint on a backend; the backend is disposed if the weights do not make a model. */
export function modelFromCheckpoint(ck: Checkpoint, backend: Backend, options: LoadOptions = {}): CLIP {
  try {
    // an upper bound of the memory the weights take, grown once: pages never written cost nothing
    let bytes = 0;
    for (const t of ck.stateDict.values()) if (t.shape.length >= 2) bytes += numel(t.shape) * 4;
    backend.reserveWeights?.(bytes);
    return buildModel(ck.stateDict, backend, { maxBatch: options.maxBatch, towers: options.towers, hints: ck.hints, precision: options.precision });
  } catch (e) {
    backend.dispose();
    throw e;
  }
}

/**
 * A CLIP model from a checkpoint in any supported format (safetensors, torch.save, OpenAI's TorchScript .pt,
 * Hugging Face CLIPModel, open_clip), detected from its content; a path may also be a folder or a shard index.
 * Hyper-parameters come from the key names and shapes as in the reference build_model, and what those cannot
 * tell from the options, the checkpoint's config or format; model.config.sources says where each came from.
 */
export async function loadModel(source: string | Uint8Array, options: LoadOptions = {}): Promise<CLIP> {
  checkOptionNames(options, LOAD_OPTION_NAMES, "loadModel");
  const ck = typeof source === "string" ? await readCheckpoint(source, options) : checkpointFromBytes(source, options);
  const ready = readTableAhead(ck.stateDict, options.towers);
  return ready(modelFromCheckpoint(ck, await createBackend(options), options));
}

/**
 * Starts reading a file's fp16 token embedding (49 MiB for OpenAI's vocab) on another thread, into the array the
 * model keeps (a HalfTensor put in the state dict): the first touch of those fresh pages costs ~140 ms on a VM,
 * paid there while this thread builds the rest. The function returned waits for the read before the model is
 * handed out (disposing it if the read failed). The read's failure is kept, never left unhandled, so a build that
 * throws first is reported as itself.
 */
export function readTableAhead(sd: StateDict, towers?: Towers): (model: CLIP) => Promise<CLIP> {
  const key = "token_embedding.weight", t = sd.get(key), stored = t && storedOf(t);
  if (towers === "image" || !t || !stored?.readAsync || stored.dtype !== "F16") return async (model) => model;
  const bits = new Uint16Array(stored.byteLength / 2);
  const read = stored.readAsync(new Uint8Array(bits.buffer)).then(() => null, (e: unknown) => e);
  sd.set(key, new HalfTensor(t.shape, bits));
  return async (model) => {
    const error = await read;
    if (error) {
      model.dispose();
      throw error;
    }
    return model;
  };
}

// ---- clip.load: the model with the tokenizer and image transform that go with it

export { openaiVocabPath } from "./assets.js";

export { VOCAB_NAMES } from "./config.js";

export interface ClipLoadOptions extends LoadOptions {
  /** The tokenizer's vocab (merges .txt/.gz, tokenizer.json, a folder with vocab.json + merges.txt, or bytes).
   *  Default: the tokenizer files with the weights (see VOCAB_NAMES), else OpenAI's vocab, which ships with clip-ts,
   *  for a model of its 49408 tokens. */
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
  const weights = await assetPath("embeddedWeights");
  const vocab = await assetPath("embeddedVocab");
  if (!weights || !vocab) throw new Error(`the embedded model (${ASSET_FILES.embeddedWeights}) is missing from this installation`);
  return { weights, vocab };
}

/** What the embedded models' card says of what their weights cannot tell: trained with the reference model.py. */
export const EMBEDDED_HINTS: Hints = { ...OPENAI_HINTS, source: "the embedded model's card" };

/** The first of VOCAB_NAMES in the folder of a weights file, or the folder itself for vocab.json + merges.txt (Node). */
export async function vocabNextTo(weightsPath: string): Promise<string | undefined> {
  const { vocabIn } = await import("./checkpoint.js");
  const { dirname } = await import("node:path");
  const { statSync } = await import("node:fs");
  return vocabIn(statSync(weightsPath).isDirectory() ? weightsPath : dirname(weightsPath));
}

/**
 * clip.load of the reference: `const { model, preprocess, tokenize } = await load(path)`. The path may be a file,
 * a folder or a shard index; without one, the embedded tiny model and its vocab.
 */
export async function load(source?: string | Uint8Array, options: ClipLoadOptions = {}): Promise<LoadedClip> {
  checkOptionNames(options, LOAD_OPTION_NAMES, "load");
  let ck: Checkpoint;
  let vocab = options.vocab;
  if (source === undefined) {
    const paths = await embeddedModelPaths();
    ck = checkpointFromBytes(await readBytes(paths.weights), options);
    ck.hints.push(EMBEDDED_HINTS);
    vocab ??= paths.vocab;
  } else {
    ck = typeof source === "string" ? await readCheckpoint(source, options) : checkpointFromBytes(source, options);
    vocab ??= ck.vocab;
  }
  const ready = readTableAhead(ck.stateDict, options.towers);
  const model = await ready(modelFromCheckpoint(ck, await createBackend(options), options));
  try {
    if (vocab === undefined) {
      if (model.config.vocabSize !== OPENAI_VOCAB_SIZE) {
        throw new Error(`no tokenizer vocab for a model of ${model.config.vocabSize} tokens: pass options.vocab (none of ${VOCAB_NAMES.join(", ")} is with the weights)`);
      }
      vocab = await openaiVocabPath();
    }
    return withTokenizer(model, await loadTokenizer(vocab), options.maxPixels);
  } catch (e) {
    model.dispose();
    throw e;
  }
}

/** The size of OpenAI's vocab: 256 bytes, 256 with </w>, 48894 merges, and the two special tokens. */
export const OPENAI_VOCAB_SIZE = 49408;

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
