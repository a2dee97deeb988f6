// Node-only convenience: the rest of src/image never touches the file system, so it runs in browsers.
import { readFile } from "node:fs/promises";
import { preprocess, type PreprocessOptions, type PreprocessResult } from "./transform.js";

/** Reads a PNG/JPEG file and runs CLIP's preprocessing on it. */
export async function preprocessFile(path: string, options?: PreprocessOptions): Promise<PreprocessResult> {
  const buf = await readFile(path);
  return preprocess(new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength), options);
}
