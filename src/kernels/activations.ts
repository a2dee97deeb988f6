import { expf } from "./exp.js";
import { f } from "./f32.js";

/** The epilogue every producing kernel shares: y = act(acc + bias + residual), in that order. */
export type Activation = "none" | "relu" | "quickgelu" | "gelu";

export function relu(x: number): number {
  return x > 0 ? x : 0; // NaN and −0 give +0, as the SIMD compare-and-mask does
}

/** QuickGELU of the reference: x · sigmoid(1.702 x), with sigmoid(z) = 1 / (1 + exp(−z)). */
export const QUICK_GELU_ALPHA = f(1.702);
export function quickGelu(x: number): number {
  const e = expf(-f(QUICK_GELU_ALPHA * x));
  return f(x * f(1 / f(1 + e)));
}

export function activate(x: number, act: Activation): number {
  return act === "relu" ? relu(x) : act === "quickgelu" ? quickGelu(x) : x;
}
