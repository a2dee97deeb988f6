// The only Node-specific part of the tokenizer: reading files. Imported dynamically, so browser builds never load it.

import { readFile, stat } from "node:fs/promises";
import { join } from "node:path";

/** A file's bytes, or for a directory, the bytes of the named files inside it that exist (missing ones are absent). */
export async function readPath(
  path: string,
  namesInDirectory: readonly string[],
): Promise<{ bytes: Uint8Array } | { files: Map<string, Uint8Array> }> {
  if (!(await stat(path)).isDirectory()) return { bytes: await readFile(path) };
  const files = new Map<string, Uint8Array>();
  for (const name of namesInDirectory) {
    try {
      files.set(name, await readFile(join(path, name)));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error;
    }
  }
  return { files };
}
