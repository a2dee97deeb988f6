import { attention } from "../kernels/attention.js";
import type { Activation } from "../kernels/activations.js";
import { conv2d } from "../kernels/conv2d.js";
import { layerNorm } from "../kernels/layer_norm.js";
import { linear } from "../kernels/linear.js";
import { linearF16 } from "../kernels/linear_f16.js";
import { avgPool2d } from "../kernels/pool.js";
import { tensor, type Tensor } from "../tensor.js";
import type { Backend, Conv2dWeights, LinearWeights, WeightPrecision } from "./backend.js";
import { writeHalfBits } from "./half.js";
import {
  checkAttention, checkAvgPool2d, checkConv2d, checkLayerNorm, checkLinear, checkPrepareConv2d, checkPrepareLinear,
} from "./validate.js";

interface TsLinear extends LinearWeights { w: Float32Array | null; half: Uint16Array | null; b: Float32Array | null }
interface TsConv extends Conv2dWeights { w: Float32Array; b: Float32Array | null }

/** The readable backend: each op allocates its output and runs the plain loop of src/kernels/. */
export class TsBackend implements Backend {
  readonly name = "ts";
  /** How linear weights are kept (conv weights are f32 either way). */
  readonly weights: WeightPrecision;

  constructor(options: { weights?: WeightPrecision } = {}) {
    this.weights = options.weights ?? "fp32";
  }

  prepareLinear(weight: Tensor, bias: Tensor | null): TsLinear {
    const { w, b } = checkPrepareLinear(weight, bias);
    const [N, K] = w.shape;
    if (this.weights === "fp16") {
      const half = new Uint16Array(N * K);
      writeHalfBits("prepareLinear: weight", w, new Uint8Array(half.buffer));
      return { N, K, w: null, half, b: b ? b.data : null };
    }
    return { N, K, w: w.data, half: null, b: b ? b.data : null };
  }

  prepareConv2d(weight: Tensor, bias: Tensor | null, stride: number, padding: number): TsConv {
    const { w, b } = checkPrepareConv2d(weight, bias, stride, padding);
    const [O, C, kh, kw] = w.shape;
    return { O, C, kh, kw, stride, padding, w: w.data, b: b ? b.data : null };
  }

  linear(input: Tensor, w: LinearWeights, act: Activation = "none", res: Tensor | null = null): Tensor {
    const p = w as TsLinear;
    const { x, residual, shape, M } = checkLinear(input, p, act, res);
    const y = tensor(shape);
    if (p.half) linearF16(x.data, p.half, p.b, y.data, M, p.K, p.N, act, residual ? residual.data : null);
    else linear(x.data, p.w!, p.b, y.data, M, p.K, p.N, act, residual ? residual.data : null);
    return y;
  }

  conv2d(input: Tensor, w: Conv2dWeights, act: Activation = "none", res: Tensor | null = null): Tensor {
    const p = w as TsConv;
    const { x, residual, shape, s } = checkConv2d(input, p, act, res);
    const y = tensor(shape);
    conv2d(x.data, p.w, p.b, y.data, s, act, residual ? residual.data : null);
    return y;
  }

  layerNorm(input: Tensor, gamma: Tensor, beta: Tensor, eps = 1e-5): Tensor {
    const { x, weight, bias, D, rows } = checkLayerNorm(input, gamma, beta, eps);
    const y = tensor([...x.shape]);
    layerNorm(x.data, weight.data, bias.data, y.data, rows, D, eps);
    return y;
  }

  attention(query: Tensor, key: Tensor, value: Tensor, heads: number, counts: Int32Array | null = null): Tensor {
    const { q, k, v, B, Lq, Lk, D, headDim, keyCount } = checkAttention(query, key, value, heads, counts);
    const out = tensor([B, Lq, D]);
    attention(q.data, k.data, v.data, out.data, { B, Lq, Lk, heads, headDim }, keyCount);
    return out;
  }

  avgPool2d(input: Tensor, k: number): Tensor {
    const { x, N, C, H, W, shape } = checkAvgPool2d(input, k);
    const y = tensor(shape);
    avgPool2d(x.data, y.data, N, C, H, W, k);
    return y;
  }

  dispose(): void {}
}
