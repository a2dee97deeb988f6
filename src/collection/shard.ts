// `--shard I/N`: which part of the inputs one process indexes. Chosen from the SHA-256 of an item's path relative
// to its input argument, so every machine picks the same files wherever the collection is mounted.
// (Stub for the index command; the shards helper owns this file.)
import { createHash } from "node:crypto";

export interface Shard {
  index: number;
  count: number;
}

/** "I/N" with 0 ≤ I < N. */
export function parseShard(text: string): Shard {
  const m = /^(\d{1,9})\/(\d{1,9})$/.exec(String(text));
  if (!m) throw new Error(`shard must be I/N (e.g. 0/4), got ${JSON.stringify(text)}`);
  const index = Number(m[1]), count = Number(m[2]);
  if (count < 1 || index >= count) throw new Error(`shard ${text}: needs 0 ≤ I < N`);
  return { index, count };
}

/** Whether the item of path `rel` belongs to `shard`: the first 4 bytes of SHA-256(rel), big-endian, mod N. */
export function inShard(rel: string, shard: Shard): boolean {
  return createHash("sha256").update(rel, "utf8").digest().readUInt32BE(0) % shard.count === shard.index;
}
