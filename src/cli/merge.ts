// `clip-ts merge`: the parts written by `index --shard I/N` into one collection.
import { resolve } from "node:path";
import { MergeError, mergeCollections } from "../collection/merge.js";
import { CliError, parse, required, UsageError } from "./args.js";
import { usageIfEmpty, type Command } from "./common.js";
import { Progress } from "./progress.js";

export const merge: Command = {
  name: "merge",
  summary: "join collections indexed in parts (index --shard I/N) into one",
  help: `Usage:
  clip-ts merge --db OUT [--force] PART.db...

Writes the union of the PART collections to OUT: every row as it is in its part, bit for bit. Parts must hold
embeddings of the same model (width and weights SHA-256); a path in two parts must be the same row in both
(written once), else nothing is written. OUT is written to a temporary file beside it and renamed into
place when complete, so it is never seen half-written.

Options:
  --db OUT    the merged collection to write (refused if it exists, unless --force)
  --force     replace OUT if it exists (only a clip-ts collection that no process has open)

Example (4 shards, then the merge; see docs/collections-shards.md for Slurm and Kubernetes):
  for i in 0 1 2 3; do clip-ts index photos/ --db part-$i.db --shard $i/4 & done; wait
  clip-ts merge --db photos.db part-*.db`,

  async run(argv, io) {
    const { values, positionals } = parse(argv, { db: { type: "string" }, force: { type: "boolean" } }, true);
    if (values.help) return io.stdout.write(`${this.help}\n`);
    const out = resolve(io.cwd, required(values.db, "--db OUT"));
    usageIfEmpty(positionals, "the part collections to merge (PART.db...)");
    const parts = positionals.map((p) => resolve(io.cwd, p));
    for (const p of parts) if (p === out) throw new UsageError(`--db ${values.db} is also a part; write the merge to a new file`);
    let r;
    let bar: Progress | undefined;
    try {
      r = mergeCollections(parts, out, {
        force: values.force ?? false,
        onProgress: (rows, total) => {
          bar ??= new Progress(io.stderr, "merging", total, "items");
          bar.update(rows);
        },
      });
    } catch (e) {
      if (e instanceof MergeError) throw new CliError(e.message);
      throw e;
    } finally {
      bar?.finish();
    }
    io.stdout.write(`merged ${parts.length} part${parts.length === 1 ? "" : "s"} into ${out}: ${r.rows} rows${r.duplicates ? ` (${r.duplicates} found in two parts, identical, kept once)` : ""}\n`);
  },
};
