// A photo collection on disk: one SQLite file (node-sqlite3-wasm: SQLite compiled to wasm with real file I/O, no
// native build, no install script) holding, per file, its path, size, mtime, SHA-256, the SHA-256 of the model that
// embedded it, and the embedding. Why SQLite-in-wasm and not LanceDB, DuckDB or better-sqlite3: bench/db/README.md.
import { linkSync, readFileSync, rmdirSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import type { Database as SqliteDb, Statement } from "node-sqlite3-wasm";
import { defaultNprobe, Ivf, type IvfOptions, type ScanRow } from "./ivf.js";

export interface PhotoRow {
  /** The key: one row per path, compared as UTF-8 bytes (SQLite's BINARY order). */
  path: string;
  /** File size in bytes. */
  size: number;
  /** File modification time, ms since the epoch. */
  mtimeMs: number;
  /** SHA-256 of the file's bytes, 64 lowercase hex digits. */
  sha256: string;
  /** SHA-256 of the weights that made `embedding`: rows of different models are not comparable. */
  modelSha256: string;
  /** The image embedding, `dim` floats; search ranks by dot product, so store it L2-normalised for cosine. */
  embedding: Float32Array;
}
export type PhotoMeta = Omit<PhotoRow, "embedding">;
export interface SearchHit {
  path: string;
  /** Dot product of the query and the row, summed in float64 in index order, rounded to float32. */
  score: number;
}
export interface OpenOptions {
  /** Embedding width; required to create a collection, checked against an existing one. */
  dim?: number;
  /** Create the file when it does not exist (default true). */
  create?: boolean;
  /** When the approximate index is built (src/collection/ivf.ts); tests lower minRows. */
  ivf?: IvfOptions;
}
export interface SearchOptions {
  /** Only rows of this model. */
  modelSha256?: string;
  /** Scan every row, even when the collection has an approximate index. */
  exact?: boolean;
  /** Lists the approximate index probes (default: defaultNprobe in ivf.ts); more is slower and closer to exact. */
  nprobe?: number;
}

const FORMAT = "clip-ts collection";
const VERSION = "1";
const HEX64 = /^[0-9a-f]{64}$/;
const MAX_PATH = 4096;
const MAX_K = 100_000;

const oneLine = (e: unknown) => String((e as Error)?.message ?? e).split("\n")[0];

let sqlite: typeof import("node-sqlite3-wasm") | undefined;
/** Loaded on first use, so importing clip-ts does not start SQLite. */
function driver(): typeof import("node-sqlite3-wasm") {
  if (!sqlite) {
    try {
      sqlite = createRequire(import.meta.url)("node-sqlite3-wasm") as typeof import("node-sqlite3-wasm");
    } catch {
      throw new Error("collections need the package node-sqlite3-wasm: run `npm install node-sqlite3-wasm`");
    }
  }
  return sqlite;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

/**
 * One process at a time owns a collection, named in `<file>.pid`. The wasm VFS locks with mkdir(`<file>.lock`),
 * which a killed process leaves behind; a dead owner's pid file is what tells that lock is stale.
 */
function claim(file: string): string {
  const pidFile = `${file}.pid`;
  const tmp = `${pidFile}.${process.pid}`;
  try {
    writeFileSync(tmp, String(process.pid));
  } catch (e) {
    throw new Error(`${file}: cannot create ${pidFile}: ${oneLine(e)}`);
  }
  try {
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        linkSync(tmp, pidFile); // atomic: fails if it exists, and never shows a half-written pid
        return pidFile;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw new Error(`${file}: cannot create ${pidFile}: ${oneLine(e)}`);
      }
      let owner = NaN;
      try {
        owner = Number(readFileSync(pidFile, "utf8"));
      } catch {
        continue; // its owner just closed
      }
      if (Number.isSafeInteger(owner) && owner > 0 && alive(owner)) {
        throw new Error(`${file} is open in process ${owner}${owner === process.pid ? " (this one)" : ""}; close it first`);
      }
      rmSync(pidFile, { force: true });
      try {
        rmdirSync(`${file}.lock`);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw new Error(`${file}: cannot remove the stale lock ${file}.lock: ${(e as Error).message}`);
      }
    }
    throw new Error(`${file}: other processes keep claiming it; try again`);
  } finally {
    rmSync(tmp, { force: true });
  }
}

/** UTF-8 byte order, as SQLite's BINARY collation, so ties in search follow the order of `rows()`. */
export function comparePaths(a: string, b: string): number {
  return a === b ? 0 : Buffer.compare(Buffer.from(a, "utf8"), Buffer.from(b, "utf8"));
}

export class CollectionDb {
  readonly file: string;
  readonly dim: number;
  private db: SqliteDb | null;
  private readonly pidFile: string;
  private readonly stmts: Statement[] = [];
  private readonly upsertStmt: Statement;
  private readonly deleteStmt: Statement;
  /** The approximate index (inactive below its threshold). */
  readonly ivf: Ivf;

  private constructor(file: string, db: SqliteDb, pidFile: string, dim: number, ivf: IvfOptions | undefined) {
    this.file = file;
    this.db = db;
    this.pidFile = pidFile;
    this.dim = dim;
    this.ivf = new Ivf(db, dim, file, ivf);
    this.upsertStmt = this.prepare(
      `INSERT INTO photos (path, size, mtime_ms, sha256, model_sha256, embedding) VALUES (?, ?, ?, ?, ?, ?)
       ON CONFLICT (path) DO UPDATE SET size = excluded.size, mtime_ms = excluded.mtime_ms, sha256 = excluded.sha256,
       model_sha256 = excluded.model_sha256, embedding = excluded.embedding`,
    );
    this.deleteStmt = this.prepare("DELETE FROM photos WHERE path = ?");
  }

  /** Opens the collection at `file`, creating it (with `options.dim`) if it does not exist. */
  static open(file: string, options: OpenOptions = {}): CollectionDb {
    const { dim, create = true } = options;
    if (typeof file !== "string" || file === "" || file.includes("\0")) throw new Error(`collection path must be a non-empty string, got ${JSON.stringify(file)}`);
    if (dim !== undefined && !(Number.isSafeInteger(dim) && dim >= 1 && dim <= 65536)) throw new Error(`collection dim must be an integer in 1..65536, got ${dim}`);
    const { Database } = driver();
    const pidFile = claim(file);
    let db: SqliteDb | undefined;
    try {
      try {
        db = new Database(file, { fileMustExist: !create });
      } catch (e) {
        throw new Error(create ? `${file}: cannot open: ${oneLine(e)}` : `${file}: no collection there (${oneLine(e)})`);
      }
      // Without shared memory in the VFS a WAL file can only be read with exclusive locking (one owner anyway).
      db.exec("PRAGMA locking_mode = EXCLUSIVE");
      const stored = CollectionDb.schema(db, file, dim);
      return new CollectionDb(file, db, pidFile, stored, options.ivf);
    } catch (e) {
      try {
        db?.close();
      } finally {
        rmSync(pidFile, { force: true });
      }
      throw e;
    }
  }

  /** Creates the tables in an empty file, or checks an existing file is a collection of this version and width. */
  private static schema(db: SqliteDb, file: string, dim: number | undefined): number {
    let tables: string[];
    try {
      tables = db.all("SELECT name FROM sqlite_master WHERE type = 'table'").map((r) => String(r.name));
    } catch (e) {
      throw new Error(`${file}: not a clip-ts collection (${oneLine(e)})`);
    }
    if (tables.length === 0) {
      if (dim === undefined) throw new Error(`${file}: a new collection needs its embedding width (dim)`);
      // A 512-float row (2.2 KB) is over half a 4 KiB page, so 4 KiB pages hold one row each: 16 KiB pages hold 7,
      // halving the file and doubling write and scan speed (bench/db/README.md).
      db.exec("PRAGMA page_size = 16384");
      CollectionDb.wal(db, file);
      db.exec(`BEGIN IMMEDIATE;
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) STRICT;
        CREATE TABLE photos (path TEXT PRIMARY KEY, size INTEGER NOT NULL, mtime_ms REAL NOT NULL, sha256 TEXT NOT NULL,
          model_sha256 TEXT NOT NULL, embedding BLOB NOT NULL) STRICT;
        INSERT INTO meta VALUES ('format', '${FORMAT}'), ('version', '${VERSION}'), ('dim', '${dim}');
        COMMIT;`);
      return dim;
    }
    const meta = new Map<string, string>();
    try {
      for (const r of db.all("SELECT key, value FROM meta")) meta.set(String(r.key), String(r.value));
    } catch {
      throw new Error(`${file}: an SQLite database, but not a clip-ts collection (no meta table)`);
    }
    if (meta.get("format") !== FORMAT || !tables.includes("photos")) throw new Error(`${file}: an SQLite database, but not a clip-ts collection`);
    if (meta.get("version") !== VERSION) throw new Error(`${file}: collection format version ${meta.get("version")}, this clip-ts reads version ${VERSION}`);
    const stored = Number(meta.get("dim"));
    if (!(Number.isSafeInteger(stored) && stored >= 1)) throw new Error(`${file}: collection has a bad dim ${JSON.stringify(meta.get("dim"))}`);
    if (dim !== undefined && dim !== stored) throw new Error(`${file}: collection holds ${stored}-wide embeddings, asked for ${dim}`);
    CollectionDb.wal(db, file);
    return stored;
  }

  /**
   * Write-ahead log, synced at each commit. Not the rollback journal: this VFS never replays a hot journal (its
   * test for one sees the opener's own mkdir lock), so a kill -9 mid-commit would leave a corrupt file; a WAL is
   * recovered from its checksummed frames, keeping exactly the committed transactions.
   */
  private static wal(db: SqliteDb, file: string): void {
    const mode = db.get("PRAGMA journal_mode = WAL");
    if (mode?.journal_mode !== "wal") throw new Error(`${file}: cannot switch the collection to WAL (journal mode ${mode?.journal_mode})`);
    db.exec("PRAGMA synchronous = FULL");
  }

  private get handle(): SqliteDb {
    if (!this.db) throw new Error(`${this.file}: collection is closed`);
    return this.db;
  }
  private prepare(sql: string): Statement {
    const s = this.handle.prepare(sql);
    this.stmts.push(s);
    return s;
  }
  /** Runs `body` in one write transaction: all of it is on disk after this returns, none of it if it throws. */
  private transaction<T>(body: () => T): T {
    const db = this.handle;
    db.exec("BEGIN IMMEDIATE");
    try {
      const out = body();
      db.exec("COMMIT");
      return out;
    } catch (e) {
      if (db.inTransaction) db.exec("ROLLBACK");
      throw e;
    }
  }

  count(): number {
    return Number(this.handle.get("SELECT count(*) AS n FROM photos")!.n);
  }

  get(path: string): PhotoRow | undefined {
    const r = this.handle.get("SELECT * FROM photos WHERE path = ?", [path]);
    return r ? this.toRow(r) : undefined;
  }

  /** Inserts or replaces rows by path, all in one transaction; every row is checked before anything is written. */
  upsert(rows: readonly PhotoRow[]): void {
    for (const r of rows) this.check(r);
    this.transaction(() => {
      for (const r of rows) {
        const e = r.embedding;
        this.upsertStmt.run([r.path, r.size, r.mtimeMs, r.sha256, r.modelSha256, new Uint8Array(e.buffer, e.byteOffset, e.byteLength)]);
        this.ivf.assign(r.path, e);
      }
    });
    this.ivf.afterWrite();
  }

  /** Deletes the rows of these paths in one transaction; returns how many there were. */
  delete(paths: Iterable<string>): number {
    const list = [...paths];
    const n = this.transaction(() => list.reduce((n, p) => {
      this.ivf.remove(p);
      return n + this.deleteStmt.run([p]).changes;
    }, 0));
    if (n > 0) this.ivf.afterWrite(true);
    return n;
  }

  /** Deletes every row whose path is not in `keep` (files gone from disk); returns how many. */
  deleteExcept(keep: ReadonlySet<string>): number {
    const gone: string[] = [];
    for (const m of this.rows({ embeddings: false })) if (!keep.has(m.path)) gone.push(m.path);
    return gone.length ? this.delete(gone) : 0;
  }

  /** Every row in path order (UTF-8 bytes); `embeddings: false` leaves the embedding out (an empty array). */
  *rows(options: { embeddings?: boolean } = {}): Generator<PhotoRow> {
    const cols = options.embeddings === false ? "path, size, mtime_ms, sha256, model_sha256" : "*";
    const s = this.handle.prepare(`SELECT ${cols} FROM photos ORDER BY path`);
    try {
      for (const r of s.iterate()) yield this.toRow(r);
    } finally {
      s.finalize();
    }
  }

  /**
   * Top-k by dot product with `query`, over every row (or those of one model): score descending, ties by path (UTF-8
   * bytes), so the same collection and query always give the same list. Exact below the approximate index's
   * threshold or with `exact: true`; above it, the rows of the `nprobe` lists nearest to the query, ranked exactly.
   */
  search(query: Float32Array, k: number, options: SearchOptions = {}): SearchHit[] {
    if (!(query instanceof Float32Array) || query.length !== this.dim) {
      throw new Error(`search query must be a Float32Array of ${this.dim} values, got ${query instanceof Float32Array ? query.length : typeof query}`);
    }
    if (!query.every(Number.isFinite)) throw new Error("search query has NaN or infinite values");
    if (!(Number.isSafeInteger(k) && k >= 1 && k <= MAX_K)) throw new Error(`search k must be an integer in 1..${MAX_K}, got ${k}`);
    const model = options.modelSha256;
    if (model !== undefined && !HEX64.test(model)) throw new Error(`search modelSha256 must be 64 lowercase hex digits, got ${JSON.stringify(model)}`);
    const { exact = false, nprobe = defaultNprobe(this.ivf.info?.lists ?? 1) } = options;
    if (!(Number.isSafeInteger(nprobe) && nprobe >= 1)) throw new Error(`search nprobe must be a positive integer, got ${nprobe}`);
    if (!exact && this.ivf.active) {
      const hits = this.rank(this.ivf.candidates(query, nprobe, model), query, k);
      if (hits.length === k || nprobe >= this.ivf.info!.lists) return hits;
      // the probed lists held fewer than k rows: the exact scan has them all
    }
    const s = this.handle.prepare(`SELECT path, embedding FROM photos${model ? " WHERE model_sha256 = ?" : ""}`);
    try {
      return this.rank(s.iterate(model ? [model] : []) as Iterable<ScanRow>, query, k);
    } finally {
      s.finalize();
    }
  }

  /** The k best of `rows` by dot product with `query`: score descending, ties by path. */
  private rank(rows: Iterable<ScanRow>, query: Float32Array, k: number): SearchHit[] {
    const top: SearchHit[] = [];
    const dim = this.dim;
    for (const r of rows) {
      const e = this.embedding(r.embedding as Uint8Array, r.path as string);
      let sum = 0;
      for (let i = 0; i < dim; i++) sum += e[i] * query[i];
      const score = Math.fround(sum);
      if (top.length === k) {
        const last = top[k - 1];
        if (score < last.score || (score === last.score && comparePaths(r.path as string, last.path) > 0)) continue;
      }
      let j = top.length;
      while (j > 0 && (top[j - 1].score < score || (top[j - 1].score === score && comparePaths(top[j - 1].path, r.path as string) > 0))) j--;
      top.splice(j, 0, { path: r.path as string, score });
      if (top.length > k) top.pop();
    }
    return top;
  }

  /** SQLite's own consistency check of the whole file: "ok", or its first complaint. */
  integrity(): string {
    return String(this.handle.get("PRAGMA integrity_check")!.integrity_check);
  }

  /** Closes the file and gives up ownership; later calls throw. */
  close(): void {
    if (!this.db) return;
    try {
      for (const s of this.stmts) if (!s.isFinalized) s.finalize();
      this.ivf.finalize();
      this.db.close();
    } finally {
      this.db = null;
      rmSync(this.pidFile, { force: true });
    }
  }

  private check(r: PhotoRow): void {
    const p = r?.path;
    if (typeof p !== "string" || p === "" || p.includes("\0") || p.length > MAX_PATH) {
      throw new Error(`row path must be a non-empty string without NUL, at most ${MAX_PATH} characters, got ${JSON.stringify(p)?.slice(0, 80)}`);
    }
    if (!(Number.isSafeInteger(r.size) && r.size >= 0)) throw new Error(`${p}: size must be a non-negative integer, got ${r.size}`);
    if (!Number.isFinite(r.mtimeMs)) throw new Error(`${p}: mtimeMs must be a finite number, got ${r.mtimeMs}`);
    if (typeof r.sha256 !== "string" || !HEX64.test(r.sha256)) throw new Error(`${p}: sha256 must be 64 lowercase hex digits, got ${JSON.stringify(r.sha256)}`);
    if (typeof r.modelSha256 !== "string" || !HEX64.test(r.modelSha256)) {
      throw new Error(`${p}: modelSha256 must be 64 lowercase hex digits, got ${JSON.stringify(r.modelSha256)}`);
    }
    if (!(r.embedding instanceof Float32Array) || r.embedding.length !== this.dim) {
      throw new Error(`${p}: embedding must be a Float32Array of ${this.dim} values, got ${r.embedding instanceof Float32Array ? r.embedding.length : typeof r.embedding}`);
    }
    if (!r.embedding.every(Number.isFinite)) throw new Error(`${p}: embedding has NaN or infinite values`);
  }

  /** The stored bytes as floats (little-endian, as written); a blob of the wrong length is reported, not read. */
  private embedding(b: Uint8Array, path: string): Float32Array {
    if (!(b instanceof Uint8Array) || b.byteLength !== this.dim * 4) throw new Error(`${this.file}: row ${path} has a damaged embedding (${b?.byteLength} bytes)`);
    return b.byteOffset % 4 === 0 ? new Float32Array(b.buffer, b.byteOffset, this.dim) : new Float32Array(b.slice().buffer);
  }

  private toRow(r: Record<string, unknown>): PhotoRow {
    return {
      path: r.path as string,
      size: Number(r.size),
      mtimeMs: r.mtime_ms as number,
      sha256: r.sha256 as string,
      modelSha256: r.model_sha256 as string,
      embedding: r.embedding === undefined ? new Float32Array(0) : this.embedding(r.embedding as Uint8Array, r.path as string).slice(),
    };
  }
}
