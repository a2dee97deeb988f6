// Node: a safetensors file opened without reading it whole. Its tensors read their own byte ranges when asked,
// straight into the memory that keeps them (the wasm backend's), so a load holds no copy of the file.
import { closeSync, fstatSync, openSync, readSync } from "node:fs";
import { open } from "node:fs/promises";
import { WeightsError } from "./errors.js";
import { normaliseKeys } from "./keys.js";
import type { LoadStateDictOptions, WeightsFormat } from "./index.js";
import { openSafetensors, safetensorsHeaderLength } from "./safetensors.js";
import type { StateDict } from "../tensor.js";

/** The state dict of a safetensors file, its tensors read from the file on demand; null for another format. */
export function openSafetensorsFile(path: string, opts: LoadStateDictOptions = {}): { format: WeightsFormat; stateDict: StateDict } | null {
  const fd = openSync(path, "r");
  let size: number;
  try {
    size = fstatSync(fd).size;
    const first = new Uint8Array(Math.min(9, size));
    readFully(fd, first, 0, path);
    if (safetensorsHeaderLength(first) === undefined || first.length < 9 || first[8] !== 0x7b) return null;
  } finally {
    closeSync(fd);
  }
  // opened again for each read: nothing stays open, and a file changed since its header was read is refused
  const read = (dst: Uint8Array, position: number) => {
    const f = openSync(path, "r");
    try {
      if (fstatSync(f).size !== size) throw new WeightsError(`"${path}" changed size while it was being loaded`);
      readFully(f, dst, position, path);
    } finally {
      closeSync(f);
    }
  };
  const readAsync = async (dst: Uint8Array, position: number) => {
    const f = await open(path, "r");
    try {
      if ((await f.stat()).size !== size) throw new WeightsError(`"${path}" changed size while it was being loaded`);
      for (let done = 0; done < dst.length;) {
        const { bytesRead } = await f.read(dst, done, Math.min(dst.length - done, 1 << 30), position + done);
        if (bytesRead === 0) throw new WeightsError(`"${path}" ended at byte ${position + done}, inside a tensor its header lists`);
        done += bytesRead;
      }
    } finally {
      await f.close();
    }
  };
  const sd = openSafetensors(read, size, opts, readAsync);
  return { format: "safetensors", stateDict: opts.rawKeys ? sd : normaliseKeys(sd) };
}

function readFully(fd: number, dst: Uint8Array, position: number, path: string): void {
  for (let done = 0; done < dst.length;) {
    const n = readSync(fd, dst, done, Math.min(dst.length - done, 1 << 30), position + done);
    if (n === 0) throw new WeightsError(`"${path}" ended at byte ${position + done}, inside a tensor its header lists`);
    done += n;
  }
}
