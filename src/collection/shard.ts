// `--shard I/N`: which inputs this process indexes. Chosen from the input's path relative to its argument (never the
// absolute path), so every machine picks the same files whatever the mount point, and N processes cover the inputs
// exactly once between them. The rule, to reproduce elsewhere (Python:
// `int.from_bytes(hashlib.sha256(rel.encode()).digest()[:4], "big") % count == index`):
// the first 4 bytes of SHA-256(UTF-8 of rel), big-endian, modulo count, equal index.
import { createHash } from "node:crypto";

export interface Shard {
  index: number;
  count: number;
}

/** Far above any Slurm array or Kubernetes Indexed Job; the hash has 32 bits to spread. */
export const MAX_SHARDS = 1_000_000;

/** "I/N" with 0 ≤ I < N ≤ 1 000 000, decimal digits only: one-line error otherwise. */
export function parseShard(text: string): Shard {
  const m = typeof text === "string" ? /^(\d{1,7})\/(\d{1,7})$/.exec(text) : null;
  if (!m) throw new Error(`shard must be I/N (shard I of N, counted from 0: 0/4 … 3/4), got ${JSON.stringify(text)}`);
  const index = Number(m[1]);
  const count = Number(m[2]);
  if (count < 1 || count > MAX_SHARDS) throw new Error(`shard ${text}: the count N must be in 1..${MAX_SHARDS}`);
  if (index >= count) {
    throw new Error(`shard ${text}: needs 0 ≤ I < N (shards are counted from 0: 0/${count} … ${count - 1}/${count}; Slurm: --array=0-${count - 1})`);
  }
  return { index, count };
}

/** Whether the input `rel` belongs to `shard`. */
export function inShard(rel: string, shard: Shard): boolean {
  const { index, count } = shard ?? ({} as Shard);
  if (!(Number.isSafeInteger(count) && count >= 1 && count <= MAX_SHARDS && Number.isSafeInteger(index) && index >= 0 && index < count)) {
    throw new Error(`not a shard: ${JSON.stringify(shard)} (index must be an integer in 0..count-1, count in 1..${MAX_SHARDS})`);
  }
  if (typeof rel !== "string") throw new Error(`shard: the input's relative path must be a string, got ${typeof rel}`);
  if (count === 1) return true;
  return createHash("sha256").update(rel, "utf8").digest().readUInt32BE(0) % count === index;
}
