// `clip-ts export`: a collection's embeddings as .npy (+ the paths beside it) or as parquet, for faiss and
// clip-retrieval users; both in path order, written atomically.
import { resolve } from "node:path";
import { CollectionDb } from "../collection/db.js";
import { exportNpy, exportParquet } from "../collection/export.js";
import { choice, CliError, parse, required } from "./args.js";
import type { Command } from "./common.js";
import { OutputFile } from "./output.js";

export const exportCommand: Command = {
  name: "export",
  summary: "a collection's embeddings as .npy (+ paths) or parquet",
  help: `Usage:
  clip-ts export --db PATH --format npy|parquet --out FILE

Writes every row of the collection at --db, in path order (UTF-8 bytes):
  npy      FILE: float32 [n, dim] (numpy.load, then e.g. faiss.IndexFlatIP.add); FILE.paths.json beside it: a JSON
           array of the n paths, row i's path at index i
  parquet  FILE: one row per image, columns image_path (string), sha256 (string, of the file's bytes) and
           embedding (list<float32>), as clip-retrieval names them (pyarrow / pandas / duckdb read it)
Files are replaced whole or not at all.

Options:
  --db PATH          the collection (made by clip-ts index)
  --format FORMAT    npy or parquet
  --out FILE         where to write`,

  async run(argv, io) {
    const { values } = parse(argv, { db: { type: "string" }, format: { type: "string" }, out: { type: "string" } }, false);
    if (values.help) return io.stdout.write(`${this.help}\n`);
    const dbPath = required(values.db, "--db");
    const format = choice(required(values.format, "--format"), "--format", ["npy", "parquet"] as const)!;
    const out = required(values.out, "--out");
    let db: CollectionDb;
    try {
      db = CollectionDb.open(resolve(io.cwd, dbPath), { create: false });
    } catch (e) {
      throw new CliError(`--db: ${(e as Error).message}`);
    }
    const files: OutputFile[] = [];
    try {
      const target = resolve(io.cwd, out);
      const main = OutputFile.open(target, out);
      files.push(main);
      let rows: number;
      if (format === "npy") {
        const sidecar = OutputFile.open(`${target}.paths.json`, `${out}.paths.json`);
        files.push(sidecar);
        rows = exportNpy(db, main, sidecar);
        sidecar.commit();
      } else rows = exportParquet(db, main);
      main.commit();
      files.length = 0;
      io.stderr.write(`${rows} rows of ${db.dim} floats → ${out}${format === "npy" ? ` and ${out}.paths.json` : ""}\n`);
    } catch (e) {
      for (const f of files) f.abort();
      throw e instanceof CliError ? e : new CliError((e as Error).message);
    } finally {
      db.close();
    }
  },
};
