// Node: a weights file opened without reading it whole (safetensors, or a torch zip: torch.save and TorchScript, as
// OpenAI's .pt files). Its tensors read their own byte ranges when asked, straight into the memory that keeps them
// (the wasm backend's), so a load holds no copy of the file.
import { closeSync, fstatSync, openSync, readSync } from "node:fs";
import { open } from "node:fs/promises";
import { WeightsError } from "./errors.js";
import { normaliseKeys } from "./keys.js";
import type { LoadStateDictOptions, WeightsFormat } from "./index.js";
import { openSafetensors, safetensorsHeaderLength } from "./safetensors.js";
import { LIMIT_NAMES, validateLimits } from "./dtypes.js";
import { loadTorchZip } from "./torch.js";
import { isZip, ZipArchive } from "./zip.js";
import type { StateDict } from "../tensor.js";

/** The state dict of a safetensors or torch zip file, its tensors read from the file on demand; null for another
 *  format (which the caller reads whole, for its own error). */
export function openWeightsFile(
  path: string, opts: LoadStateDictOptions = {},
): { format: WeightsFormat; stateDict: StateDict; scriptClass?: string } | null {
  const fd = openSync(path, "r");
  let size: number, first: Uint8Array;
  try {
    size = fstatSync(fd).size;
    first = new Uint8Array(Math.min(9, size));
    readFully(fd, first, 0, path);
  } finally {
    closeSync(fd);
  }
  const { read, readAsync } = fileReader(path, size);
  const keys = (sd: StateDict) => (opts.rawKeys ? sd : normaliseKeys(sd));
  if (safetensorsHeaderLength(first) !== undefined && first.length === 9 && first[8] === 0x7b) {
    return { format: "safetensors", stateDict: keys(openSafetensors(read, size, opts, readAsync)) };
  }
  if (!isZip(first)) return null;
  validateLimits(opts, LIMIT_NAMES);
  const bytes = (position: number, length: number) => {
    const b = new Uint8Array(length);
    read(b, position);
    return b;
  };
  const r = loadTorchZip(new ZipArchive({ size, bytes, reader: { read, readAsync } }), opts);
  return { format: r.kind, stateDict: keys(r.stateDict), scriptClass: r.scriptClass };
}

/** Reads of a file's byte ranges, each opening it again: nothing stays open, and a file changed since it was opened
 *  (by its size) is refused. */
function fileReader(path: string, size: number) {
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
  return { read, readAsync };
}

function readFully(fd: number, dst: Uint8Array, position: number, path: string): void {
  for (let done = 0; done < dst.length;) {
    const n = readSync(fd, dst, done, Math.min(dst.length - done, 1 << 30), position + done);
    if (n === 0) throw new WeightsError(`"${path}" ended at byte ${position + done}, inside a tensor its header lists`);
    done += n;
  }
}
