// What the commands share: the I/O they write to, files in and out with one-line errors, the embedded default
// model, model / tokenizer / image loading from the common options.
import { closeSync, existsSync, fstatSync, openSync, readFileSync, readSync, statSync } from "node:fs";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { ASSET_FILES, PACKAGE_ROOT } from "../assets.js";
import { PRECISIONS, type Backend, type Precision, type WeightPrecision } from "../backend/backend.js";
import {
  checkpointFromBytes, createBackend, localModelPath, EMBEDDED_HINTS, modelFromCheckpoint, OPENAI_VOCAB_SIZE, openaiVocabPath, readCheckpoint, readTableAhead,
  VOCAB_NAMES, vocabNextTo, type BackendName, type Checkpoint,
} from "../clip.js";
import { assumedSettings, ConfigError, MLP_ACTIVATIONS, type CLIPConfig, type HyperParamOptions } from "../config.js";
import type { CLIP, TokenTensor, Towers } from "../model.js";
import { readNpyFloat32, readNpyTokens, writeNpy } from "../npy.js";
import type { StateDict, Tensor } from "../tensor.js";
import type { SimpleTokenizer } from "../simple_tokenizer.js";
import { choice, CliError, integer, UsageError } from "./args.js";
import { downloadProgress, Progress, type ProgressSink } from "./progress.js";
import { writeFileAtomic, type OutputFile, type OutputFs } from "./output.js";

export interface Io {
  stdout: { write(s: string): void };
  /** Errors and the progress bar (drawn only when isTTY). */
  stderr: ProgressSink;
  /** Relative paths on the command line resolve against this. */
  cwd: string;
}

export interface Command {
  name: string;
  /** One line for the command list. */
  summary: string;
  help: string;
  run(argv: string[], io: Io): Promise<void>;
}

/** The package root (the directory of package.json and weights/). */
export function packageRoot(): string {
  return fileURLToPath(PACKAGE_ROOT);
}

export const DEFAULT_MODEL = ASSET_FILES.embeddedWeights;
export const DEFAULT_VOCAB = ASSET_FILES.embeddedVocab;

function embedded(rel: string, flag: string): string {
  const path = join(packageRoot(), rel);
  if (!existsSync(path)) throw new CliError(`the embedded default ${rel} is missing from the package; pass ${flag}`);
  return path;
}

/** Reads a whole file; the progress bar shows for files of 64 MiB and more. */
export function readInput(io: Io, path: string, what: string, label = "loading"): Uint8Array {
  const full = resolve(io.cwd, path);
  let fd: number;
  try {
    fd = openSync(full, "r");
  } catch (e) {
    throw new CliError(`${what}: ${fsReason(e)} "${path}"`);
  }
  try {
    const stat = fstatSync(fd);
    if (stat.isDirectory()) throw new CliError(`${what}: "${path}" is a directory, expected a file`);
    const size = stat.size;
    if (size < 64 * 2 ** 20 || !io.stderr.isTTY) return new Uint8Array(readFileSync(fd));
    const out = new Uint8Array(size);
    const bar = new Progress(io.stderr, label, size, "bytes");
    let off = 0;
    while (off < size) {
      const n = readSync(fd, out, off, Math.min(16 * 2 ** 20, size - off), off);
      if (n === 0) throw new CliError(`${what}: "${path}" shrank while being read`);
      off += n;
      bar.update(off);
    }
    bar.finish();
    return out;
  } catch (e) {
    if (e instanceof CliError) throw e;
    throw new CliError(`${what}: ${fsReason(e)} "${path}"`);
  } finally {
    closeSync(fd);
  }
}

/**
 * Replaces the file at path with bytes, or with what `fill` writes to it, whole or not at all: a failed write
 * leaves the previous file and no partial one (output.ts).
 */
export function writeOutput(
  io: Io, path: string, bytes: Uint8Array | string | ((out: OutputFile) => void), what = "--out", fs?: OutputFs,
): void {
  const fill = typeof bytes === "function" ? bytes : (out: OutputFile) => out.write(typeof bytes === "string" ? new TextEncoder().encode(bytes) : bytes);
  writeFileAtomic(resolve(io.cwd, path), path, fill, what, fs);
}

function fsReason(e: unknown): string {
  const code = (e as { code?: string }).code;
  switch (code) {
    case "ENOENT": return "no such file";
    case "EISDIR": return "is a directory:";
    case "EACCES": case "EPERM": return "permission denied for";
    default: return `cannot access (${(e as Error).message}):`;
  }
}

/** A user-facing message for an error thrown by the library on bad input (prefixed with `what` unless null). */
export function wrap<T>(what: string | null, fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    if (e instanceof CliError || e instanceof UsageError) throw e;
    throw new CliError(what === null ? (e as Error).message : `${what}: ${(e as Error).message}`);
  }
}

export function readPixels(io: Io, path: string): Tensor {
  const t = wrap(null, () => readNpyFloat32(readInput(io, path, "--pixels"), `--pixels "${path}"`));
  if (t.shape.length !== 4 || t.shape[1] !== 3) throw new CliError(`--pixels "${path}": expected shape [N, 3, H, W], found [${t.shape.join(", ")}]`);
  return t;
}

export function readTokens(io: Io, path: string): TokenTensor {
  const t = wrap(null, () => readNpyTokens(readInput(io, path, "--tokens"), `--tokens "${path}"`));
  if (t.shape.length !== 2) throw new CliError(`--tokens "${path}": expected shape [N, context_length], found [${t.shape.join(", ")}]`);
  return t;
}

export function writeTensor(io: Io, path: string, t: Tensor): void {
  writeOutput(io, path, writeNpy(t));
}

// ---- the model options shared by every command that runs the model

export const MODEL_OPTIONS = {
  model: { type: "string" },
  backend: { type: "string" },
  threads: { type: "string" },
  precision: { type: "string" },
  weights: { type: "string" },
  arch: { type: "string" },
  activation: { type: "string" },
  heads: { type: "string" },
  sha256: { type: "string" },
} as const;

export const MODEL_HELP = `  --model M          a name of clip.load (ViT-B/32, RN50, …: downloaded once into the cache, see clip-ts models),
                     an http(s) URL, or a path: safetensors, torch.save .pt/.pth/.bin, OpenAI TorchScript .pt,
                     Hugging Face CLIPModel, open_clip; a folder (save_pretrained, open_clip) or a shard index
                     (default: the embedded tiny model ${DEFAULT_MODEL}, which knows only shapes and colours)
  --sha256 HEX       the expected SHA-256 of a --model URL
  --arch NAME        an open_clip architecture (ViT-B-32, ViT-B-32-quickgelu, RN50, ViT-H-14, …): its activation,
                     head width and eps, for weights that come without a config
  --activation A     quickgelu or gelu (the erf form), for both towers, or vision=A,text=A; overrides any config
  --heads N          attention heads for both towers, or vision=N,text=N; overrides any config
  --backend ts|wasm  kernels: SIMD WebAssembly (default) or the readable TypeScript; the same bits
  --threads N        worker threads for the wasm backend
  --precision P      f32 (default) or int8: the transformers' linear layers and the ViT patch embedding in
                     int8 (deterministic, faster, embeddings within cosine 0.995 of f32)
  --weights fp16     keep an fp16 checkpoint's linear and conv weights as fp16 (half the memory, the same bits;
                     an fp32 checkpoint is refused); default fp32`;

export interface ModelArgs {
  model?: string;
  backend?: string;
  threads?: string;
  precision?: string;
  weights?: string;
  arch?: string;
  activation?: string;
  heads?: string;
  sha256?: string;
}

export interface OpenedModel {
  model: CLIP;
  stateDict: StateDict;
  /** What --model named, or "weights/….safetensors (embedded)". */
  path: string;
  /** The local file or folder of --model, if given. */
  file?: string;
}

/** "X" or "vision=X,text=Y" (either part may be left out). */
function perTower<T>(value: string | undefined, flag: string, parse: (v: string) => T): T | { vision?: T; text?: T } | undefined {
  if (value === undefined) return undefined;
  if (!value.includes("=")) return parse(value);
  const out: { vision?: T; text?: T } = {};
  for (const part of value.split(",")) {
    const [tower, v, ...rest] = part.split("=");
    if ((tower !== "vision" && tower !== "text") || v === undefined || rest.length || out[tower] !== undefined) {
      throw new UsageError(`${flag} takes a value, or vision=VALUE,text=VALUE; got "${value}"`);
    }
    out[tower] = parse(v);
  }
  return out;
}

/** The options of the model flags, checked as the command line gives them. */
export function hyperParamArgs(args: ModelArgs): HyperParamOptions {
  return {
    arch: args.arch,
    activation: perTower(args.activation, "--activation", (v) => choice(v, "--activation", MLP_ACTIVATIONS)!),
    heads: perTower(args.heads, "--heads", (v) => integer(v, "--heads", 1, 4096)!),
  };
}

/** The model of the command line's flags; `towers`: the command's need (embed-image loads the image tower only). */
export async function openModel(io: Io, args: ModelArgs, towers: Towers = "both"): Promise<OpenedModel> {
  const backendName = choice<BackendName>(args.backend, "--backend", ["ts", "wasm"]);
  const threads = integer(args.threads, "--threads", 1, 256);
  const precision = choice<Precision>(args.precision, "--precision", PRECISIONS);
  const weights = choice<WeightPrecision>(args.weights, "--weights", ["fp32", "fp16"]);
  const hyper = hyperParamArgs(args);
  const path = args.model ?? `${DEFAULT_MODEL} (embedded)`;
  let ck: Checkpoint;
  let file: string | undefined;
  if (args.model === undefined) {
    const bytes = readInput(io, embedded(DEFAULT_MODEL, "--model"), "--model", "loading weights");
    ck = wrap(`--model "${path}"`, () => checkpointFromBytes(bytes, hyper));
    ck.hints.push(EMBEDDED_HINTS);
  } else {
    const isFile = existsSync(resolve(io.cwd, args.model));
    try {
      const bar = downloadProgress(io.stderr, `downloading ${args.model}`);
      const local = await localModelPath(isFile ? resolve(io.cwd, args.model) : args.model, { sha256: args.sha256, onProgress: bar.onProgress, offlineHint: "pass --model PATH" });
      bar.finish();
      file = local;
      ck = await readCheckpoint(local, hyper);
    } catch (e) {
      if (!isFile && !/^https?:/i.test(args.model) && e instanceof ConfigError && /no model file or model named/.test(e.message)) {
        throw new CliError(`--model: no such file "${args.model}", nor a model name (${(e as Error).message.split("; ")[1]})`);
      }
      throw new CliError(`--model "${path}": ${(e as Error).message}`);
    }
  }
  const ready = readTableAhead(ck.stateDict, towers);
  let backend: Backend;
  try {
    backend = await createBackend({ backend: backendName, threads, weights });
  } catch (e) {
    throw new CliError(`${backendName ? `--backend ${backendName}` : "the wasm backend"}: ${(e as Error).message}`);
  }
  let model: CLIP;
  try {
    model = await ready(modelFromCheckpoint(ck, backend, { towers, precision }));
  } catch (e) {
    throw new CliError(`--model "${path}": ${(e as Error).message}`);
  }
  const assumed = assumedSettings(model.config);
  if (assumed.length) {
    io.stderr.write(`note: "${path}" comes with no config saying its activation, heads or eps; assumed OpenAI's: ` +
      `${assumed.join("; ")}. For an open_clip or Hugging Face model pass --arch NAME, --activation gelu or --heads N, ` +
      `or put its config.json beside it\n`);
  }
  return { model, stateDict: ck.stateDict, path, file };
}

/**
 * The tokenizer: --vocab; else, with --model, the tokenizer files with the weights, else OpenAI's vocab (shipped)
 * for a model of its 49408 tokens; else the embedded vocab. With a model, its vocabulary size must be the model's.
 */
export async function openTokenizer(io: Io, vocab: string | undefined, model?: { file?: string; config: CLIPConfig }): Promise<SimpleTokenizer> {
  let path: string;
  if (vocab !== undefined) {
    path = resolve(io.cwd, vocab);
    if (!existsSync(path)) throw new CliError(`--vocab: no such file "${vocab}"`);
  } else if (model?.file !== undefined) {
    const found = await vocabNextTo(resolve(io.cwd, model.file));
    if (found) path = found;
    else if (model.config.vocabSize === OPENAI_VOCAB_SIZE) path = await openaiVocabPath();
    else throw new CliError(`no tokenizer vocab next to "${model.file}" (looked for ${VOCAB_NAMES.join(", ")}); pass --vocab (the model has ${model.config.vocabSize} tokens, not OpenAI's ${OPENAI_VOCAB_SIZE})`);
  } else {
    path = embedded(DEFAULT_VOCAB, "--vocab");
  }
  const shown = vocab ?? path;
  let tokenizer: SimpleTokenizer;
  try {
    const { loadTokenizer } = await import("../simple_tokenizer.js"); // loaded only by the commands that tokenize
    tokenizer = await loadTokenizer(path);
  } catch (e) {
    throw new CliError(`--vocab "${shown}": ${(e as Error).message}`);
  }
  if (model && tokenizer.vocabSize !== model.config.vocabSize) {
    throw new CliError(`--vocab "${shown}" has ${tokenizer.vocabSize} tokens but the model's token_embedding has ${model.config.vocabSize}`);
  }
  return tokenizer;
}

/**
 * A function that preprocesses image files into [n, 3, size, size]. Commands call it batch by batch, so that
 * pixels are held for one batch only whatever the number of images; a missing file among `paths` fails now,
 * not after the batches before it.
 */
export async function imageLoader(io: Io, size: number, paths: readonly string[], noteInexact = false): Promise<(paths: readonly string[]) => Tensor> {
  for (const p of paths) {
    const stat = statSync(resolve(io.cwd, p), { throwIfNoEntry: false });
    if (!stat) throw new CliError(`image: no such file "${p}"`);
    if (stat.isDirectory()) throw new CliError(`image: "${p}" is a directory, expected a file`);
  }
  const { preprocess } = await import("../image/index.js"); // the decoders load only for commands given images
  const per = 3 * size * size;
  return (paths) => {
    const out = new Float32Array(paths.length * per);
    paths.forEach((p, i) => {
      const t = wrap(`image "${p}"`, () => preprocess(readInput(io, p, "image"), { size }));
      out.set(t.data, i * per);
      if (noteInexact && !t.exact) io.stderr.write(`note: "${p}" was decoded by ${t.decoder}; its pixels may differ slightly from Pillow's\n`);
    });
    return { data: out, shape: [paths.length, 3, size, size] };
  };
}

/**
 * slice(start, end) → [end − start, E] over batches of the rows [0, rows), with a progress bar; the results
 * concatenated. The batches keep every model call within its maxBatch.
 */
export function batched(io: Io, label: string, rows: number, batch: number, slice: (start: number, end: number) => Tensor): Tensor {
  const parts: Tensor[] = [];
  const bar = new Progress(io.stderr, label, rows);
  try {
    for (let s = 0; s < rows; s += batch) {
      parts.push(slice(s, Math.min(rows, s + batch)));
      bar.update(Math.min(rows, s + batch));
    }
    if (rows === 0) parts.push(slice(0, 0)); // for the width E
  } finally {
    bar.finish();
  }
  const E = parts[0].shape[1];
  const data = new Float32Array(rows * E);
  let off = 0;
  for (const p of parts) {
    data.set(p.data, off);
    off += p.data.length;
  }
  return { data, shape: [rows, E] };
}

export function rowsOf<T extends { data: ArrayLike<unknown> & { subarray(a: number, b: number): unknown }; shape: number[] }>(t: T, start: number, end: number): T {
  const per = t.shape.slice(1).reduce((a, b) => a * b, 1);
  return { ...t, data: t.data.subarray(start * per, end * per), shape: [end - start, ...t.shape.slice(1)] };
}

/** float32 values as JSON numbers that read back to the same float32 (9 significant digits); NaN/±∞ as null. */
export function f32Json(values: ArrayLike<number>): string {
  const parts: string[] = [];
  for (let i = 0; i < values.length; i++) parts.push(Number.isFinite(values[i]) ? String(Number(values[i].toPrecision(9))) : "null");
  return `[${parts.join(",")}]`;
}

export function usageIfEmpty(list: readonly unknown[], what: string): void {
  if (list.length === 0) throw new UsageError(`missing ${what}`);
}
