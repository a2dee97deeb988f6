// Synthetic embeddings clustered like CLIP image embeddings of a photo collection, made deterministically (only
// +, −, × and √ on seeded integers, so the same bits on any machine): unit vectors in a cone around one common
// direction (CLIP's embeddings share a large mean), in √clusters topics, each holding clusters of varied spread
// (two photos of one cluster: cosine 0.6–0.86) and size (~10× apart). Not uniform clusters: with every centre as
// far from every other, no grouping of clusters into lists is better than another, which photos are not like.
import { createHash } from "node:crypto";
import type { PhotoRow } from "../../src/collection/db.js";

export const CLUSTER_MODEL = createHash("sha256").update("clustered model").digest("hex");

/** xorshift32 → uniform in [0, 1). */
function rng(seed: number): () => number {
  let s = (seed >>> 0) || 0x9e3779b9;
  return () => {
    s ^= s << 13; s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5; s >>>= 0;
    return s / 4294967296;
  };
}
/** About N(0, 1): a sum of three uniforms, centred and scaled (no log or cos, whose bits vary by platform). */
const gauss = (u: () => number) => (u() + u() + u() - 1.5) * 2;

function normalise(v: Float64Array, out: Float32Array): Float32Array {
  let n = 0;
  for (let i = 0; i < v.length; i++) n += v[i] * v[i];
  const inv = 1 / Math.sqrt(n);
  for (let i = 0; i < v.length; i++) out[i] = v[i] * inv;
  return out;
}

export class ClusteredData {
  readonly centres: Float32Array;
  readonly spread: Float64Array;
  /** Cumulative cluster weights (sizes vary ~10× between clusters). */
  private readonly cdf: Float64Array;
  constructor(readonly dim: number, readonly clusters: number, readonly seed = 1, topics = Math.max(1, Math.round(Math.sqrt(clusters)))) {
    const u = rng(seed * 7919 + 17);
    const mean = new Float64Array(dim).map(() => gauss(u));
    let mn = 0;
    for (const x of mean) mn += x * x;
    const ms = 1 / Math.sqrt(mn);
    this.centres = new Float32Array(clusters * dim);
    this.spread = new Float64Array(clusters);
    this.cdf = new Float64Array(clusters);
    const v = new Float64Array(dim);
    // topics (as "beach", "dogs", "documents"), each with its own clusters (one trip, one dog, one burst)
    const topic = new Float64Array(topics * dim);
    const unit = (w: Float64Array, o: number) => {
      let vn = 0;
      for (let i = 0; i < dim; i++) { w[o + i] = gauss(u); vn += w[o + i] * w[o + i]; }
      const vs = 1 / Math.sqrt(vn);
      for (let i = 0; i < dim; i++) w[o + i] *= vs;
    };
    for (let t = 0; t < topics; t++) unit(topic, t * dim);
    let total = 0;
    for (let c = 0; c < clusters; c++) {
      unit(v, 0);
      const t = (topics === clusters ? c : Math.floor(u() * topics)) * dim; // topics = clusters: every centre as far from every other
      for (let i = 0; i < dim; i++) v[i] = mean[i] * ms + 0.7 * topic[t + i] + 0.8 * v[i];
      normalise(v, this.centres.subarray(c * dim, c * dim + dim));
      this.spread[c] = 0.4 + 0.4 * u(); // a member's cosine with its centre: 0.78–0.93
      total += 0.2 + u() * u() * 2;
      this.cdf[c] = total;
    }
    for (let c = 0; c < clusters; c++) this.cdf[c] /= total;
  }

  /** A fresh embedding drawn from the mixture with this seed (row i uses seed i; queries use other seeds). */
  sample(seed: number, out = new Float32Array(this.dim), noise = 1): Float32Array {
    const u = rng(Math.imul(seed + 1, 2654435761) ^ this.seed);
    u(); u();
    const p = u();
    let lo = 0, hi = this.clusters - 1;
    while (lo < hi) { const mid = (lo + hi) >> 1; if (this.cdf[mid] < p) lo = mid + 1; else hi = mid; }
    const c = lo, o = c * this.dim, s = (this.spread[c] * noise) / Math.sqrt(this.dim);
    const v = new Float64Array(this.dim);
    for (let i = 0; i < this.dim; i++) v[i] = this.centres[o + i] + s * gauss(u);
    return normalise(v, out);
  }

  row(i: number): PhotoRow {
    return {
      path: `/photos/${String(i % 1000).padStart(3, "0")}/img${String(i).padStart(7, "0")}.jpg`,
      size: 10_000 + i,
      mtimeMs: 1.7e12 + i,
      sha256: createHash("sha256").update(`clustered ${i}`).digest("hex"),
      modelSha256: CLUSTER_MODEL,
      embedding: this.sample(i),
    };
  }

  /** A query near the data: a new photo from the mixture (seeds past any row's). */
  query(j: number): Float32Array {
    return this.sample(2_000_000_000 + j);
  }
}
