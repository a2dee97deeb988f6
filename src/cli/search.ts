import { existsSync } from "node:fs";
import { resolve } from "node:path";
import { modelSha256, openIndex, type PhotoIndex } from "../collection/index.js";
import { CliError, integer, parse, required, UsageError } from "./args.js";
import { MODEL_HELP, MODEL_OPTIONS, openModel, openTokenizer, type Command, type OpenedModel } from "./common.js";

export const searchCommand: Command = {
  name: "search",
  summary: "the images of a collection closest to a text or an image (cosine similarity)",
  help: `Usage:
  clip-ts search --db PATH (--text "a dog on a beach" | --image FILE) [--top K] [--json] [options]

Ranks the collection made by clip-ts index by cosine similarity to the query, best first, ties by path. The
query is embedded by --model, which must be the model that indexed the collection (checked by its SHA-256).
Output: one line per image, score TAB path; with --json, [{"path", "score"}, …] (path absolute).

Options:
  --db PATH          the collection file
  --text TEXT        a text query
  --image FILE       an image query (PNG or JPEG)
  --top K            how many images (default 10)
  --json             JSON output
  --vocab FILE       the tokenizer for --text (default: a vocab next to --model, else the embedded one)
${MODEL_HELP}`,

  async run(argv, io) {
    const { values } = parse(argv, {
      ...MODEL_OPTIONS, db: { type: "string" }, text: { type: "string" }, image: { type: "string" }, top: { type: "string" },
      json: { type: "boolean" }, vocab: { type: "string" },
    }, false);
    if (values.help) return io.stdout.write(`${this.help}\n`);
    const db = required(values.db, "--db");
    if ((values.text === undefined) === (values.image === undefined)) throw new UsageError("give one of --text or --image");
    const top = integer(values.top, "--top", 1, 100_000) ?? 10;
    const image = values.image === undefined ? undefined : resolve(io.cwd, values.image);
    if (image !== undefined && !existsSync(image)) throw new CliError(`--image: no such file "${values.image}"`);
    let opened: OpenedModel | undefined;
    let index: PhotoIndex;
    try {
      index = openIndex(resolve(io.cwd, db), {
        model: async () => {
          opened = await openModel(io, values, values.text !== undefined ? "text" : "image");
          const tokenizer = values.text !== undefined ? await openTokenizer(io, values.vocab, { file: opened.file, config: opened.model.config }) : undefined;
          return { model: opened.model, sha256: await modelSha256(opened.file), tokenizer };
        },
      });
    } catch (e) {
      throw new CliError((e as Error).message);
    }
    try {
      let hits;
      try {
        hits = await index.search(values.text !== undefined ? { text: values.text } : { image: image! }, { top });
      } catch (e) {
        if (e instanceof CliError || e instanceof UsageError) throw e;
        const m = (e as Error).message;
        throw new CliError(/indexed with another model/.test(m) ? m.replace("the query's model is", `--model "${(opened as OpenedModel | undefined)?.path}" is`)
          .replace(/search with the model that indexed it$/, "pass the --model that indexed it")
          : image !== undefined ? `--image "${values.image}": ${m}` : m);
      }
      if (values.json) io.stdout.write(`[${hits.map((h) => `\n${JSON.stringify({ path: h.path, score: h.score })}`).join(",")}${hits.length ? "\n" : ""}]\n`);
      else io.stdout.write(hits.map((h) => `${h.score.toFixed(6)}\t${h.path}\n`).join(""));
    } finally {
      index.close();
      (opened as OpenedModel | undefined)?.model.dispose();
    }
  },
};
