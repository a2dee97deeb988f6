// `clip-ts models`: the named models (openai/CLIP's clip.available_models()), their sizes, and what the download
// cache holds; --download fetches some into it ahead of time (e.g. before going offline).
import { availableModels, cacheDir, cacheStatus, formatBytes, HubError, isHttpUrl, MODELS, modelUrl, resolveModel, unknownModelMessage } from "../hub.js";
import { CliError, parse, UsageError } from "./args.js";
import type { Command } from "./common.js";
import { downloadProgress } from "./progress.js";

export const models: Command = {
  name: "models",
  summary: "the models by name (as clip.available_models()), their sizes and what is cached; --download",
  help: `Usage:
  clip-ts models [--json] [--download NAME|URL]...

Lists openai/CLIP's models by name (the names of clip.load, exactly: "ViT-B/32", not "ViT-B-32"), with the
size of each file, whether it is in the download cache, and where. Names are downloaded on first use,
checked against their SHA-256 and kept; an interrupted download resumes where it stopped.

Options:
  --json                the list as JSON (url, sha256, bytes, cached, path for each model)
  --download NAME|URL   download into the cache now (repeatable); prints each file's path

Environment:
  CLIP_TS_CACHE            the cache directory (default: $XDG_CACHE_HOME/clip-ts or ~/.cache/clip-ts,
                           ~/Library/Caches/clip-ts on macOS, %LOCALAPPDATA%\\clip-ts on Windows)
  CLIP_TS_MODEL_BASE_URL   a mirror: replaces https://openaipublic.azureedge.net in the model URLs, keeping
                           their paths (clip/models/<sha256>/<file>)`,

  async run(argv, io) {
    const { values } = parse(argv, { json: { type: "boolean" }, download: { type: "string", multiple: true } }, false);
    if (values.help) return io.stdout.write(`${this.help}\n`);
    try {
      if (values.download?.length) return await download(values.download, io);
      const dir = cacheDir();
      const rows = await Promise.all(availableModels().map(async (name) => {
        const m = MODELS[name];
        const s = await cacheStatus(name);
        return { name, url: modelUrl(name), sha256: m.sha256, bytes: m.bytes ?? null, cached: s.cached, path: s.path, partialBytes: s.partialBytes ?? null };
      }));
      if (values.json) return io.stdout.write(`${JSON.stringify({ cacheDir: dir, models: rows }, null, 2)}\n`);
      const table = rows.map((r) => [r.name, formatBytes(r.bytes ?? undefined), r.cached ? "yes" : r.partialBytes !== null ? `partial ${formatBytes(r.partialBytes)}` : "no", r.path]);
      const header = ["name", "size", "cached", "path"];
      const w = [0, 1, 2].map((i) => Math.max(header[i].length, ...table.map((r) => r[i].length)));
      const line = (r: string[]) => `${r[0].padEnd(w[0])}  ${r[1].padStart(w[1])}  ${r[2].padEnd(w[2])}  ${r[3]}`;
      io.stdout.write(`${[`cache: ${dir}`, "", line(header), ...table.map(line)].join("\n")}\n`);
    } catch (e) {
      if (e instanceof HubError) throw e.kind === "unknown-model" || e.kind === "bad-option" ? new UsageError(e.message) : new CliError(e.message);
      throw e;
    }
  },
};

async function download(sources: string[], io: Parameters<Command["run"]>[1]): Promise<void> {
  for (const s of sources) if (!Object.hasOwn(MODELS, s) && !isHttpUrl(s)) throw new UsageError(`--download: ${unknownModelMessage(s, MODELS, "no model named")} (or an http(s) URL)`);
  for (const source of sources) {
    const bar = downloadProgress(io.stderr, `downloading ${source}`);
    try {
      const r = await resolveModel(source, { onProgress: bar.onProgress, offlineHint: "pass --model PATH" });
      io.stdout.write(`${r.path}\n`);
    } finally {
      bar.finish();
    }
  }
}
