// The public API of clip-ts in Node: the shared API, and photo collections (SQLite files, worker threads).
export * from "./core.js";
export {
  openIndex, indexFiles, modelSha256, createDecoder, type PhotoIndex, type OpenIndexOptions, type IndexQuery, type QueryModel,
  type SearchHit, type IndexOptions, type IndexReport, type IndexProblem, type IndexModel, type Decoder, type Decoded,
} from "./collection/index.js";
export { mergeCollections, MergeError, type MergeOptions, type MergeResult } from "./collection/merge.js";
export { parseShard, inShard, type Shard } from "./collection/shard.js";
export { listTar, readTarEntry, TarError, type TarEntry, type TarLimits } from "./collection/tar.js";
