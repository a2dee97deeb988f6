// One entry point for every supported checkpoint format, chosen from the bytes themselves.
import type { StateDict } from "../tensor.js";
import { LIMIT_NAMES, validateLimits } from "./dtypes.js";
import { WeightsError } from "./errors.js";
import { normaliseKeys } from "./keys.js";
import { parseSafetensors, safetensorsHeaderLength } from "./safetensors.js";
import { loadTorchZip, type TorchLoadOptions } from "./torch.js";
import { isZip, ZipArchive } from "./zip.js";

export { WeightsError } from "./errors.js";
export { hfToOpenAI, isHuggingFaceClip, normaliseKeys } from "./keys.js";
export {
  DEFAULT_MAX_HEADER_BYTES,
  DEFAULT_MAX_PICKLE_BYTES,
  DEFAULT_MAX_TENSOR_BYTES,
  DEFAULT_MAX_TENSORS,
  DEFAULT_MAX_TOTAL_BYTES,
  LIMIT_NAMES,
  validateLimits,
  type WeightsLimits,
} from "./dtypes.js";
export { parseSafetensors, writeSafetensors } from "./safetensors.js";
export { loadTorchZip, type TorchArchiveKind, type TorchLoadOptions } from "./torch.js";
export { ZipArchive, type ZipEntry } from "./zip.js";

export type WeightsFormat = "safetensors" | "torch-zip" | "torchscript";

export interface LoadStateDictOptions extends TorchLoadOptions {
  /** Keep the file's own parameter names (default false: OpenAI names, see normaliseKeys). */
  rawKeys?: boolean;
}

function isSafetensors(bytes: Uint8Array): boolean {
  // A u64 length whose top bytes are zero, followed by the opening brace of the JSON header.
  return safetensorsHeaderLength(bytes) !== undefined && bytes.length > 8 && bytes[8] === 0x7b;
}

/** Pickle protocol 2+ starts with PROTO; old torch.save wrote a bare pickle stream (or a tar file). */
function isLegacyTorch(bytes: Uint8Array): boolean {
  const pickle = bytes.length >= 2 && bytes[0] === 0x80 && bytes[1]! >= 2 && bytes[1]! <= 5;
  const tar = bytes.length >= 262 && String.fromCharCode(...bytes.subarray(257, 262)) === "ustar";
  return pickle || tar;
}

/** Load a checkpoint from its bytes: safetensors, torch.save zip, or TorchScript (OpenAI's .pt files). */
export function loadStateDictWithFormat(
  bytes: Uint8Array, opts: LoadStateDictOptions = {},
): { format: WeightsFormat; stateDict: StateDict; scriptClass?: string } {
  validateLimits(opts, LIMIT_NAMES);
  let format: WeightsFormat;
  let sd: StateDict;
  let scriptClass: string | undefined;
  if (isZip(bytes)) {
    const r = loadTorchZip(new ZipArchive(bytes), opts);
    format = r.kind;
    sd = r.stateDict;
    scriptClass = r.scriptClass;
  } else if (isSafetensors(bytes)) {
    format = "safetensors";
    sd = parseSafetensors(bytes, opts);
  } else if (isLegacyTorch(bytes)) {
    throw new WeightsError("unsupported legacy torch.save format (pre-1.6 pickle/tar); re-save it with torch.save in a newer torch");
  } else {
    throw new WeightsError("unrecognised weights format (expected safetensors, a torch .pt/.pth zip, or a TorchScript archive)");
  }
  return { format, stateDict: opts.rawKeys ? sd : normaliseKeys(sd), scriptClass };
}

export function loadStateDict(bytes: Uint8Array, opts: LoadStateDictOptions = {}): StateDict {
  return loadStateDictWithFormat(bytes, opts).stateDict;
}
