// Files that ship in the package beside the code (Node). node: modules are imported lazily, as in clip.ts, so that a
// browser bundle may include this module.

/** Where OpenAI's file sits in the package; weights/openai/ so that vocabNextTo() never finds it beside a tiny model. */
const OPENAI_VOCAB = "weights/openai/bpe_simple_vocab_16e6.txt.gz";

/**
 * OpenAI's BPE vocab, `bpe_simple_vocab_16e6.txt.gz` from openai/CLIP (MIT, notice in weights/openai/LICENSE): the
 * tokenizer of every OpenAI checkpoint, 49408 tokens.
 */
export async function openaiVocabPath(): Promise<string> {
  const { existsSync } = await import("node:fs");
  const { fileURLToPath } = await import("node:url");
  // src/assets.ts in the repository, dist/src/assets.js once built
  for (const up of ["../", "../../"]) {
    const path = fileURLToPath(new URL(up + OPENAI_VOCAB, import.meta.url));
    if (existsSync(path)) return path;
  }
  throw new Error(`OpenAI's vocab (${OPENAI_VOCAB}) is missing from this installation`);
}
