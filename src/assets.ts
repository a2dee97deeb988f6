// The files that ship in the package beside the code, named in this one place: paths in Node, URLs in a browser.
// node: modules are imported lazily, so that the browser bundle may include this module.

/** Each file, relative to the package root. */
export const ASSET_FILES = {
  /** The embedded tiny model: the ResNet, the more accurate of the two (weights/README.md). */
  embeddedWeights: "weights/clip-tiny-rn.safetensors",
  embeddedVocab: "weights/vocab.txt.gz",
  /**
   * OpenAI's BPE vocab, `bpe_simple_vocab_16e6.txt.gz` from openai/CLIP (MIT, notice in weights/openai/LICENSE): the
   * tokenizer of every OpenAI checkpoint, 49408 tokens. In weights/openai/ so that vocabNextTo() never finds it
   * beside a tiny model.
   */
  openaiVocab: "weights/openai/bpe_simple_vocab_16e6.txt.gz",
} as const;

export type Asset = keyof typeof ASSET_FILES;

/** This module is src/assets.ts in the repository, dist/src/assets.js once built, or inside dist/browser/clip-ts.js. */
export const PACKAGE_ROOT: URL = new URL(new URL(import.meta.url).pathname.endsWith(".ts") ? "../" : "../../", import.meta.url);

/** Where an asset is: in a browser, its URL relative to the bundle. */
export function assetUrl(asset: Asset): URL {
  return new URL(ASSET_FILES[asset], PACKAGE_ROOT);
}

/** An asset's path (Node), or undefined if this installation lacks it. */
export async function assetPath(asset: Asset): Promise<string | undefined> {
  const { existsSync } = await import("node:fs");
  const { fileURLToPath } = await import("node:url");
  const path = fileURLToPath(assetUrl(asset));
  return existsSync(path) ? path : undefined;
}

/** OpenAI's vocab (Node): see ASSET_FILES.openaiVocab. */
export async function openaiVocabPath(): Promise<string> {
  const path = await assetPath("openaiVocab");
  if (path === undefined) throw new Error(`OpenAI's vocab (${ASSET_FILES.openaiVocab}) is missing from this installation`);
  return path;
}
