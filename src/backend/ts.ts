import { attention } from "../kernels/attention.js";
import type { Activation } from "../kernels/activations.js";
import { conv2d, conv2dOutputSize } from "../kernels/conv2d.js";
import { layerNorm } from "../kernels/layer_norm.js";
import { linear } from "../kernels/linear.js";
import { avgPool2d } from "../kernels/pool.js";
import { shapeString, tensor, type Tensor } from "../tensor.js";
import type { Backend, Conv2dWeights, LinearWeights } from "./backend.js";

interface TsLinear extends LinearWeights { w: Float32Array; b: Float32Array | null }
interface TsConv extends Conv2dWeights { w: Float32Array; b: Float32Array | null }

/** The readable backend: each op allocates its output and runs the plain loop of src/kernels/. */
export class TsBackend implements Backend {
  readonly name = "ts";

  prepareLinear(w: Tensor, b: Tensor | null): TsLinear {
    const [N, K] = w.shape;
    return { N, K, w: w.data, b: b ? b.data : null };
  }

  prepareConv2d(w: Tensor, b: Tensor | null, stride: number, padding: number): TsConv {
    const [O, C, kh, kw] = w.shape;
    return { O, C, kh, kw, stride, padding, w: w.data, b: b ? b.data : null };
  }

  linear(x: Tensor, w: LinearWeights, act: Activation = "none", residual: Tensor | null = null): Tensor {
    const p = w as TsLinear;
    const K = x.shape[x.shape.length - 1];
    if (K !== p.K) throw new Error(`linear: input ${shapeString(x.shape)} does not end in ${p.K}`);
    const M = x.data.length / K;
    const y = tensor([...x.shape.slice(0, -1), p.N]);
    linear(x.data, p.w, p.b, y.data, M, K, p.N, act, residual ? residual.data : null);
    return y;
  }

  conv2d(x: Tensor, w: Conv2dWeights, act: Activation = "none", residual: Tensor | null = null): Tensor {
    const p = w as TsConv;
    const [N, C, H, W] = x.shape;
    if (C !== p.C) throw new Error(`conv2d: input ${shapeString(x.shape)} has ${C} channels, weights expect ${p.C}`);
    const s = { N, C, H, W, O: p.O, kh: p.kh, kw: p.kw, stride: p.stride, padding: p.padding };
    const [Ho, Wo] = conv2dOutputSize(s);
    const y = tensor([N, p.O, Ho, Wo]);
    conv2d(x.data, p.w, p.b, y.data, s, act, residual ? residual.data : null);
    return y;
  }

  layerNorm(x: Tensor, weight: Tensor, bias: Tensor, eps = 1e-5): Tensor {
    const D = x.shape[x.shape.length - 1];
    const y = tensor([...x.shape]);
    layerNorm(x.data, weight.data, bias.data, y.data, x.data.length / D, D, eps);
    return y;
  }

  attention(q: Tensor, k: Tensor, v: Tensor, heads: number, keyCount: Int32Array | null = null): Tensor {
    const [B, Lq, D] = q.shape;
    const out = tensor([B, Lq, D]);
    attention(q.data, k.data, v.data, out.data, { B, Lq, Lk: k.shape[1], heads, headDim: D / heads }, keyCount);
    return out;
  }

  avgPool2d(x: Tensor, k: number): Tensor {
    const [N, C, H, W] = x.shape;
    const y = tensor([N, C, Math.floor(H / k), Math.floor(W / k)]);
    avgPool2d(x.data, y.data, N, C, H, W, k);
    return y;
  }

  dispose(): void {}
}
