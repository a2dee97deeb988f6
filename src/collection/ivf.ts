// An inverted-file (IVF) index over a collection, in the collection's own SQLite file: k-means splits the
// rows into about √n lists; a search scores the query against the list centroids, reads the rows of the nprobe
// nearest lists only, and ranks those exactly (db.ts's ranking, so same scores and ties by path). Exact search over
// every row stays available. Why our own and not LanceDB's / sqlite-vec's: bench/db/README.md.
//
// k-means in L2 (as faiss's IVF) and in two levels, so that 1M rows build in minutes of plain JS, not ~15 times
// that: k-means first splits the training sample into ~√lists groups, then each group into its share of the lists;
// a row goes to its nearest group, then to the nearest list in it (~2√lists dot products instead of lists; at 10k
// rows, probing 4 to 64 lists, it lost no recall against the nearest of all lists). A search ranks all list centroids.
//
// Determinism: the training sample is chosen by a hash of each path (not by insertion order), sorted by path; the
// seeds are drawn by a seeded PRNG; every dot product and centroid sum runs in float64 in a fixed order (a product
// of two float32 is exact in float64, so the result depends only on IEEE rounding of the sums). Ties go to the lower
// list id. So the same rows give the same centroids and list ids on any machine.
import type { Database as SqliteDb, Statement } from "node-sqlite3-wasm";

export interface IvfOptions {
  /** Rows at which the index is built (default IVF_MIN_ROWS); below it search is exact. */
  minRows?: number;
  /** The index is rebuilt when the collection has grown by this factor since the last build (default 2). */
  growth?: number;
}
export interface IvfState {
  lists: number;
  /** Rows when it was built. */
  builtRows: number;
  /** [lists, dim]: the lists of group g are numbered first[g] .. first[g+1]-1. */
  centroids: Float32Array;
  /** [groups, dim]: centroids of the groups of lists. */
  groups: Float32Array;
  /** groups + 1 entries. */
  first: Int32Array;
  /** ½‖c‖² of the lists' and the groups' centroids. */
  hc: Float64Array;
  hg: Float64Array;
}
/** A row as the search scans it: its path and its stored embedding bytes. */
export type ScanRow = { path: unknown; embedding: unknown };

/** Chosen by measurement (bench/db/README.md, "Approximate search"): exact search takes ~0.2 s at 50k rows. */
export const IVF_MIN_ROWS = 50_000;
/**
 * Lists probed by default: 3% of them, at least 8 (10k rows: 8 of 100 lists; 100k: 10 of 316; 1M: 30 of 1000).
 * On the bench's clustered data recall@10 was already ≥ 0.95 at 1–2 lists; the margin is for collections less
 * clustered than it (bench/db/README.md, "Approximate search").
 */
export function defaultNprobe(lists: number): number {
  return Math.max(8, Math.ceil(lists * 0.03));
}
const ITERATIONS = 10;
/** Training rows per list: k-means sees at most this × lists rows (faiss warns under 39). */
const SAMPLE_PER_LIST = 64;
const SEED = 0x2545f491;

/** Lists for n rows: about √n, at least 1. */
export function listCount(n: number): number {
  return Math.max(1, Math.min(n, Math.round(Math.sqrt(n))));
}

/** mulberry32: a small seeded PRNG, the same sequence everywhere. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** FNV-1a over the UTF-16 code units: which rows train k-means, whatever order they were inserted in. */
function pathHash(path: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < path.length; i++) h = Math.imul(h ^ path.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

/** ½‖c_j‖² of each centroid, in float64 in index order: the bias that turns a dot product into an L2 ranking. */
export function halfNorms(c: Float32Array, k: number, dim: number): Float64Array {
  const h = new Float64Array(k);
  for (let j = 0; j < k; j++) {
    let s = 0;
    for (let i = 0; i < dim; i++) s += c[j * dim + i] * c[j * dim + i];
    h[j] = s / 2;
  }
  return h;
}

/**
 * Index of the centroid nearest to x[xo .. xo+dim) in L2 distance, i.e. with the largest x·c_j − ½‖c_j‖² (ties: the
 * lower index). Four centroids per pass over x; each sum still runs over i ascending in float64.
 */
export function nearest(x: Float32Array, xo: number, c: Float32Array, h: Float64Array, k: number, dim: number, co = 0): number {
  let best = -Infinity, bestJ = 0, j = 0;
  for (; j + 4 <= k; j += 4) {
    const o0 = (co + j) * dim, o1 = o0 + dim, o2 = o1 + dim, o3 = o2 + dim;
    let s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    for (let i = 0; i < dim; i++) {
      const v = x[xo + i];
      s0 += v * c[o0 + i];
      s1 += v * c[o1 + i];
      s2 += v * c[o2 + i];
      s3 += v * c[o3 + i];
    }
    s0 -= h[co + j]; s1 -= h[co + j + 1]; s2 -= h[co + j + 2]; s3 -= h[co + j + 3];
    if (s0 > best) { best = s0; bestJ = j; }
    if (s1 > best) { best = s1; bestJ = j + 1; }
    if (s2 > best) { best = s2; bestJ = j + 2; }
    if (s3 > best) { best = s3; bestJ = j + 3; }
  }
  for (; j < k; j++) {
    const o = (co + j) * dim;
    let s = 0;
    for (let i = 0; i < dim; i++) s += x[xo + i] * c[o + i];
    s -= h[co + j];
    if (s > best) { best = s; bestJ = j; }
  }
  return bestJ;
}

/**
 * k-means (L2, Lloyd) on `sample` ([m, dim], rows in a fixed order): k seeds drawn by a seeded PRNG, then a fixed
 * number of rounds of assign and update (the mean, summed in float64 in row order, rounded to float32). A list left
 * empty keeps its centroid. L2 rather than spherical: around CLIP's large common mean, unit centroids let a few
 * central lists take most rows (a 316-list index probed at 8 lists read 20% of the rows).
 */
export function kmeans(sample: Float32Array, m: number, dim: number, k: number, iterations = ITERATIONS, seed = SEED): Float32Array {
  if (k < 1 || k > m) throw new Error(`k-means: ${k} lists for ${m} rows`);
  const c = new Float32Array(k * dim);
  // seeds: a partial Fisher–Yates shuffle of the row indices
  const order = Int32Array.from({ length: m }, (_, i) => i);
  const rand = prng(seed);
  for (let j = 0; j < k; j++) {
    const r = j + Math.floor(rand() * (m - j));
    const t = order[j]; order[j] = order[r]; order[r] = t;
    c.set(sample.subarray(order[j] * dim, order[j] * dim + dim), j * dim);
  }
  const assign = new Int32Array(m);
  const sums = new Float64Array(k * dim);
  const counts = new Int32Array(k);
  for (let it = 0; it < iterations; it++) {
    const h = halfNorms(c, k, dim);
    for (let r = 0; r < m; r++) assign[r] = nearest(sample, r * dim, c, h, k, dim);
    sums.fill(0);
    counts.fill(0);
    for (let r = 0; r < m; r++) {
      const j = assign[r], o = j * dim, xo = r * dim;
      counts[j]++;
      for (let i = 0; i < dim; i++) sums[o + i] += sample[xo + i];
    }
    for (let j = 0; j < k; j++) {
      if (counts[j] === 0) continue;
      for (let i = 0; i < dim; i++) c[j * dim + i] = sums[j * dim + i] / counts[j];
    }
  }
  return c;
}

/** The `nprobe` lists nearest to q in L2 distance (ties: the lower list id). */
export function probeLists(q: Float32Array, c: Float32Array, h: Float64Array, lists: number, dim: number, nprobe: number): number[] {
  const scores = new Float64Array(lists);
  for (let j = 0; j < lists; j++) {
    let s = 0;
    for (let i = 0; i < dim; i++) s += q[i] * c[j * dim + i];
    scores[j] = s - h[j];
  }
  const ids = Array.from({ length: lists }, (_, j) => j);
  ids.sort((a, b) => scores[b] - scores[a] || a - b);
  return ids.slice(0, Math.min(nprobe, lists));
}

/** The list of row x[xo ..]: its nearest group, then the nearest list of that group. */
export function assignList(s: Pick<IvfState, "centroids" | "groups" | "first" | "hc" | "hg">, x: Float32Array, xo: number, dim: number): number {
  const g = nearest(x, xo, s.groups, s.hg, s.first.length - 1, dim);
  const lo = s.first[g];
  return lo + nearest(x, xo, s.centroids, s.hc, s.first[g + 1] - lo, dim, lo);
}

/**
 * Two-level k-means on `sample` (rows in a fixed order): about √lists groups, then each group's rows into its share
 * of `lists` (largest remainder, ties to the lower group; at least one each, at most its rows). Groups no row chose
 * are left out.
 */
export function train(sample: Float32Array, dim: number, lists: number, builtRows: number): IvfState {
  const m = sample.length / dim;
  lists = Math.min(lists, m);
  const G0 = Math.max(1, Math.min(m, Math.round(Math.sqrt(lists))));
  const top = kmeans(sample, m, dim, G0, ITERATIONS, SEED);
  const htop = halfNorms(top, G0, dim);
  const member = new Int32Array(m);
  const size = new Int32Array(G0);
  for (let r = 0; r < m; r++) size[(member[r] = nearest(sample, r * dim, top, htop, G0, dim))]++;
  const kept = [...size.keys()].filter((g) => size[g] > 0);
  // lists per kept group
  const share = kept.map((g) => Math.max(1, Math.floor((lists * size[g]) / m)));
  let left = lists - share.reduce((a, b) => a + b, 0);
  const byRemainder = kept.map((g, i) => i).sort((a, b) => {
    const ra = (lists * size[kept[a]]) % m, rb = (lists * size[kept[b]]) % m;
    return rb - ra || a - b;
  });
  for (let t = 0; left > 0 && t < byRemainder.length; t++, left--) share[byRemainder[t]]++;
  kept.forEach((g, i) => (share[i] = Math.min(share[i], size[g])));
  const total = share.reduce((a, b) => a + b, 0);
  const centroids = new Float32Array(total * dim), groups = new Float32Array(kept.length * dim);
  const first = new Int32Array(kept.length + 1);
  kept.forEach((g, i) => {
    groups.set(top.subarray(g * dim, g * dim + dim), i * dim);
    const rows = new Float32Array(size[g] * dim);
    for (let r = 0, w = 0; r < m; r++) if (member[r] === g) rows.set(sample.subarray(r * dim, r * dim + dim), dim * w++);
    centroids.set(kmeans(rows, size[g], dim, share[i], ITERATIONS, SEED + 1 + g), first[i] * dim);
    first[i + 1] = first[i] + share[i];
  });
  return withNorms({ lists: total, builtRows, centroids, groups, first });
}

/** The state with its centroids' half norms (computed, not stored). */
export function withNorms(s: Omit<IvfState, "hc" | "hg">): IvfState {
  return { ...s, hc: halfNorms(s.centroids, s.lists, s.centroids.length / s.lists), hg: halfNorms(s.groups, s.first.length - 1, s.centroids.length / s.lists) };
}

const f32 = (b: Uint8Array, dim: number) =>
  b.byteOffset % 4 === 0 ? new Float32Array(b.buffer, b.byteOffset, dim) : new Float32Array(b.slice().buffer, 0, dim);

/** A list's rows have rowids list·2^32 + 0, 1, 2…, so a list is one contiguous range of ivf_rows. */
const LIST_SPAN = 2 ** 32;

/**
 * The IVF index of one open collection, in tables ivf_groups, ivf_centroids and ivf_rows, and meta keys ivf_*.
 * ivf_rows holds a second copy of each embedding, stored list by list: reading a list's rows through photos' path
 * index cost ~3× per row what a scan does, which ate the speed-up (bench/db/README.md).
 */
export class Ivf {
  private state: IvfState | null = null;
  private readonly minRows: number;
  private readonly growth: number;
  private assignStmt: Statement | null = null;
  private removeStmt: Statement | null = null;
  /** photos' largest rowid at the last count: rows can only have been added since if it grew. */
  private countedAt = -1;
  private lastCount = 0;

  constructor(private readonly db: SqliteDb, private readonly dim: number, private readonly file: string, options: IvfOptions = {}) {
    const { minRows = IVF_MIN_ROWS, growth = 2 } = options;
    if (!(Number.isSafeInteger(minRows) && minRows >= 1)) throw new Error(`ivf minRows must be a positive integer, got ${minRows}`);
    if (!(Number.isFinite(growth) && growth > 1)) throw new Error(`ivf growth must be a number above 1, got ${growth}`);
    this.minRows = minRows;
    this.growth = growth;
    this.load();
  }

  /** Whether search goes through the index. */
  get active(): boolean {
    return this.state !== null;
  }
  get info(): { lists: number; builtRows: number } | null {
    return this.state && { lists: this.state.lists, builtRows: this.state.builtRows };
  }

  private load(): void {
    const meta = new Map(this.db.all("SELECT key, value FROM meta WHERE key LIKE 'ivf_%'").map((r) => [String(r.key), String(r.value)]));
    if (!meta.has("ivf_lists")) return;
    const lists = Number(meta.get("ivf_lists")), builtRows = Number(meta.get("ivf_rows"));
    const damaged = (what: string) => new Error(`${this.file}: the approximate index is damaged (${what}): drop tables ivf_rows, ivf_centroids, ivf_groups and meta keys ivf_* to have it rebuilt`);
    const rows = this.db.all("SELECT list, grp, centroid FROM ivf_centroids ORDER BY list");
    const groupRows = this.db.all("SELECT grp, centroid FROM ivf_groups ORDER BY grp");
    if (!(Number.isSafeInteger(lists) && lists >= 1 && rows.length === lists && Number.isSafeInteger(builtRows))) {
      throw damaged(`${rows.length} centroids for ${meta.get("ivf_lists")} lists`);
    }
    const read = (b: unknown, into: Float32Array, at: number, what: string) => {
      if (!(b instanceof Uint8Array) || b.byteLength !== this.dim * 4) throw damaged(what);
      into.set(f32(b, this.dim), at * this.dim);
    };
    const centroids = new Float32Array(lists * this.dim), groups = new Float32Array(groupRows.length * this.dim);
    const first = new Int32Array(groupRows.length + 1);
    groupRows.forEach((r, g) => {
      if (Number(r.grp) !== g) throw damaged(`group ${g}`);
      read(r.centroid, groups, g, `group ${g}`);
    });
    let g = 0;
    rows.forEach((r, j) => {
      const rg = Number(r.grp);
      if (Number(r.list) !== j || !(rg === g || rg === g + 1) || rg >= groupRows.length) throw damaged(`list ${j}`);
      while (g < rg) first[++g] = j;
      read(r.centroid, centroids, j, `list ${j}`);
    });
    if (g !== groupRows.length - 1) throw damaged("a group without lists");
    first[groupRows.length] = lists;
    // rows written other than through upsert/delete (another tool, an older clip-ts) are not in ivf_rows: until the
    // next write rebuilds it, search is exact
    const count = (t: string) => Number(this.db.get(`SELECT count(*) AS n FROM ${t}`)!.n);
    if (count("photos") !== count("ivf_rows")) return;
    this.state = withNorms({ lists, builtRows, centroids, groups, first });
    this.statements();
  }

  private statements(): void {
    this.assignStmt ??= this.db.prepare(`INSERT INTO ivf_rows (id, path, embedding)
      VALUES ((SELECT coalesce(max(id) + 1, ?1) FROM ivf_rows WHERE id >= ?1 AND id < ?1 + ${LIST_SPAN}), ?2, ?3)`);
    this.removeStmt ??= this.db.prepare("DELETE FROM ivf_rows WHERE path = ?");
  }

  /** Inside the caller's write transaction: the upserted row joins its nearest list. */
  assign(path: string, embedding: Float32Array): void {
    const s = this.state;
    if (!s) return;
    this.removeStmt!.run([path]);
    const list = assignList(s, embedding, 0, this.dim);
    this.assignStmt!.run([list * LIST_SPAN, path, new Uint8Array(embedding.buffer, embedding.byteOffset, embedding.byteLength)]);
  }

  /** Inside the caller's write transaction: the deleted row leaves its list. */
  remove(path: string): void {
    if (this.state) this.removeStmt!.run([path]);
  }

  private rows(): number {
    const maxId = Number(this.db.get("SELECT coalesce(max(rowid), 0) AS m FROM photos")!.m);
    if (maxId !== this.countedAt) {
      this.lastCount = Number(this.db.get("SELECT count(*) AS n FROM photos")!.n);
      this.countedAt = maxId;
    }
    return this.lastCount;
  }

  /**
   * After a write: builds the index when the collection reaches minRows, rebuilds it when it has grown by the growth
   * factor, drops it when deletes take it under half of minRows. Cheap when nothing is due: SQLite gives rowids in
   * ascending order, so until photos' largest rowid reaches the bound the count cannot have either.
   */
  afterWrite(deleted = false): void {
    const s = this.state;
    if (!deleted) {
      const bound = s ? Math.ceil(s.builtRows * this.growth) : this.minRows;
      const maxId = Number(this.db.get("SELECT coalesce(max(rowid), 0) AS m FROM photos")!.m);
      if (maxId < bound) return;
      if (this.rows() < bound) return;
      try {
        this.build();
      } catch (e) {
        throw new Error(`${this.file}: the rows are written, but building the approximate index failed: ${String((e as Error)?.message ?? e).split("\n")[0]}`);
      }
      return;
    }
    this.countedAt = -1;
    if (s && this.rows() < this.minRows / 2) this.drop();
  }

  /** Removes the index (search is exact again). */
  drop(): void {
    this.db.exec("BEGIN IMMEDIATE");
    try {
      this.db.exec("DROP TABLE IF EXISTS ivf_rows; DROP TABLE IF EXISTS ivf_centroids; DROP TABLE IF EXISTS ivf_groups; DELETE FROM meta WHERE key LIKE 'ivf_%'; COMMIT");
    } catch (e) {
      if (this.db.inTransaction) this.db.exec("ROLLBACK");
      throw e;
    }
    this.finalize();
    this.state = null;
  }

  /** Builds (or rebuilds) the index from every row, in one transaction; returns its size and the time it took. */
  build(): { lists: number; groups: number; rows: number; ms: number } {
    const t0 = performance.now();
    const dim = this.dim;
    const n = Number(this.db.get("SELECT count(*) AS n FROM photos")!.n);
    if (n === 0) throw new Error(`${this.file}: cannot build an approximate index of an empty collection`);
    const state = train(this.trainingSample(n, SAMPLE_PER_LIST * listCount(n)), dim, listCount(n), n);
    // every row to its list
    const paths: string[] = [];
    const ids: number[] = [];
    const every = this.db.prepare("SELECT path, embedding FROM photos");
    try {
      for (const r of every.iterate()) {
        paths.push(r.path as string);
        ids.push(assignList(state, this.embedding(r), 0, dim));
      }
    } finally {
      every.finalize();
    }
    this.finalize();
    const { lists, centroids, groups, first } = state;
    this.db.exec("BEGIN IMMEDIATE");
    try {
      this.db.exec(`DROP TABLE IF EXISTS ivf_rows; DROP TABLE IF EXISTS ivf_centroids; DROP TABLE IF EXISTS ivf_groups;
        CREATE TABLE ivf_groups (grp INTEGER PRIMARY KEY, centroid BLOB NOT NULL) STRICT;
        CREATE TABLE ivf_centroids (list INTEGER PRIMARY KEY, grp INTEGER NOT NULL, centroid BLOB NOT NULL) STRICT;
        CREATE TABLE ivf_rows (id INTEGER PRIMARY KEY, path TEXT NOT NULL UNIQUE, embedding BLOB NOT NULL) STRICT;`);
      const blob = (a: Float32Array, i: number) => new Uint8Array(a.buffer, a.byteOffset + i * dim * 4, dim * 4);
      const put = (sql: string, count: number, args: (i: number) => (number | string | Uint8Array)[]) => {
        const st = this.db.prepare(sql);
        try {
          for (let i = 0; i < count; i++) st.run(args(i));
        } finally {
          st.finalize();
        }
      };
      const G = first.length - 1;
      put("INSERT INTO ivf_groups VALUES (?, ?)", G, (g) => [g, blob(groups, g)]);
      let g = 0;
      put("INSERT INTO ivf_centroids VALUES (?, ?, ?)", lists, (j) => {
        while (j >= first[g + 1]) g++;
        return [j, g, blob(centroids, j)];
      });
      // list by list, in scan order within a list: appends to the rowid tree; the embedding is copied inside SQLite
      const order = Int32Array.from(paths.keys()).sort((a, b) => ids[a] - ids[b] || a - b);
      const seq = new Int32Array(lists);
      put("INSERT INTO ivf_rows SELECT ?, path, embedding FROM photos WHERE path = ?", order.length, (t) => {
        const i = order[t];
        return [ids[i] * LIST_SPAN + seq[ids[i]]++, paths[i]];
      });
      this.db.exec(`INSERT OR REPLACE INTO meta VALUES ('ivf_lists', '${lists}'), ('ivf_rows', '${n}');
        COMMIT`);
    } catch (e) {
      if (this.db.inTransaction) this.db.exec("ROLLBACK");
      this.state = null;
      this.load();
      throw e;
    }
    this.state = { ...state, builtRows: n };
    this.statements();
    return { lists, groups: first.length - 1, rows: n, ms: performance.now() - t0 };
  }

  private embedding(r: Record<string, unknown>): Float32Array {
    const b = r.embedding;
    if (!(b instanceof Uint8Array) || b.byteLength !== this.dim * 4) throw new Error(`${this.file}: row ${r.path} has a damaged embedding`);
    return f32(b, this.dim);
  }

  /**
   * About `want` rows, chosen by a hash of their path (so whatever order they were inserted in), sorted by path
   * (UTF-8 bytes): every row when that would leave too few.
   */
  private trainingSample(n: number, want: number): Float32Array {
    const dim = this.dim;
    const cut = want >= n ? 2 ** 32 : Math.floor((want / n) * 2 ** 32);
    const pick = (limit: number) => {
      const picked: { path: Buffer; e: Float32Array }[] = [];
      const scan = this.db.prepare("SELECT path, embedding FROM photos");
      try {
        for (const r of scan.iterate()) {
          if (pathHash(r.path as string) < limit) picked.push({ path: Buffer.from(r.path as string, "utf8"), e: this.embedding(r).slice() });
        }
      } finally {
        scan.finalize();
      }
      return picked;
    };
    let picked = pick(cut);
    if (picked.length < Math.min(n, want / 2)) picked = pick(2 ** 32);
    picked.sort((a, b) => Buffer.compare(a.path, b.path));
    const sample = new Float32Array(picked.length * dim);
    picked.forEach((p, i) => sample.set(p.e, i * dim));
    return sample;
  }

  /**
   * The rows of the nprobe lists nearest to q (of one model, if given), for db.ts to rank exactly: one range of
   * ivf_rows per list.
   */
  *candidates(q: Float32Array, nprobe: number, modelSha256?: string): Generator<ScanRow> {
    const s = this.state!;
    const probe = probeLists(q, s.centroids, s.hc, s.lists, this.dim, nprobe);
    const stmt = this.db.prepare(`SELECT path, embedding FROM ivf_rows r WHERE id >= ? AND id < ?${modelSha256
      ? " AND EXISTS (SELECT 1 FROM photos p WHERE p.path = r.path AND p.model_sha256 = ?)" : ""}`);
    try {
      for (const j of probe) {
        const range = [j * LIST_SPAN, (j + 1) * LIST_SPAN];
        yield* stmt.iterate(modelSha256 ? [...range, modelSha256] : range) as Iterable<ScanRow>;
      }
    } finally {
      stmt.finalize();
    }
  }

  /** Finalizes the prepared statements (before close, and before the tables they use are dropped). */
  finalize(): void {
    for (const s of [this.assignStmt, this.removeStmt]) if (s && !s.isFinalized) s.finalize();
    this.assignStmt = this.removeStmt = null;
  }
}
