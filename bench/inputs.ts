// Seeded random weights and inputs of full size, for when tools/onnx/export_onnx.py has not been run.

import type { StateDict, Tensor } from "../src/tensor.js";
import type { ModelSpec } from "./models.js";

/** mulberry32: a tiny seeded generator, uniform in [0, 1). */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function fill(n: number, next: () => number, lo: number, hi: number): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = lo + (hi - lo) * next();
  return a;
}

/**
 * Every entry of the reference state dict with values of a plausible scale (uniform, variance ≈ 1/fan-in for
 * weights, so activations neither vanish into subnormals nor overflow): the timing does not depend on the values,
 * but subnormals would slow every engine down.
 */
export function randomStateDict(spec: ModelSpec, seed = 1): StateDict {
  const next = rng(seed);
  const sd: StateDict = new Map();
  for (const [key, shape, dtype] of spec.stateDict) {
    if (dtype !== "float32") continue; // num_batches_tracked: the model ignores it
    const n = shape.reduce((a, b) => a * b, 1);
    let data: Float32Array;
    if (key === "logit_scale") data = Float32Array.of(Math.log(1 / 0.07));
    else if (key.endsWith("running_var")) data = fill(n, next, 0.5, 1.5);
    else if (key.endsWith("running_mean") || key.endsWith("bias")) data = fill(n, next, -0.1, 0.1);
    else if (shape.length === 1 && key.endsWith("weight")) data = fill(n, next, 0.5, 1.5); // norm scales
    else if (/(embedding|class_embedding)/.test(key)) data = fill(n, next, -0.03, 0.03);
    else {
      // [in, out] projections (x @ proj) fan in over dim 0; nn.Linear / nn.Conv2d weights over the rest
      const fanIn = key === "text_projection" || key === "visual.proj" ? shape[0] : n / shape[0];
      const a = Math.sqrt(3 / fanIn);
      data = fill(n, next, -a, a);
    }
    sd.set(key, { data, shape, dtype: "F32" });
  }
  return sd;
}

/** [N, 3, R, R] pixels in the range the reference's Normalize produces. */
export function randomImages(n: number, resolution: number, seed = 7): Tensor {
  const shape = [n, 3, resolution, resolution];
  return { data: fill(n * 3 * resolution * resolution, rng(seed), -1.8, 2.1), shape };
}

const SOT = 49406, EOT = 49407;
/** "a photo of a dog." as the reference tokenizer encodes it, between the start and end tokens. */
const DOG_PROMPT = [SOT, 320, 1125, 539, 320, 1929, 269, EOT];

/** "short": the 8-token prompt, zero padded to the context; "full": all positions used, end token last. */
export type TextKind = "short" | "full";

export function tokenRows(kind: TextKind, n: number, context: number, seed = 11): BigInt64Array {
  const ids = new BigInt64Array(n * context);
  const next = rng(seed);
  for (let r = 0; r < n; r++) {
    const row = ids.subarray(r * context, (r + 1) * context);
    if (kind === "short") {
      DOG_PROMPT.forEach((id, i) => (row[i] = BigInt(id)));
    } else {
      row[0] = BigInt(SOT);
      for (let t = 1; t < context - 1; t++) row[t] = BigInt(256 + Math.floor(next() * 40000)); // ordinary BPE ids
      row[context - 1] = BigInt(EOT);
    }
  }
  return ids;
}
