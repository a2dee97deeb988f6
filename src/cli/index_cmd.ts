import { existsSync } from "node:fs";
import { resolve } from "node:path";
import { DEFAULT_MAX_BATCH } from "../model.js";
import { indexFiles, modelSha256, type IndexReport } from "../collection/indexer.js";
import { parseShard } from "../collection/shard.js";
import { CliError, integer, parse, required, UsageError } from "./args.js";
import { MODEL_HELP, MODEL_OPTIONS, openModel, writeOutput, type Command } from "./common.js";
import { Progress } from "./progress.js";

export const indexCommand: Command = {
  name: "index",
  summary: "embed the PNG/JPEG images of folders, files, globs or .tar shards into a collection (incremental)",
  help: `Usage:
  clip-ts index <folder|file|glob|shard.tar>... --db PATH [--errors FILE] [--shard I/N] [options]

Embeds every PNG and JPEG (told by content) of the inputs, folders recursively, into the collection at --db (one
SQLite file, created if missing): path, size, mtime, SHA-256 of the file and of the model's weights, and the
L2-normalised image features (the bits of embed-image --normalize). Run it again to bring the collection up to
date: new and changed files are embedded, unchanged ones not read, files no longer among the inputs removed.
Batches are committed as they go: after an interruption (even kill -9) the same command finishes the job.
Files that cannot be decoded are listed and skipped; other files are skipped. A summary goes to stderr.

Options:
  --db PATH          the collection file
  --errors FILE      write one line per failed or skipped file: path TAB reason
  --shard I/N        index only part I of N (0 ≤ I < N) of the inputs, chosen from their relative paths
  --batch B          images per forward pass (default 16; never changes a bit)
${MODEL_HELP}`,

  async run(argv, io) {
    const { values, positionals } = parse(argv, {
      ...MODEL_OPTIONS, db: { type: "string" }, errors: { type: "string" }, shard: { type: "string" }, batch: { type: "string" },
    }, true);
    if (values.help) return io.stdout.write(`${this.help}\n`);
    if (!positionals.length) throw new UsageError("missing the folders, files or globs to index");
    const db = required(values.db, "--db");
    const batch = integer(values.batch, "--batch", 1, DEFAULT_MAX_BATCH) ?? 16;
    let shard;
    try {
      shard = values.shard === undefined ? undefined : parseShard(values.shard);
    } catch (e) {
      throw new UsageError(`--shard: ${(e as Error).message}`);
    }
    // A local --model (or the embedded one) is hashed before loading; a name or URL once openModel has fetched it.
    const local = values.model === undefined ? null : existsSync(resolve(io.cwd, values.model)) ? resolve(io.cwd, values.model) : undefined;
    let bar: Progress | undefined;
    let report: IndexReport;
    let opened: Awaited<ReturnType<typeof openModel>> | undefined;
    try {
      report = await indexFiles(positionals, {
        db, cwd: io.cwd, batch, shard,
        model: local === undefined
          ? async () => {
            opened = await openModel(io, values, "image");
            return { model: opened.model, sha256: await modelSha256(opened.file) };
          }
          : { sha256: await hashOf(local ?? undefined, values.model), load: async () => (opened = await openModel(io, values, "image")).model },
        onProgress: ({ done, total }) => {
          bar ??= new Progress(io.stderr, "indexing", total, "files");
          bar.update(done);
        },
      });
    } catch (e) {
      if (e instanceof CliError || e instanceof UsageError) throw e;
      throw new CliError((e as Error).message);
    } finally {
      bar?.finish();
      opened?.model.dispose();
    }
    if (values.errors !== undefined) {
      const esc = (s: string) => s.replace(/[\\\t\n\r]/g, (c) => ({ "\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r" })[c]!);
      writeOutput(io, values.errors, report.problems.map((p) => `${esc(p.path)}\t${esc(p.message)}\n`).join(""), "--errors");
    }
    io.stderr.write(summaryText(report, resolve(io.cwd, db), values.errors));
  },
};

async function hashOf(path: string | undefined, shown: string | undefined): Promise<string> {
  try {
    return await modelSha256(path);
  } catch (e) {
    throw new CliError(`--model "${shown ?? "embedded"}": ${(e as Error).message}`);
  }
}

/** The lines written after indexing: the counts, then the failures (all of them only in --errors). */
export function summaryText(r: IndexReport, db: string, errorsFile?: string): string {
  const read = r.added + r.updated + r.failed + r.skipped;
  const rate = r.seconds > 0 && read > 0 ? `, ${(read / r.seconds).toFixed(1)} files/s` : "";
  const lines = [
    `${db}: ${r.files} files: ${r.added} added, ${r.updated} updated, ${r.removed} removed, ${r.unchanged} unchanged, ` +
      `${r.failed} failed, ${r.skipped} skipped (not PNG/JPEG) in ${r.seconds.toFixed(1)} s${rate}`,
  ];
  if (r.inexact) lines.push(`note: ${r.inexact} JPEG(s) decoded by the fallback decoder; their pixels may differ slightly from Pillow's`);
  const failed = r.problems.filter((p) => !p.skipped);
  const shown = errorsFile === undefined ? failed.slice(0, 10) : [];
  for (const p of shown) lines.push(`failed: ${p.path}: ${p.message}`);
  if (failed.length > shown.length) {
    lines.push(errorsFile === undefined ? `… and ${failed.length - shown.length} more (--errors FILE lists them all)` : `failed and skipped files are listed in ${errorsFile}`);
  }
  return `${lines.join("\n")}\n`;
}
