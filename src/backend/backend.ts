import type { Activation } from "../kernels/activations.js";
import type { Tensor } from "../tensor.js";

/**
 * What the model asks of a backend. Two implementations with the same bits: "ts" runs the readable kernels of
 * src/kernels/, "wasm" their SIMD twins in assembly/. Weights are handed over once, at load, so a backend can
 * repack them (the wasm backend copies them into its memory in GEMM panel order). Both check every call with
 * ./validate.ts, so they refuse the same calls with the same message, and round data that is not float32 (a
 * Float64Array of pixels) to f32 there, before any kernel sees it.
 */
export interface Backend {
  readonly name: string;
  /** w: [N, K] as nn.Linear stores it; b: [N]. "int8": quantized per output channel (src/kernels/linear_int8.ts). */
  prepareLinear(w: Tensor, b: Tensor | null, precision?: Precision): LinearWeights;
  /** w: [O, C, kh, kw]; b: [O]; scale: [O] or null: the weights are f32(w[o]·scale[o]) (with b, a folded batch
   *  norm: src/kernels/batch_norm.ts). */
  prepareConv2d(w: Tensor, b: Tensor | null, stride: number, padding: number, scale?: Float32Array | null): Conv2dWeights;

  /** x: [..., K] → act(x·wᵀ + b + residual): [..., N] */
  linear(x: Tensor, w: LinearWeights, act?: Activation, residual?: Tensor | null): Tensor;
  /** x: [N, C, H, W] → act(conv(x) + b + residual): [N, O, Ho, Wo] */
  conv2d(x: Tensor, w: Conv2dWeights, act?: Activation, residual?: Tensor | null): Tensor;
  /** over the last dimension */
  layerNorm(x: Tensor, weight: Tensor, bias: Tensor, eps?: number): Tensor;
  /** q: [B, Lq, D], k and v: [B, Lk, D] → [B, Lq, D]; keyCount[b·Lq + i] keys visible to query i (null: all). */
  attention(q: Tensor, k: Tensor, v: Tensor, heads: number, keyCount?: Int32Array | null): Tensor;
  /** AvgPool2d(k) on [N, C, H, W] */
  avgPool2d(x: Tensor, k: number): Tensor;
  /** Frees what the backend holds (wasm memory, worker threads). */
  dispose(): void;
  /** A hint before the prepare calls: the weights will take at most about this many bytes (as f32). */
  reserveWeights?(bytes: number): void;
  /** Runs a forward pass whose intermediate results may share memory reused by the next pass: only fn's result
   *  may outlive it (a copy if need be). */
  scoped?(fn: () => Tensor): Tensor;
}

/** How a linear layer computes: float32 sums, or int8 weights and activations with int32 sums. */
export type Precision = "f32" | "int8";
export const PRECISIONS: readonly Precision[] = ["f32", "int8"];

/** How a backend keeps linear weights: as f32, or as the f16 values they are (widened inside the kernel). */
export type WeightPrecision = "fp32" | "fp16";
export const WEIGHT_PRECISIONS: readonly WeightPrecision[] = ["fp32", "fp16"];

export interface LinearWeights {
  readonly N: number;
  readonly K: number;
}

export interface Conv2dWeights {
  readonly O: number;
  readonly C: number;
  readonly kh: number;
  readonly kw: number;
  readonly stride: number;
  readonly padding: number;
}
