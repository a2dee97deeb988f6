// The checks every Backend makes before it computes, shared so that the ts and wasm backends refuse the same calls
// with the same message. Each returns the tensors as float32: data of another type (a Float64Array of pixels, a
// plain array) is rounded to f32 here, once, since the TypeScript kernels would otherwise multiply the unrounded
// doubles while wasm memory holds their f32 roundings.
import type { Activation } from "../kernels/activations.js";
import { conv2dOutputSize } from "../kernels/conv2d.js";
import { numel, shapeString, storedOf, type Tensor } from "../tensor.js";
import { PRECISIONS, type Conv2dWeights, type LinearWeights, type Precision } from "./backend.js";

export type F32Tensor = Tensor;

const ACTIVATIONS: readonly string[] = ["none", "relu", "quickgelu", "gelu"];

/** The shape is made of non-negative integers and the data fills it; the data as a Float32Array. */
export function checkTensor(what: string, t: Tensor | null | undefined): Tensor {
  if (!t || typeof t !== "object" || !Array.isArray(t.shape) || t.data == null || typeof t.data.length !== "number") {
    throw new TypeError(`${what}: not a tensor ({ data, shape })`);
  }
  for (const d of t.shape) {
    if (!Number.isInteger(d) || d < 0) throw new RangeError(`${what}: shape ${shapeString(t.shape)} is not made of integers ≥ 0`);
  }
  if (t.data.length !== numel(t.shape)) throw new RangeError(`${what}: ${t.data.length} values for shape ${shapeString(t.shape)}`);
  return t.data instanceof Float32Array ? t : { shape: t.shape, data: Float32Array.from(t.data as ArrayLike<number>) };
}

function checkAct(op: string, act: Activation): void {
  if (!ACTIVATIONS.includes(act)) throw new RangeError(`${op}: unknown activation ${JSON.stringify(act)}`);
}

function checkResidual(op: string, r: Tensor | null | undefined, shape: number[]): Tensor | null {
  if (r == null) return null;
  const t = checkTensor(`${op}: residual`, r);
  if (shapeString(t.shape) !== shapeString(shape)) {
    throw new RangeError(`${op}: residual ${shapeString(t.shape)} does not match the output ${shapeString(shape)}`);
  }
  return t;
}

/** As checkTensor, for a weight: one with stored bytes (StoredTensor) is checked without widening its data. */
function checkWeight(what: string, t: Tensor): Tensor {
  const stored = t && typeof t === "object" ? storedOf(t) : null;
  if (!stored) return checkTensor(what, t);
  for (const d of t.shape) {
    if (!Number.isInteger(d) || d < 0) throw new RangeError(`${what}: shape ${shapeString(t.shape)} is not made of integers ≥ 0`);
  }
  const size = stored.dtype === "F16" ? 2 : 4;
  if (stored.byteLength !== numel(t.shape) * size) {
    throw new RangeError(`${what}: ${stored.byteLength} bytes of ${stored.dtype} for shape ${shapeString(t.shape)}`);
  }
  return t;
}

export function checkPrepareLinear(w: Tensor, b: Tensor | null, precision: Precision = "f32"): { w: Tensor; b: Tensor | null } {
  if (!PRECISIONS.includes(precision)) throw new RangeError(`prepareLinear: unknown precision ${JSON.stringify(precision)} (expected "f32" or "int8")`);
  w = checkWeight("prepareLinear: weight", w);
  if (w.shape.length !== 2) throw new RangeError(`prepareLinear: weight must be [N, K], got ${shapeString(w.shape)}`);
  const bb = b == null ? null : checkTensor("prepareLinear: bias", b);
  if (bb && (bb.shape.length !== 1 || bb.shape[0] !== w.shape[0])) {
    throw new RangeError(`prepareLinear: bias ${shapeString(bb.shape)} for ${w.shape[0]} outputs`);
  }
  return { w, b: bb };
}

export function checkPrepareConv2d(
  w: Tensor, b: Tensor | null, stride: number, padding: number, scale: Float32Array | null = null,
): { w: Tensor; b: Tensor | null } {
  w = checkWeight("prepareConv2d: weight", w);
  if (w.shape.length !== 4) throw new RangeError(`prepareConv2d: weight must be [O, C, kh, kw], got ${shapeString(w.shape)}`);
  if (scale !== null && (!(scale instanceof Float32Array) || scale.length !== w.shape[0])) {
    throw new RangeError(`prepareConv2d: scale must be a Float32Array of ${w.shape[0]} values`);
  }
  const bb = b == null ? null : checkTensor("prepareConv2d: bias", b);
  if (bb && (bb.shape.length !== 1 || bb.shape[0] !== w.shape[0])) {
    throw new RangeError(`prepareConv2d: bias ${shapeString(bb.shape)} for ${w.shape[0]} channels`);
  }
  if (!Number.isInteger(stride) || stride < 1 || !Number.isInteger(padding) || padding < 0) {
    throw new RangeError(`prepareConv2d: stride ${stride} / padding ${padding} must be integers ≥ 1 / ≥ 0`);
  }
  return { w, b: bb };
}

/** linear: x [..., K]; returns the inputs as f32, the output shape and M (rows). */
export function checkLinear(x: Tensor, w: LinearWeights, act: Activation, residual: Tensor | null | undefined) {
  x = checkTensor("linear: input", x);
  checkAct("linear", act);
  const K = x.shape[x.shape.length - 1];
  if (x.shape.length < 1 || K !== w.K) throw new RangeError(`linear: input ${shapeString(x.shape)} does not end in ${w.K}`);
  const shape = [...x.shape.slice(0, -1), w.N];
  return { x, residual: checkResidual("linear", residual, shape), shape, M: numel(x.shape.slice(0, -1)) };
}

export function checkConv2d(x: Tensor, w: Conv2dWeights, act: Activation, residual: Tensor | null | undefined) {
  x = checkTensor("conv2d: input", x);
  checkAct("conv2d", act);
  if (x.shape.length !== 4 || x.shape[1] !== w.C) throw new RangeError(`conv2d: input ${shapeString(x.shape)} is not [N, ${w.C}, H, W]`);
  const [N, C, H, W] = x.shape;
  const s = { N, C, H, W, O: w.O, kh: w.kh, kw: w.kw, stride: w.stride, padding: w.padding };
  const [Ho, Wo] = conv2dOutputSize(s);
  if (!(Ho >= 1 && Wo >= 1)) throw new RangeError(`conv2d: input ${shapeString(x.shape)} is smaller than the ${w.kh}×${w.kw} kernel`);
  const shape = [N, w.O, Ho, Wo];
  return { x, residual: checkResidual("conv2d", residual, shape), shape, s };
}

export function checkLayerNorm(x: Tensor, weight: Tensor, bias: Tensor, eps: number) {
  x = checkTensor("layerNorm: input", x);
  weight = checkTensor("layerNorm: weight", weight);
  bias = checkTensor("layerNorm: bias", bias);
  if (x.shape.length < 1) throw new RangeError(`layerNorm: input ${shapeString(x.shape)} has no last dimension`);
  const D = x.shape[x.shape.length - 1];
  if (weight.shape.length !== 1 || weight.shape[0] !== D || bias.shape.length !== 1 || bias.shape[0] !== D) {
    throw new RangeError(`layerNorm: weight ${shapeString(weight.shape)} / bias ${shapeString(bias.shape)} for rows of ${D}`);
  }
  if (typeof eps !== "number" || !(eps >= 0) || eps === Infinity) throw new RangeError(`layerNorm: eps ${eps} must be finite and ≥ 0`);
  return { x, weight, bias, D, rows: D > 0 ? x.data.length / D : 0 };
}

export function checkAttention(q: Tensor, k: Tensor, v: Tensor, heads: number, keyCount: Int32Array | null | undefined) {
  const t = { q, k, v };
  for (const name of ["q", "k", "v"] as const) {
    t[name] = checkTensor(`attention: ${name}`, t[name]);
    if (t[name].shape.length !== 3) throw new RangeError(`attention: ${name} must be [B, L, D], got ${shapeString(t[name].shape)}`);
  }
  const [B, Lq, D] = t.q.shape;
  const Lk = t.k.shape[1];
  if (t.k.shape[0] !== B || t.k.shape[2] !== D || shapeString(t.v.shape) !== shapeString(t.k.shape)) {
    throw new RangeError(`attention: q ${shapeString(t.q.shape)}, k ${shapeString(t.k.shape)}, v ${shapeString(t.v.shape)} do not match`);
  }
  if (!Number.isInteger(heads) || heads < 1 || D % heads !== 0) throw new RangeError(`attention: ${heads} heads do not divide ${D}`);
  // a query with no key to attend to has no softmax (PyTorch: NaN); the model never asks for one
  if (Lk < 1 && B * Lq > 0) throw new RangeError(`attention: no keys (k ${shapeString(t.k.shape)})`);
  if (keyCount != null) {
    if (!(keyCount instanceof Int32Array)) throw new TypeError("attention: keyCount must be an Int32Array");
    if (keyCount.length !== B * Lq) throw new RangeError(`attention: keyCount has ${keyCount.length} entries, expected ${B * Lq}`);
    for (let i = 0; i < keyCount.length; i++) {
      if (!(keyCount[i] >= 1 && keyCount[i] <= Lk)) throw new RangeError(`attention: keyCount[${i}] = ${keyCount[i]} not in [1, ${Lk}]`);
    }
  }
  return { ...t, B, Lq, Lk, D, headDim: D / heads, keyCount: keyCount ?? null };
}

export function checkAvgPool2d(x: Tensor, k: number) {
  x = checkTensor("avgPool2d: input", x);
  if (x.shape.length !== 4) throw new RangeError(`avgPool2d: input must be [N, C, H, W], got ${shapeString(x.shape)}`);
  const [N, C, H, W] = x.shape;
  if (!Number.isInteger(k) || k < 1) throw new RangeError(`avgPool2d: kernel ${k} must be a positive integer`);
  if (k > H || k > W) throw new RangeError(`avgPool2d: kernel ${k} is larger than the ${H}×${W} input`);
  return { x, N, C, H, W, shape: [N, C, Math.floor(H / k), Math.floor(W / k)] };
}
