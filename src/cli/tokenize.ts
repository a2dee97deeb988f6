import { integer, parse } from "./args.js";
import { DEFAULT_VOCAB, openTokenizer, usageIfEmpty, wrap, writeOutput, type Command } from "./common.js";
import { writeNpy } from "../npy.js";

export const tokenize: Command = {
  name: "tokenize",
  summary: "token ids of texts, as clip.tokenize",
  help: `Usage:
  clip-ts tokenize <text>... [--vocab FILE] [--context-length N] [--truncate] [--out t.npy]

Tokenizes as the reference's clip.tokenize: <|startoftext|>, the BPE tokens, <|endoftext|>, zero padding to
the context length. Prints one JSON row per text (a JSON array of rows), or writes an int32 .npy [N, N_ctx].

Options:
  --vocab FILE          OpenAI merges (.txt/.txt.gz), tokenizer.json, or a folder with vocab.json + merges.txt
                        (default: the embedded ${DEFAULT_VOCAB})
  --context-length N    row length (default 77)
  --truncate            cut long texts (ending them with <|endoftext|>) instead of failing
  --out FILE            write int32 .npy token ids`,

  async run(argv, io) {
    const { values, positionals } = parse(argv, {
      vocab: { type: "string" }, "context-length": { type: "string" }, truncate: { type: "boolean" }, out: { type: "string" },
    }, true);
    if (values.help) return io.stdout.write(`${this.help}\n`);
    usageIfEmpty(positionals, "texts to tokenize");
    const contextLength = integer(values["context-length"], "--context-length", 2, 1 << 16) ?? 77;
    const tokenizer = await openTokenizer(io, values.vocab);
    const ids = wrap("tokenize", () => tokenizer.tokenize(positionals, { contextLength, truncate: values.truncate ?? false }));
    if (values.out !== undefined) return writeOutput(io, values.out, writeNpy(ids));
    const L = ids.shape[1];
    const rows = Array.from({ length: ids.shape[0] }, (_, i) => JSON.stringify(Array.from(ids.data.subarray(i * L, (i + 1) * L))));
    io.stdout.write(`[\n${rows.join(",\n")}\n]\n`);
  },
};
