import { erf } from "./erf.js";
import { expf } from "./exp.js";
import { f } from "./f32.js";

/** The epilogue every producing kernel shares: y = act(acc + bias + residual), in that order. */
export type Activation = "none" | "relu" | "quickgelu" | "gelu";

export function relu(x: number): number {
  return x < 0 ? 0 : x; // as torch.relu: NaN stays NaN and −0 stays −0
}

/** QuickGELU of the reference: x · sigmoid(1.702 x), with sigmoid(z) = 1 / (1 + exp(−z)). */
export const QUICK_GELU_ALPHA = f(1.702);
export function quickGelu(x: number): number {
  const e = expf(-f(QUICK_GELU_ALPHA * x));
  return f(x * f(1 / f(1 + e)));
}

/** Exact GELU, torch.nn.GELU(): x·Φ(x) = x·0.5·(1 + erf(x/√2)). */
export const SQRT1_2 = f(Math.SQRT1_2);
export function gelu(x: number): number {
  // (x·0.5)·(1 + erf(x·f32(1/√2))), left to right as ATen's own CPU GELU kernel writes it. GELU(−Inf) is NaN, as
  // there (−Inf·0); torch 1.13's float path through oneDNN gives +0 for −0 where this gives −0.
  return f(f(x * 0.5) * f(1 + erf(f(x * SQRT1_2))));
}

export function activate(x: number, act: Activation): number {
  return act === "relu" ? relu(x) : act === "quickgelu" ? quickGelu(x) : act === "gelu" ? gelu(x) : x;
}
