/** A tokenizer file (merges, vocab.json, tokenizer.json) that cannot be used: the message names the line or field. */
export class TokenizerFormatError extends Error {
  override readonly name = "TokenizerFormatError";
}

/** A text whose tokens (with start and end) do not fit the context length, when truncation is off. */
export class ContextLengthError extends Error {
  override readonly name = "ContextLengthError";
}
