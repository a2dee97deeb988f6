// A photo collection opened for search: a text, an image or an embedding → the closest images by cosine
// similarity. The query is embedded by the model that made the rows (checked by its weights' SHA-256) and
// L2-normalised as the rows are, so the score is the cosine and an image searched by itself scores 1.
import { readFile } from "node:fs/promises";
import { load, type BackendName } from "../clip.js";
import { preprocess } from "../image/index.js";
import { normalize, type CLIP } from "../model.js";
import type { SimpleTokenizer } from "../simple_tokenizer.js";
import { CollectionDb, type SearchHit } from "./db.js";
import { modelSha256 } from "./indexer.js";

export type { SearchHit } from "./db.js";
export { indexFiles, modelSha256, createDecoder, type IndexOptions, type IndexReport, type IndexProblem, type IndexModel, type Decoder, type Decoded } from "./indexer.js";

/** A loaded model for queries, with the SHA-256 of its weights and, for text queries, its tokenizer. */
export interface QueryModel {
  model: CLIP;
  sha256: string;
  tokenizer?: SimpleTokenizer;
}

export interface OpenIndexOptions {
  /** The model for text and image queries: a path, clip.load name or URL, loaded on the first such query; or a
   *  loaded one, or a function giving one on the first such query. Default: the embedded tiny model. It must be the model that indexed the collection. */
  model?: string | QueryModel | (() => Promise<QueryModel>);
  /** The tokenizer's vocab, for a model given by name or path (default: as load() finds it). */
  vocab?: string;
  backend?: BackendName;
  threads?: number;
}

export type IndexQuery = { text: string } | { image: Uint8Array | string } | { embedding: Float32Array };

export interface PhotoIndex {
  readonly path: string;
  /** Embedding width. */
  readonly dim: number;
  /** The SHA-256 of the weights that made the rows (undefined while the collection is empty). */
  readonly modelSha256: string | undefined;
  count(): number;
  /** The `top` (default 10) closest images, best first; ties by path. */
  search(query: IndexQuery, options?: { top?: number }): Promise<SearchHit[]>;
  /** Closes the collection (and disposes a model it loaded). */
  close(): void;
}

/** Opens the collection at `path` for search; it must exist. */
export function openIndex(path: string, options: OpenIndexOptions = {}): PhotoIndex {
  const db = CollectionDb.open(path, { create: false });
  let indexModel: string | undefined;
  for (const r of db.rows({ embeddings: false })) {
    indexModel = r.modelSha256;
    break;
  }
  let query: Promise<QueryModel> | undefined;
  let owned: CLIP | undefined;
  const queryModel = (): Promise<QueryModel> => {
    query ??= (async () => {
      if (typeof options.model === "object") return options.model;
      if (typeof options.model === "function") return options.model();
      const sha256 = await modelSha256(options.model);
      if (indexModel !== undefined && sha256 !== indexModel) throw mismatch(sha256);
      const clip = await load(options.model, { backend: options.backend, threads: options.threads, vocab: options.vocab });
      owned = clip.model;
      return { model: clip.model, sha256, tokenizer: clip.tokenizer };
    })();
    return query;
  };
  const mismatch = (sha256: string) => new Error(`${path} was indexed with another model (weights SHA-256 ${indexModel!.slice(0, 12)}…; ` +
    `the query's model is ${sha256.slice(0, 12)}…): search with the model that indexed it`);
  const embed = async (q: IndexQuery): Promise<Float32Array> => {
    if (q === null || typeof q !== "object") throw new Error(`search query must be { text }, { image } or { embedding }, got ${String(q)}`);
    const keys = Object.keys(q).filter((k) => ["text", "image", "embedding"].includes(k));
    if (keys.length !== 1) throw new Error(`search query must have exactly one of text, image, embedding; got ${keys.length ? keys.join(", ") : "none"}`);
    if ("embedding" in q) {
      const e = q.embedding;
      if (!(e instanceof Float32Array) || e.length !== db.dim) throw new Error(`query embedding must be a Float32Array of ${db.dim} values`);
      return unit(e);
    }
    const m = await queryModel();
    if (indexModel !== undefined && m.sha256 !== indexModel) throw mismatch(m.sha256);
    if ("text" in q) {
      if (typeof q.text !== "string") throw new Error("query text must be a string");
      if (!m.tokenizer) throw new Error("text queries need the model's tokenizer (QueryModel.tokenizer)");
      const tokens = m.tokenizer.tokenize([q.text], { contextLength: m.model.config.contextLength, truncate: true });
      return unit(m.model.encodeText(tokens).data);
    }
    const bytes = typeof q.image === "string" ? new Uint8Array(await readFile(q.image)) : q.image;
    if (!(bytes instanceof Uint8Array)) throw new Error("query image must be the bytes of a PNG or JPEG, or its path");
    const size = m.model.config.imageResolution;
    return unit(m.model.encodeImage(preprocess(bytes, { size })).data);
  };
  return {
    path,
    dim: db.dim,
    get modelSha256() {
      return indexModel;
    },
    count: () => db.count(),
    async search(q, o = {}) {
      const top = o.top ?? 10;
      if (!(Number.isSafeInteger(top) && top >= 1 && top <= 100_000)) throw new Error(`top must be an integer in 1..100000, got ${top}`);
      if (indexModel === undefined) return []; // empty: nothing to rank, no model to load
      const e = await embed(q);
      if (e.length !== db.dim) throw new Error(`the query model gives ${e.length}-wide embeddings, the collection holds ${db.dim}-wide ones`);
      return db.search(e, top);
    },
    close() {
      try {
        db.close();
      } finally {
        owned?.dispose();
      }
    },
  };
}

/** L2-normalised as the rows are (model.normalize), so an image's own row and its query are the same bits. */
function unit(e: Float32Array): Float32Array {
  const u = normalize({ data: e, shape: [1, e.length] }).data;
  if (!u.every(Number.isFinite)) throw new Error("the query embedding cannot be normalised (all zeros, NaN or infinite)");
  return u;
}
