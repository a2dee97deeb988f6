// Joins the collections that `index --shard I/N` wrote, one per shard, into one. Parts are read in path order and
// merged like sorted lists, so memory stays at a row per part whatever their size. The output is written to a
// temporary file beside OUT and renamed over it only once complete: OUT is the old file or the whole new one.
import { closeSync, existsSync, fsyncSync, openSync, readdirSync, realpathSync, renameSync, rmSync, statSync } from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
import { CollectionDb, comparePaths, type PhotoRow } from "./db.js";

export class MergeError extends Error {
  override name = "MergeError";
}

export interface MergeOptions {
  /** Replace OUT when it exists (it must then be a clip-ts collection, not open elsewhere). */
  force?: boolean;
  /** Rows written per transaction. */
  batch?: number;
  /** Called after each batch is written to the temporary file: rows written so far, of at most `total` (the
   *  parts' rows; fewer are written when parts share rows). */
  onProgress?: (rows: number, total: number) => void;
}

export interface MergeResult {
  rows: number;
  /** Rows found in more than one part, identical, written once. */
  duplicates: number;
}

const oneLine = (e: unknown) => String((e as Error)?.message ?? e).split("\n")[0];
const SIDECARS = ["-wal", "-shm", "-journal", ".pid", ".lock"];

function removeWithSidecars(file: string): void {
  for (const s of ["", ...SIDECARS]) rmSync(`${file}${s}`, { force: true, recursive: s === ".lock" });
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** Temporary files of merges into `out` whose process died (kill -9): removed, so they do not pile up. */
function removeDeadTemporaries(out: string): void {
  const prefix = `.${basename(out)}.merge-`;
  let names: string[];
  try {
    names = readdirSync(dirname(out));
  } catch {
    return;
  }
  for (const n of names) {
    const m = n.startsWith(prefix) ? /^(\d+)\.tmp$/.exec(n.slice(prefix.length)) : null;
    if (m && Number(m[1]) !== process.pid && !alive(Number(m[1]))) removeWithSidecars(join(dirname(out), n));
  }
}

/** The same file under any name (symlinks, ./, ..), when it exists. */
function identity(path: string): string {
  try {
    return realpathSync(path);
  } catch {
    return resolve(path);
  }
}

/** Which field of two rows of the same path differs, or undefined when they are the same row. */
function difference(a: PhotoRow, b: PhotoRow): string | undefined {
  if (a.sha256 !== b.sha256) return "file SHA-256";
  if (a.modelSha256 !== b.modelSha256) return "model SHA-256";
  if (a.size !== b.size) return "size";
  if (!Object.is(a.mtimeMs, b.mtimeMs)) return "mtime";
  const x = new Uint8Array(a.embedding.buffer, a.embedding.byteOffset, a.embedding.byteLength);
  const y = new Uint8Array(b.embedding.buffer, b.embedding.byteOffset, b.embedding.byteLength);
  if (x.length !== y.length || !x.every((v, i) => v === y[i])) return "embedding";
  return undefined;
}

function fsyncPath(path: string): void {
  let fd: number | undefined;
  try {
    fd = openSync(path, "r");
    fsyncSync(fd);
  } catch {
    // directories cannot be synced on some systems; the rename is still atomic
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/**
 * Writes the union of the collections `parts` to `out`. Refuses parts of different embedding widths or models, and
 * a path in two parts with different rows (the same row twice is fine: written once).
 */
export function mergeCollections(parts: readonly string[], out: string, options: MergeOptions = {}): MergeResult {
  const batch = options.batch ?? 512;
  if (!Array.isArray(parts) || parts.length === 0) throw new MergeError("merge needs at least one part collection");
  if (typeof out !== "string" || out === "") throw new MergeError("merge needs an output path");
  if (!(Number.isSafeInteger(batch) && batch >= 1)) throw new MergeError(`merge batch must be a positive integer, got ${batch}`);
  const seen = new Map<string, string>();
  for (const p of parts) {
    if (typeof p !== "string" || p === "") throw new MergeError(`part paths must be non-empty strings, got ${JSON.stringify(p)}`);
    const id = identity(p);
    if (seen.has(id)) throw new MergeError(`${p}: given twice (as ${seen.get(id)} too)`);
    seen.set(id, p);
    if (!existsSync(p)) throw new MergeError(`${p}: no such part collection`);
  }
  if (seen.has(identity(out))) throw new MergeError(`${out}: the output is also one of the parts; write to a new file`);
  const folder = dirname(resolve(out));
  if (!existsSync(folder) || !statSync(folder).isDirectory()) throw new MergeError(`${out}: no folder ${folder} to write it in`);
  if (existsSync(out)) {
    if (!options.force) throw new MergeError(`${out} exists; pass --force to replace it`);
    if (statSync(out).isDirectory()) throw new MergeError(`${out} is a directory`);
    // Only a collection is replaced, and only when no one has it open; closing it folds its WAL into it.
    try {
      CollectionDb.open(out, { create: false }).close();
    } catch (e) {
      throw new MergeError(`${out}: not replaced: ${oneLine(e).replace(`${out}: `, "")}`);
    }
  }
  // A WAL left without its database would be replayed into the new file.
  for (const s of ["-wal", "-shm", "-journal"]) if (existsSync(`${out}${s}`)) throw new MergeError(`${out}${s} exists without a collection to belong to; remove it first`);

  const dbs: CollectionDb[] = [];
  const tmp = join(dirname(out), `.${basename(out)}.merge-${process.pid}.tmp`);
  let target: CollectionDb | undefined;
  let iters: Generator<PhotoRow>[] = [];
  try {
    for (const p of parts) {
      try {
        dbs.push(CollectionDb.open(p, { create: false }));
      } catch (e) {
        throw new MergeError(oneLine(e));
      }
    }
    const dim = dbs[0]!.dim;
    for (const [i, db] of dbs.entries()) {
      if (db.dim !== dim) throw new MergeError(`${parts[i]} holds ${db.dim}-wide embeddings, ${parts[0]} ${dim}-wide: parts of different models cannot be merged`);
    }
    // Models first, from the metadata alone, so a wrong part is refused before anything is written.
    let model: { sha: string; part: string } | undefined;
    for (const [i, db] of dbs.entries()) {
      for (const r of db.rows({ embeddings: false })) {
        if (!model) model = { sha: r.modelSha256, part: parts[i]! };
        else if (r.modelSha256 !== model.sha) {
          throw new MergeError(`${parts[i]} has rows of model ${r.modelSha256.slice(0, 12)}… (${JSON.stringify(r.path)}), ${model.part} of model ${model.sha.slice(0, 12)}…: parts of different models cannot be merged`);
        }
      }
    }

    const total = dbs.reduce((n, db) => n + db.count(), 0);
    removeDeadTemporaries(out);
    removeWithSidecars(tmp);
    try {
      target = CollectionDb.open(tmp, { dim });
    } catch (e) {
      throw new MergeError(`${out}: cannot write the merge beside it: ${oneLine(e)}`);
    }
    iters = dbs.map((db) => db.rows());
    const heads = iters.map((it) => it.next());
    let rows = 0;
    let duplicates = 0;
    let pending: PhotoRow[] = [];
    for (;;) {
      let min: PhotoRow | undefined;
      let from = -1;
      for (const [i, h] of heads.entries()) {
        if (!h.done && (!min || comparePaths(h.value.path, min.path) < 0)) {
          min = h.value;
          from = i;
        }
      }
      if (!min) break;
      for (const [i, h] of heads.entries()) {
        if (h.done || h.value.path !== min.path) continue;
        if (i !== from) {
          const field = difference(min, h.value);
          if (field) throw new MergeError(`${JSON.stringify(min.path)} is in ${parts[from]} and ${parts[i]} with a different ${field}: not merged`);
          duplicates++;
        }
        heads[i] = iters[i]!.next();
      }
      pending.push(min);
      if (pending.length === batch) {
        target.upsert(pending);
        rows += pending.length;
        pending = [];
        options.onProgress?.(rows, total);
      }
    }
    if (pending.length) target.upsert(pending);
    rows += pending.length;
    target.close();
    target = undefined;
    fsyncPath(tmp);
    renameSync(tmp, out);
    fsyncPath(dirname(resolve(out)));
    return { rows, duplicates };
  } finally {
    try {
      target?.close();
    } finally {
      for (const it of iters) it.return(undefined); // finalizes its statement before its database closes
      for (const db of dbs) db.close();
      if (existsSync(tmp) || existsSync(`${tmp}-wal`)) removeWithSidecars(tmp);
    }
  }
}
