// Deterministic collection rows for test/collection_db.test.ts and the child process it kills.
import { createHash } from "node:crypto";
import type { PhotoRow } from "../../src/collection/db.js";

export const MODEL = createHash("sha256").update("test model").digest("hex");

/** Row i: a seeded, L2-normalised embedding; its path sorts by i. */
export function collectionRow(i: number, dim: number, model = MODEL): PhotoRow {
  let s = (Math.imul(i + 1, 2654435761) ^ 0x5bd1e995) >>> 0;
  const e = new Float32Array(dim);
  let n = 0;
  for (let k = 0; k < dim; k++) {
    s = (Math.imul(s ^ (s >>> 15), 0x2c1b3c6d) + 0x6d2b79f5) >>> 0;
    e[k] = s / 2 ** 31 - 1;
    n += e[k] * e[k];
  }
  const inv = 1 / Math.sqrt(n);
  for (let k = 0; k < dim; k++) e[k] = Math.fround(e[k] * inv);
  return {
    path: `photos/img${String(i).padStart(6, "0")}.jpg`,
    size: 1000 + i,
    mtimeMs: 1.7e12 + i * 1000.5,
    sha256: createHash("sha256").update(`file ${i}`).digest("hex"),
    modelSha256: model,
    embedding: e,
  };
}
