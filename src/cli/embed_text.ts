import { DEFAULT_MAX_BATCH, normalize, type TokenTensor } from "../model.js";
import { integer, parse, UsageError } from "./args.js";
import {
  batched, f32Json, MODEL_HELP, MODEL_OPTIONS, openModel, openTokenizer, readTokens, rowsOf, wrap, writeTensor,
  type Command,
} from "./common.js";

export const embedText: Command = {
  name: "embed-text",
  summary: "text features (encode_text) of .npy token ids or of texts",
  help: `Usage:
  clip-ts embed-text --tokens t.npy [--out y.npy] [options]
  clip-ts embed-text <text>... [--vocab FILE] [--truncate] [--out y.npy] [--normalize] [options]

Runs encode_text: token ids (int32 or int64 .npy of shape [N, context_length]) or texts (tokenized as the
reference's clip.tokenize) → text features [N, embed_dim] (float32).

Options:
  --tokens FILE      int32/int64 .npy token ids
  --vocab FILE       the tokenizer for texts (default: a vocab next to --model, else the embedded one)
  --truncate         cut texts longer than the context instead of failing
  --out FILE         write a float32 .npy [N, embed_dim] (default: JSON on stdout)
  --normalize        L2-normalise each row
  --batch-size N     texts per forward pass (default 32)
${MODEL_HELP}`,

  async run(argv, io) {
    const { values, positionals } = parse(argv, {
      ...MODEL_OPTIONS, tokens: { type: "string" }, vocab: { type: "string" }, truncate: { type: "boolean" },
      out: { type: "string" }, normalize: { type: "boolean" }, "batch-size": { type: "string" },
    }, true);
    if (values.help) return io.stdout.write(`${this.help}\n`);
    if (values.tokens !== undefined && positionals.length) throw new UsageError("give either --tokens or texts, not both");
    if (values.tokens === undefined && !positionals.length) throw new UsageError("missing --tokens or texts");
    if (values.tokens !== undefined && (values.vocab !== undefined || values.truncate)) throw new UsageError("--vocab and --truncate apply to texts, not to --tokens");
    const batch = integer(values["batch-size"], "--batch-size", 1, DEFAULT_MAX_BATCH) ?? 32;

    const fromFile = values.tokens !== undefined ? readTokens(io, values.tokens) : undefined;
    const opened = await openModel(io, values, "text");
    const { model } = opened;
    try {
      const tokenizer = fromFile ? undefined : await openTokenizer(io, values.vocab, { file: opened.file, config: model.config });
      const tokens: TokenTensor = fromFile ?? wrap("tokenize", () =>
        tokenizer!.tokenize(positionals, { contextLength: model.config.contextLength, truncate: values.truncate ?? false }));
      const what = fromFile ? `--tokens "${values.tokens}"` : "texts";
      let features = wrap(what, () => batched(io, "encoding texts", tokens.shape[0], Math.min(batch, model.maxBatch), (s, e) => model.encodeText(rowsOf(tokens, s, e))));
      if (values.normalize) features = normalize(features);
      if (values.out !== undefined) return writeTensor(io, values.out, features);
      const E = features.shape[1];
      const row = (i: number) => f32Json(features.data.subarray(i * E, (i + 1) * E));
      const items = fromFile
        ? Array.from({ length: features.shape[0] }, (_, i) => row(i))
        : positionals.map((t, i) => `{"text":${JSON.stringify(t)},"embedding":${row(i)}}`);
      io.stdout.write(`[\n${items.join(",\n")}\n]\n`);
    } finally {
      model.dispose();
    }
  },
};
