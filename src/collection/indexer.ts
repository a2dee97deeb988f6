// `clip-ts index`: embeds the images of the inputs into a collection, incrementally and resumably. Each batch of
// embeddings is one transaction, and a row depends only on its file (a batch gives the bits of one image alone),
// so a run killed at any moment and run again ends with exactly the rows of an uninterrupted run.
import { createHash } from "node:crypto";
import { createReadStream, statSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { embeddedModelPaths, loadModel, localModelPath, type BackendName } from "../clip.js";
import { findCheckpoint } from "../checkpoint.js";
import { preprocess } from "../image/index.js";
import { normalize, type CLIP } from "../model.js";
import { CollectionDb, comparePaths, type PhotoRow } from "./db.js";
import { enumerateInputs, type InputItem } from "./inputs.js";
import { inShard, parseShard, type Shard } from "./shard.js";

export interface Decoded {
  key: string;
  /** SHA-256 of the bytes, hex ("" when they could not be read). */
  sha256: string;
  /** [3, R, R] as the model's transform gives (preprocess). */
  pixels?: Float32Array;
  /** False when the decoder's pixels may differ from Pillow's. */
  exact?: boolean;
  /** Why there are no pixels, one line. */
  error?: string;
}
/** Bytes → pixels, one result per item, in input order. */
export type Decoder = (items: AsyncIterable<InputItem> | Iterable<InputItem>) => AsyncIterable<Decoded>;

export interface DecodeLimits {
  maxPixels?: number;
  maxJpegScanWork?: number;
}

const oneLine = (e: unknown) => String((e as Error)?.message ?? e).split("\n")[0]!;

/** The in-process decoder: reads, hashes and preprocesses each item on this thread, as `embed-image` does. */
export function createDecoder(options: { resolution: number; limits?: DecodeLimits }): Decoder {
  const { resolution, limits = {} } = options;
  return async function* decode(items) {
    for await (const item of items) {
      let bytes: Uint8Array;
      try {
        bytes = await item.read();
      } catch (e) {
        yield { key: item.key, sha256: "", error: `cannot read: ${oneLine(e)}` };
        continue;
      }
      const sha256 = createHash("sha256").update(bytes).digest("hex");
      try {
        const t = preprocess(bytes, { size: resolution, ...limits });
        yield { key: item.key, sha256, pixels: t.data, exact: t.exact };
      } catch (e) {
        yield { key: item.key, sha256, error: oneLine(e) };
      }
    }
  };
}

/** PNG or JPEG by its first bytes (the extension says nothing for sure). */
export function imageKind(head: Uint8Array): "png" | "jpeg" | undefined {
  const png = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
  if (head.length >= 8 && png.every((b, i) => head[i] === b)) return "png";
  if (head.length >= 3 && head[0] === 0xff && head[1] === 0xd8 && head[2] === 0xff) return "jpeg";
  return undefined;
}

/**
 * The SHA-256 of a model's weights: of its one weights file or, for a sharded checkpoint, of its shards' bytes in
 * the index's order. `source`: a path, a clip.load name or a URL (resolved as loadModel does); none → the embedded model.
 */
export async function modelSha256(source?: string): Promise<string> {
  const path = source === undefined ? (await embeddedModelPaths()).weights : await localModelPath(source);
  const hash = createHash("sha256");
  for (const file of findCheckpoint(path).weights) {
    for await (const chunk of createReadStream(file, { highWaterMark: 1 << 22 })) hash.update(chunk as Buffer);
  }
  return hash.digest("hex");
}

/** A model ready to embed images, with the SHA-256 of its weights (modelSha256). */
export interface IndexModel {
  model: CLIP;
  sha256: string;
}

export interface IndexProgress {
  /** Files read so far (embedded, failed or skipped) of `total`; unchanged files are not counted. */
  done: number;
  total: number;
}

export interface IndexOptions {
  /** The collection file; created if missing. */
  db: string;
  /** A model path, clip.load name or URL; a loaded model with its SHA-256; its SHA-256 and a function loading it
   *  (called once the inputs and the collection are checked, so neither a mistyped folder nor another model's
   *  collection waits for a model to load); or a function giving both. Default: the embedded tiny model. */
  model?: string | IndexModel | { sha256: string; load(): Promise<CLIP> } | (() => Promise<IndexModel>);
  /** Relative inputs resolve against this (default process.cwd()). */
  cwd?: string;
  /** Images per encodeImage call (default 16); never changes a bit. */
  batch?: number;
  /** For a model given by name or path. */
  backend?: BackendName;
  threads?: number;
  /** "I/N" or { index, count }: only the items of that shard (inShard of their relative path). */
  shard?: string | Shard;
  /** Another decoder (a worker pool); default createDecoder on this thread. */
  decoder?: Decoder;
  /** Files larger than this fail without being read (default 256 MiB). */
  maxFileBytes?: number;
  limits?: DecodeLimits;
  onProgress?: (p: IndexProgress) => void;
}

export interface IndexProblem {
  path: string;
  message: string;
  /** Not a PNG or JPEG: left out on purpose rather than failed. */
  skipped?: boolean;
}

export interface IndexReport {
  db: string;
  modelSha256: string;
  /** Items listed from the inputs (after --shard). */
  files: number;
  added: number;
  updated: number;
  removed: number;
  unchanged: number;
  failed: number;
  skipped: number;
  /** Embedded from pixels that may differ slightly from Pillow's (see decode_jpeg.ts). */
  inexact: number;
  /** Failed and skipped files, sorted by path. */
  problems: IndexProblem[];
  /** Time reading and embedding (the model's loading not included). */
  seconds: number;
}

const OTHER_MODEL_HINT = "index into a new --db, or delete this one to re-index with this model";

export const DEFAULT_MAX_FILE_BYTES = 256 * 2 ** 20;

/**
 * Brings the collection at `options.db` up to date with the images of `inputs` (directories, files, globs, .tar):
 * new and changed files (path, size, mtime or model differ) are embedded, unchanged ones not read, rows of files no
 * longer among the inputs removed. Rows hold the L2-normalised image features, the bits of `embed-image --normalize`.
 */
export async function indexFiles(inputs: readonly string[], options: IndexOptions): Promise<IndexReport> {
  const batchSize = options.batch ?? 16;
  if (!(Number.isSafeInteger(batchSize) && batchSize >= 1 && batchSize <= 1024)) throw new Error(`batch must be an integer in 1..1024, got ${options.batch}`);
  const maxFileBytes = options.maxFileBytes ?? DEFAULT_MAX_FILE_BYTES;
  const shard = typeof options.shard === "string" ? parseShard(options.shard) : options.shard;
  const cwd = options.cwd ?? process.cwd();
  if (typeof options.db !== "string" || options.db === "") throw new Error("indexFiles: options.db must be the collection's path");
  const dbFile = resolve(cwd, options.db);
  const own = new Set(["", "-wal", "-shm", "-journal", ".pid", ".lock"].map((s) => dbFile + s));
  const listed = enumerateInputs(inputs, { cwd, exclude: own });
  const items = shard ? listed.items.filter((it) => inShard(it.rel, shard)) : listed.items;

  const indexedWith = checkDb(dbFile);
  // The weights' SHA-256 first when it can be had without loading them: another model's collection fails at once.
  const early = (sha256: string) => {
    if (indexedWith !== undefined && sha256 !== indexedWith) throw otherModel(dbFile, indexedWith, sha256);
  };
  let loaded: IndexModel;
  let dispose = false;
  const m = options.model;
  if (typeof m === "function") loaded = await m();
  else if (typeof m === "object" && "load" in m) {
    early(m.sha256);
    loaded = { model: await m.load(), sha256: m.sha256 };
  } else if (typeof m === "object") loaded = m;
  else {
    const sha256 = await modelSha256(m);
    early(sha256);
    const source = m ?? (await embeddedModelPaths()).weights;
    loaded = { model: await loadModel(source, { towers: "image", backend: options.backend, threads: options.threads }), sha256 };
    dispose = true;
  }
  const { model, sha256: modelSha } = loaded;
  try {
    let db: CollectionDb;
    try {
      db = CollectionDb.open(dbFile, { dim: model.config.embedDim });
    } catch (e) {
      const m = /holds (\d+)-wide embeddings/.exec((e as Error).message);
      if (!m) throw e;
      throw new Error(`${dbFile} was indexed with another model (${m[1]}-wide embeddings, this one gives ${model.config.embedDim}): ${OTHER_MODEL_HINT}`);
    }
    try {
      return await update(db, model, modelSha, items, listed.problems, { ...options, batch: Math.min(batchSize, model.maxBatch), maxFileBytes });
    } finally {
      db.close();
    }
  } finally {
    if (dispose) model.dispose();
  }
}

/**
 * A --db that cannot be a collection fails now, before a model is loaded for it; for an existing one, the SHA-256
 * of the model that made its rows (undefined when it has none).
 */
function checkDb(file: string): string | undefined {
  const st = statSync(file, { throwIfNoEntry: false });
  if (st) {
    if (!st.isFile()) throw new Error(`${file}: not a file`);
    const db = CollectionDb.open(file, { create: false }); // a collection, and not open in another process
    try {
      for (const r of db.rows({ embeddings: false })) return r.modelSha256;
      return undefined;
    } finally {
      db.close();
    }
  }
  const dir = statSync(dirname(file), { throwIfNoEntry: false });
  if (!dir?.isDirectory()) throw new Error(`${file}: cannot create the collection: no such directory ${dirname(file)}`);
  return undefined;
}

function otherModel(file: string, stored: string, ours: string): Error {
  return new Error(`${file} was indexed with another model (weights SHA-256 ${stored.slice(0, 12)}…, this one is ${ours.slice(0, 12)}…): ${OTHER_MODEL_HINT}`);
}

async function update(
  db: CollectionDb, model: CLIP, modelSha: string, items: InputItem[], listProblems: IndexProblem[],
  options: IndexOptions & { batch: number; maxFileBytes: number },
): Promise<IndexReport> {
  const start = performance.now();
  const stored = new Map<string, { size: number; mtimeMs: number }>();
  for (const r of db.rows({ embeddings: false })) {
    if (r.modelSha256 !== modelSha) {
      throw otherModel(db.file, r.modelSha256, modelSha);
    }
    stored.set(r.path, { size: r.size, mtimeMs: r.mtimeMs });
  }
  const report: IndexReport = {
    db: db.file, modelSha256: modelSha, files: items.length,
    added: 0, updated: 0, removed: 0, unchanged: 0, failed: 0, skipped: 0, inexact: 0, problems: [...listProblems], seconds: 0,
  };
  report.failed = listProblems.length;
  const keep = new Set<string>();
  const todo: InputItem[] = [];
  for (const it of items) {
    const row = stored.get(it.key);
    if (row && row.size === it.size && row.mtimeMs === it.mtimeMs) {
      keep.add(it.key);
      report.unchanged++;
    } else todo.push(it);
  }
  const progress = { done: 0, total: todo.length };
  const tick = () => options.onProgress?.({ ...progress });
  tick();
  const fail = (path: string, message: string, skipped = false) => {
    report.problems.push(skipped ? { path, message, skipped } : { path, message });
    if (skipped) report.skipped++;
    else report.failed++;
    progress.done++;
    tick();
  };

  // Only images of a sane size reach the decoder; the rest are told apart from their first bytes.
  const byKey = new Map(todo.map((it) => [it.key, it]));
  async function* images(): AsyncGenerator<InputItem> {
    for (const it of todo) {
      if (it.size > options.maxFileBytes) {
        fail(it.key, `too big: ${it.size} bytes, more than the ${options.maxFileBytes} allowed`);
        continue;
      }
      let head: Uint8Array;
      try {
        head = it.head ? await it.head(8) : (await it.read()).subarray(0, 8);
      } catch (e) {
        fail(it.key, `cannot read: ${oneLine(e)}`);
        continue;
      }
      if (!imageKind(head)) {
        // A file named as an image is a broken one; anything else is simply not for this index.
        if (/\.(png|jpe?g)$/i.test(it.key)) fail(it.key, "not a PNG or JPEG despite its name (corrupt or empty)");
        else fail(it.key, "not a PNG or JPEG", true);
        continue;
      }
      yield it;
    }
  }

  const R = model.config.imageResolution, per = 3 * R * R;
  let batch: { item: InputItem; sha256: string; pixels: Float32Array }[] = [];
  const flush = () => {
    if (!batch.length) return;
    const n = batch.length;
    const pixels = new Float32Array(n * per);
    batch.forEach((b, i) => pixels.set(b.pixels, i * per));
    const features = normalize(model.encodeImage({ data: pixels, shape: [n, 3, R, R] }));
    const E = features.shape[1];
    const rows: PhotoRow[] = batch.map((b, i) => ({
      path: b.item.key, size: b.item.size, mtimeMs: b.item.mtimeMs, sha256: b.sha256, modelSha256: modelSha,
      embedding: features.data.slice(i * E, (i + 1) * E),
    }));
    // A row the model made NaN of (a broken checkpoint) cannot be ranked: it fails, the others are written.
    const good = rows.filter((r) => r.embedding.every(Number.isFinite));
    db.upsert(good);
    for (const r of good) {
      keep.add(r.path);
      if (stored.has(r.path)) report.updated++;
      else report.added++;
    }
    progress.done += good.length;
    tick();
    for (const r of rows) if (!good.includes(r)) fail(r.path, "the model gave NaN or infinite features");
    batch = [];
  };
  const decoder = options.decoder ?? createDecoder({ resolution: R, limits: options.limits });
  for await (const d of decoder(images())) {
    const item = byKey.get(d.key);
    if (!item) throw new Error(`the decoder returned an item that was not asked for: ${JSON.stringify(d.key)}`);
    if (d.error !== undefined || !d.pixels) {
      fail(d.key, d.error ?? "no pixels");
      continue;
    }
    if (d.pixels.length !== per) throw new Error(`the decoder gave ${d.pixels.length} values for ${d.key}, expected 3×${R}×${R}`);
    if (d.exact === false) report.inexact++;
    batch.push({ item, sha256: d.sha256, pixels: d.pixels });
    if (batch.length >= options.batch) flush();
  }
  flush();
  // What is under a folder or tar that could not be listed this time is not known to be gone: its rows stay.
  const unlisted = listProblems.map((p) => p.path);
  for (const path of stored.keys()) {
    if (unlisted.some((u) => path.startsWith(`${u}/`) || path.startsWith(`${u}#`))) keep.add(path);
  }
  report.removed = db.deleteExcept(keep);
  report.problems.sort((a, b) => comparePaths(a.path, b.path));
  report.seconds = (performance.now() - start) / 1000;
  return report;
}
