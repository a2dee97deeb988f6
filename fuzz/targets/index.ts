// Every fuzz target, by name.
import type { FuzzTarget } from "../harness.js";
import { amplifiedTarget } from "./amplified.js";
import { jpegTarget, pngTarget } from "./image.js";
import { npyTarget } from "./npy.js";
import { pickleTarget } from "./pickle.js";
import { safetensorsTarget } from "./safetensors.js";
import { tarTarget } from "./tar.js";
import { tokenizerTarget } from "./tokenizer.js";
import { torchTarget } from "./torch.js";

// Each target has its own input type.
const MAKERS: Record<string, () => FuzzTarget<any>> = {
  safetensors: safetensorsTarget,
  torch: torchTarget,
  pickle: pickleTarget,
  npy: npyTarget,
  png: pngTarget,
  jpeg: jpegTarget,
  tokenizer: tokenizerTarget,
  amplified: amplifiedTarget,
  tar: tarTarget,
};

export const TARGET_NAMES: readonly string[] = Object.keys(MAKERS);

export function makeTarget(name: string): FuzzTarget<unknown> {
  const make = MAKERS[name];
  if (!make) throw new Error(`fuzz: unknown target "${name}" (known: ${TARGET_NAMES.join(", ")})`);
  return make();
}
