// A photo collection inside a browser: IndexedDB holds, per file of a picked folder, its relative path, size,
// lastModified, the SHA-256 of the model that embedded it and the L2-normalised embedding (plus a small thumbnail),
// so that picking the same folder again embeds only what is new or changed, and a reload keeps the index. Search is
// exact and ranks as CollectionDb.search (src/collection/db.ts) does: the same scores, ties by UTF-8 path.
// No node: imports: this is part of the browser bundle.

export interface PhotoEntry {
  /** The key: the path relative to the picked folder's parent (webkitRelativePath, "photos/2024/a.jpg"). */
  path: string;
  size: number;
  lastModified: number;
  /** SHA-256 of the weights that made `embedding`: rows of different models are never compared. */
  modelSha256: string;
  /** L2-normalised, so that the dot product is the cosine. */
  embedding: Float32Array;
}
/** A file that could not be embedded; kept so that picking the folder again lists it without retrying it. */
export interface FailedEntry {
  path: string;
  size: number;
  lastModified: number;
  modelSha256: string;
  error: string;
}
/** What a file of a picked folder is known by. */
export interface PickedFile {
  path: string;
  size: number;
  lastModified: number;
}
export interface SearchHit {
  path: string;
  /** Dot product summed in float64 in index order, rounded to float32 (as CollectionDb.search). */
  score: number;
}
export interface IndexPlan<F extends PickedFile = PickedFile> {
  /** New files, changed ones (size or lastModified) and those embedded by another model. */
  embed: F[];
  /** Already embedded by this model, as they are. */
  unchanged: number;
  /** Failed before, unchanged: listed again, not retried. */
  failed: FailedEntry[];
  /** Stored under a picked folder, no longer in it. */
  removed: string[];
}

export const PHOTOS_DB_NAME = "clip-ts-photos";
const DB_VERSION = 1;
const PHOTOS = "photos";
const FAILED = "failed";
const THUMBS = "thumbs";
const HEX64 = /^[0-9a-f]{64}$/;
const MAX_K = 100_000;

/** Code point (= UTF-8 byte) order, as SQLite's BINARY collation of db.ts; JS's `<` orders UTF-16 units instead. */
export function comparePaths(a: string, b: string): number {
  if (a === b) return 0;
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    let x = a.charCodeAt(i), y = b.charCodeAt(i);
    if (x === y) continue;
    // surrogates (D800–DFFF) code for points above FFFF: move them above E000–FFFF
    if (x >= 0xd800) x += x >= 0xe000 ? -0x800 : 0x2000;
    if (y >= 0xd800) y += y >= 0xe000 ? -0x800 : 0x2000;
    return x - y;
  }
  return a.length - b.length;
}

/** The folder a relative path starts with ("photos" of "photos/a.jpg"). */
export const rootOf = (path: string) => path.split("/", 1)[0];

/** What to do with a pick, from what is stored: a pure function of both (tested in Node). */
export function planIndex<F extends PickedFile>(
  picked: readonly F[], stored: ReadonlyMap<string, PickedFile & { modelSha256: string }>,
  failedBefore: ReadonlyMap<string, FailedEntry>, modelSha256: string,
): IndexPlan<F> {
  const plan: IndexPlan<F> = { embed: [], unchanged: 0, failed: [], removed: [] };
  const same = (a: PickedFile & { modelSha256: string }, b: PickedFile) =>
    a.size === b.size && a.lastModified === b.lastModified && a.modelSha256 === modelSha256;
  const seen = new Set<string>();
  for (const f of picked) {
    if (seen.has(f.path)) continue;
    seen.add(f.path);
    const row = stored.get(f.path), bad = failedBefore.get(f.path);
    if (row && same(row, f)) plan.unchanged++;
    else if (!row && bad && same(bad, f)) plan.failed.push(bad);
    else plan.embed.push(f);
  }
  const roots = new Set([...seen].map(rootOf));
  for (const path of new Set([...stored.keys(), ...failedBefore.keys()])) {
    if (!seen.has(path) && roots.has(rootOf(path))) plan.removed.push(path);
  }
  plan.removed.sort(comparePaths);
  return plan;
}

/** Exact top-k by dot product: score descending, ties by path; the ranking of CollectionDb.search. */
export function topK(rows: Iterable<{ path: string; embedding: Float32Array }>, query: Float32Array, k: number): SearchHit[] {
  if (!(query instanceof Float32Array) || query.length === 0) throw new Error("search query must be a non-empty Float32Array");
  if (!query.every(Number.isFinite)) throw new Error("search query has NaN or infinite values");
  if (!(Number.isSafeInteger(k) && k >= 1 && k <= MAX_K)) throw new Error(`search k must be an integer in 1..${MAX_K}, got ${k}`);
  const dim = query.length;
  const top: SearchHit[] = [];
  for (const r of rows) {
    const e = r.embedding;
    if (e.length !== dim) throw new Error(`${r.path}: embedding of ${e.length} values, the query has ${dim}`);
    let sum = 0;
    for (let i = 0; i < dim; i++) sum += e[i] * query[i];
    const score = Math.fround(sum);
    if (top.length === k) {
      const last = top[k - 1];
      if (score < last.score || (score === last.score && comparePaths(r.path, last.path) > 0)) continue;
    }
    let j = top.length;
    while (j > 0 && (top[j - 1].score < score || (top[j - 1].score === score && comparePaths(top[j - 1].path, r.path) > 0))) j--;
    top.splice(j, 0, { path: r.path, score });
    if (top.length > k) top.pop();
  }
  return top;
}

interface StoredPhoto extends Omit<PhotoEntry, "embedding"> {
  /** float32 little-endian bytes */
  embedding: ArrayBuffer;
}

const request = <T>(r: IDBRequest<T>) => new Promise<T>((resolve, reject) => {
  r.onsuccess = () => resolve(r.result);
  r.onerror = () => reject(r.error);
});
const done = (t: IDBTransaction) => new Promise<void>((resolve, reject) => {
  t.oncomplete = () => resolve();
  t.onerror = () => reject(t.error);
  t.onabort = () => reject(t.error ?? new Error("IndexedDB transaction aborted"));
});
const oneLine = (e: unknown) => String((e as Error)?.message ?? e).split("\n")[0];

/**
 * The collection in IndexedDB ("clip-ts-photos"). Embeddings are also kept in memory once read, so a search
 * does not go back to the database; everything written goes through this object.
 */
export class BrowserCollection {
  private rows: Map<string, PhotoEntry> | null = null;
  /** Tells the collection's other instances (other tabs' workers) to read the rows again after a write here. */
  private readonly channel: BroadcastChannel | undefined;
  private constructor(private readonly db: IDBDatabase, name: string) {
    if (typeof BroadcastChannel === "function") {
      this.channel = new BroadcastChannel(`${name}:changed`);
      this.channel.onmessage = () => (this.rows = null);
    }
  }

  private changed(): void {
    this.channel?.postMessage(1);
  }

  /** Opens (creating) the database; `factory` defaults to the context's indexedDB (a page's or a worker's). */
  static async open(name = PHOTOS_DB_NAME, factory: IDBFactory | undefined = globalThis.indexedDB): Promise<BrowserCollection> {
    if (!factory) throw new Error("this browser context has no IndexedDB: the collection cannot be stored");
    const req = factory.open(name, DB_VERSION);
    req.onupgradeneeded = () => {
      const db = req.result;
      for (const store of [PHOTOS, FAILED, THUMBS]) if (!db.objectStoreNames.contains(store)) db.createObjectStore(store, { keyPath: "path" });
    };
    let db: IDBDatabase;
    try {
      db = await request(req);
    } catch (e) {
      throw new Error(`cannot open the IndexedDB database "${name}": ${oneLine(e)}`);
    }
    return new BrowserCollection(db, name);
  }

  private async all(): Promise<Map<string, PhotoEntry>> {
    if (this.rows) return this.rows;
    const stored = await request(this.db.transaction(PHOTOS).objectStore(PHOTOS).getAll() as IDBRequest<StoredPhoto[]>);
    const rows = new Map<string, PhotoEntry>();
    for (const r of stored) rows.set(r.path, { ...r, embedding: new Float32Array(r.embedding) });
    return (this.rows = rows);
  }

  /** Every embedded file (all models), in path order, and every failed one. */
  async entries(): Promise<{ photos: PhotoEntry[]; failed: FailedEntry[] }> {
    const photos = [...(await this.all()).values()].sort((a, b) => comparePaths(a.path, b.path));
    const failed = await request(this.db.transaction(FAILED).objectStore(FAILED).getAll() as IDBRequest<FailedEntry[]>);
    return { photos, failed: failed.sort((a, b) => comparePaths(a.path, b.path)) };
  }

  /** Files embedded by each model: modelSha256 → count. */
  async models(): Promise<Map<string, number>> {
    const counts = new Map<string, number>();
    for (const r of (await this.all()).values()) counts.set(r.modelSha256, (counts.get(r.modelSha256) ?? 0) + 1);
    return counts;
  }

  async plan<F extends PickedFile>(picked: readonly F[], modelSha256: string): Promise<IndexPlan<F>> {
    if (!HEX64.test(modelSha256)) throw new Error(`modelSha256 must be 64 lowercase hex digits, got ${JSON.stringify(modelSha256)}`);
    const { failed } = await this.entries();
    return planIndex(picked, await this.all(), new Map(failed.map((f) => [f.path, f])), modelSha256);
  }

  /** Stores embedded files (with their thumbnails, if any) in one transaction; a file failed before is no longer. */
  async put(entries: readonly (PhotoEntry & { thumbnail?: Blob })[]): Promise<void> {
    for (const e of entries) { // before the transaction: a bad entry writes nothing
      if (typeof e.path !== "string" || e.path === "") throw new Error(`entry path must be a non-empty string, got ${JSON.stringify(e.path)}`);
      if (!HEX64.test(e.modelSha256)) throw new Error(`${e.path}: modelSha256 must be 64 lowercase hex digits`);
      if (!(e.embedding instanceof Float32Array) || e.embedding.length === 0) throw new Error(`${e.path}: embedding must be a non-empty Float32Array`);
      if (!e.embedding.every(Number.isFinite)) throw new Error(`${e.path}: embedding has NaN or infinite values`);
    }
    const rows = await this.all();
    const t = this.db.transaction([PHOTOS, FAILED, THUMBS], "readwrite");
    for (const { thumbnail, embedding, ...meta } of entries) {
      t.objectStore(PHOTOS).put({ ...meta, embedding: embedding.slice().buffer });
      t.objectStore(FAILED).delete(meta.path);
      if (thumbnail) t.objectStore(THUMBS).put({ path: meta.path, blob: thumbnail });
      else t.objectStore(THUMBS).delete(meta.path);
    }
    await done(t);
    this.changed();
    for (const e of entries) rows.set(e.path, { path: e.path, size: e.size, lastModified: e.lastModified, modelSha256: e.modelSha256, embedding: e.embedding.slice() });
  }

  /** Records files that could not be embedded (their old embeddings, if any, go). */
  async fail(entries: readonly FailedEntry[]): Promise<void> {
    const rows = await this.all();
    const t = this.db.transaction([PHOTOS, FAILED, THUMBS], "readwrite");
    for (const f of entries) {
      t.objectStore(FAILED).put({ path: f.path, size: f.size, lastModified: f.lastModified, modelSha256: f.modelSha256, error: f.error });
      t.objectStore(PHOTOS).delete(f.path);
      t.objectStore(THUMBS).delete(f.path);
    }
    await done(t);
    this.changed();
    for (const f of entries) rows.delete(f.path);
  }

  async remove(paths: readonly string[]): Promise<void> {
    const rows = await this.all();
    const t = this.db.transaction([PHOTOS, FAILED, THUMBS], "readwrite");
    for (const p of paths) for (const s of [PHOTOS, FAILED, THUMBS]) t.objectStore(s).delete(p);
    await done(t);
    this.changed();
    for (const p of paths) rows.delete(p);
  }

  /** The stored thumbnail of a file (a small JPEG), if one was made. */
  async thumbnail(path: string): Promise<Blob | undefined> {
    const r = await request(this.db.transaction(THUMBS).objectStore(THUMBS).get(path) as IDBRequest<{ blob: Blob } | undefined>);
    return r?.blob;
  }

  /** The stored embedding of a file by this model (to search by an image of the collection). */
  async embedding(path: string, modelSha256: string): Promise<Float32Array | undefined> {
    const r = (await this.all()).get(path);
    return r && r.modelSha256 === modelSha256 ? r.embedding : undefined;
  }

  /** Exact top-k over the files embedded by `modelSha256` (see topK). */
  async search(query: Float32Array, k: number, modelSha256: string): Promise<SearchHit[]> {
    const rows = [...(await this.all()).values()].filter((r) => r.modelSha256 === modelSha256);
    return topK(rows, query, k);
  }

  /** Forgets everything. */
  async clear(): Promise<void> {
    const t = this.db.transaction([PHOTOS, FAILED, THUMBS], "readwrite");
    for (const s of [PHOTOS, FAILED, THUMBS]) t.objectStore(s).clear();
    await done(t);
    this.changed();
    this.rows = new Map();
  }

  close(): void {
    this.channel?.close();
    this.db.close();
  }
}
