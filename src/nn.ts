// The torch.nn plumbing under src/model.ts: weights taken from a state dict by name, and the layers that hand them
// to the backend (nn.Linear, nn.Conv2d with its BatchNorm2d folded in).

import type { Backend, Conv2dWeights, LinearWeights, Precision } from "./backend/backend.js";
import type { Activation } from "./kernels/activations.js";
import { batchNormScale } from "./kernels/batch_norm.js";
import { f16ToF32 } from "./kernels/f16.js";
import { shapeString, storedOf, tensor, type StateDict, type Tensor } from "./tensor.js";

/** A weight that is missing, unexpected or of the wrong shape. */
export class StateDictError extends Error {
  override name = "StateDictError";
}

/** Hands out the tensors of a state dict by name, checking shapes and remembering which were used. */
export class Params {
  private readonly used = new Set<string>();
  constructor(readonly stateDict: StateDict) {}

  get(key: string, shape: number[]): Tensor {
    const t = this.stateDict.get(key);
    if (!t) throw new StateDictError(`missing key "${key}" (expected shape ${shapeString(shape)})`);
    if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
      throw new StateDictError(`key "${key}": expected shape ${shapeString(shape)}, found ${shapeString(t.shape)}`);
    }
    this.used.add(key);
    // a stored tensor as it is: its data is widened only if read (the wasm backend reads the stored bytes instead)
    return storedOf(t) || t instanceof HalfTensor ? t : { data: t.data, shape: t.shape };
  }

  /** The shape of a tensor the model is about to get (widths that the config leaves to the weights). */
  shapeOf(key: string, rank: number): number[] {
    const t = this.stateDict.get(key);
    if (!t) throw new StateDictError(`missing key "${key}"`);
    if (t.shape.length !== rank) throw new StateDictError(`key "${key}": expected ${rank} dimensions, found ${shapeString(t.shape)}`);
    return t.shape;
  }

  /** As get, for a tensor the model keeps in JavaScript after loading: a copy, since a state dict's tensors may be
   *  views of the whole checkpoint file, which would otherwise stay in memory for as long as the model. */
  own(key: string, shape: number[]): Tensor {
    const t = this.get(key, shape);
    const stored = storedOf(t);
    // widened from the stored bytes into an array of its own (a view of f32 bytes in memory is copied)
    if (stored) return { data: stored.widen(true), shape: t.shape };
    return { data: t.data.slice(), shape: t.shape };
  }

  /** As own, for a table read a row at a time (the token embedding): kept as f16 if stored so, half the memory;
   *  its values are the same (widening is exact). */
  ownTable(key: string, shape: number[]): Tensor {
    const t = this.get(key, shape);
    if (t instanceof HalfTensor) return t; // read ahead for this model (see readTablesAhead)
    const stored = storedOf(t);
    if (stored?.dtype !== "F16") return this.own(key, shape);
    const bits = new Uint16Array(stored.byteLength / 2);
    stored.copyTo(new Uint8Array(bits.buffer));
    return new HalfTensor(t.shape, bits);
  }

  /** Keys the reference ignores too: buffers it rebuilds itself or never reads. */
  static readonly ignored = /(^|\.)num_batches_tracked$|^(input_resolution|context_length|vocab_size)$/;

  unexpected(): string[] {
    return [...this.stateDict.keys()].filter((k) => !this.used.has(k) && !Params.ignored.test(k));
  }
}

/** A tensor kept as binary16 bits; data widens all of it (a new array each time), row() one row. */
export class HalfTensor implements Tensor {
  constructor(readonly shape: number[], readonly bits: Uint16Array) {}
  get data(): Float32Array {
    return Float32Array.from(this.bits, f16ToF32);
  }
  /** Element i of the flattened tensor, widened. */
  at(i: number): number {
    return f16ToF32(this.bits[i]!);
  }
}

/** Called with each module's output in forward order (the names of the reference's state dict / forward hooks). */
export type ForwardHook = (name: string, output: Tensor) => void;

/** nn.Linear, prepared for the backend. */
export class Linear {
  readonly weights: LinearWeights;
  constructor(readonly backend: Backend, weight: Tensor, bias: Tensor | null, precision: Precision = "f32") {
    this.weights = precision === "f32" ? backend.prepareLinear(weight, bias) : backend.prepareLinear(weight, bias, precision);
  }
  static load(backend: Backend, p: Params, prefix: string, inFeatures: number, outFeatures: number, precision: Precision = "f32"): Linear {
    return new Linear(backend, p.get(`${prefix}.weight`, [outFeatures, inFeatures]), p.get(`${prefix}.bias`, [outFeatures]), precision);
  }
  /** act(x·Wᵀ + b + residual): a residual add is done in the same kernel. */
  forward(x: Tensor, act: Activation = "none", residual: Tensor | null = null): Tensor {
    return this.backend.linear(x, this.weights, act, residual);
  }
}

/** A [in, out] projection matrix applied as x @ proj: a bias-free linear whose weight is its transpose. */
export function projection(backend: Backend, proj: Tensor): Linear {
  const [K, N] = proj.shape;
  const wT = tensor([N, K]);
  for (let k = 0; k < K; k++) for (let n = 0; n < N; n++) wT.data[n * K + k] = proj.data[k * N + n];
  return new Linear(backend, wT, null);
}

/** nn.Conv2d's keywords, for the bias-free square convolutions CLIP has. */
export interface Conv2dOptions {
  inChannels: number;
  outChannels: number;
  kernelSize: number;
  stride?: number; // 1
  padding?: number; // 0
  /** Every convolution of CLIP is bias-free; the folded BatchNorm2d, if any, gives the bias. */
  bias: false;
  /** The prefix of the nn.BatchNorm2d that follows, folded into the weights at load (eval mode). */
  bn?: string;
}

/** nn.Conv2d (with the nn.BatchNorm2d that follows it folded in when `bn` is given), prepared for the backend. */
export class Conv2d {
  readonly weights: Conv2dWeights;
  constructor(readonly backend: Backend, p: Params, readonly prefix: string, options: Conv2dOptions) {
    const { inChannels, outChannels: outC, kernelSize: k, stride = 1, padding = 0, bn } = options;
    const w = p.get(`${prefix}.weight`, [outC, inChannels, k, k]);
    let bias: Tensor | null = null;
    let scale: Float32Array | null = null;
    if (bn) {
      const folded = batchNormScale(
        outC, p.get(`${bn}.weight`, [outC]).data, p.get(`${bn}.bias`, [outC]).data,
        p.get(`${bn}.running_mean`, [outC]).data, p.get(`${bn}.running_var`, [outC]).data,
      );
      scale = folded.scale;
      bias = { data: folded.bias, shape: [outC] };
    }
    // the weights as given (an fp16 file's stay f16 where the backend keeps them so); the backend multiplies by scale
    this.weights = backend.prepareConv2d(w, bias, stride, padding, scale);
  }
  /** act(conv(x) + b + residual): a residual add is done in the same kernel. */
  forward(x: Tensor, act: Activation = "none", residual: Tensor | null = null): Tensor {
    return this.backend.conv2d(x, this.weights, act, residual);
  }
}

/** x[arange(N), index] for x: [N, L, D] → [N, D] (or [N, 1, D]). */
export function rows(x: Tensor, index: Int32Array, keepDim = false): Tensor {
  const [N, L, D] = x.shape;
  const y = tensor(keepDim ? [N, 1, D] : [N, D]);
  for (let n = 0; n < N; n++) y.data.set(x.data.subarray((n * L + index[n]) * D, (n * L + index[n] + 1) * D), n * D);
  return y;
}

/** nn.Sequential: each module's output goes to the hook under the module's name, then the sequence's under its own. */
export class Sequential<M extends { readonly prefix: string; forward(x: Tensor): Tensor }> {
  constructor(readonly prefix: string, readonly modules: readonly M[]) {}
  forward(x: Tensor, hook?: ForwardHook): Tensor {
    for (const m of this.modules) {
      x = m.forward(x);
      hook?.(m.prefix, x);
    }
    hook?.(this.prefix, x);
    return x;
  }
}
