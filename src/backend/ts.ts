import { attention } from "../kernels/attention.js";
import type { Activation } from "../kernels/activations.js";
import { conv2d } from "../kernels/conv2d.js";
import { layerNorm } from "../kernels/layer_norm.js";
import { linear } from "../kernels/linear.js";
import { linearF16 } from "../kernels/linear_f16.js";
import { linearInt8, quantizeLinearWeights } from "../kernels/linear_int8.js";
import { scaleRows } from "../kernels/batch_norm.js";
import { avgPool2d } from "../kernels/pool.js";
import { tensor, type Tensor } from "../tensor.js";
import type { Backend, Conv2dWeights, LinearWeights, Precision, WeightPrecision } from "./backend.js";
import { writeHalfBits } from "./half.js";
import {
  checkAttention, checkAvgPool2d, checkConv2d, checkLayerNorm, checkLinear, checkPrepareConv2d, checkPrepareLinear,
} from "./validate.js";

interface TsLinear extends LinearWeights { w: Float32Array | null; half: Uint16Array | null; b: Float32Array | null }
interface TsLinearInt8 extends LinearWeights { int8: { q: Int8Array; scale: Float32Array }; b: Float32Array | null }
interface TsConv extends Conv2dWeights { w: Float32Array; b: Float32Array | null }

/** The readable backend: each op allocates its output and runs the plain loop of src/kernels/. */
export class TsBackend implements Backend {
  readonly name = "ts";
  /** How linear weights are kept (conv weights are f32 either way). */
  readonly weights: WeightPrecision;

  constructor(options: { weights?: WeightPrecision } = {}) {
    this.weights = options.weights ?? "fp32";
  }

  prepareLinear(weight: Tensor, bias: Tensor | null, precision: Precision = "f32"): TsLinear | TsLinearInt8 {
    const { w, b } = checkPrepareLinear(weight, bias, precision);
    const [N, K] = w.shape;
    // int8 weights are quantized from the values, whatever the residency of the f32/f16 ones
    if (precision === "int8") return { N, K, int8: quantizeLinearWeights(w.data, N, K), b: b ? b.data.slice() : null };
    if (this.weights === "fp16") {
      const half = new Uint16Array(N * K);
      writeHalfBits("prepareLinear: weight", w, new Uint8Array(half.buffer));
      return { N, K, w: null, half, b: b ? b.data : null };
    }
    return { N, K, w: w.data, half: null, b: b ? b.data : null };
  }

  prepareConv2d(weight: Tensor, bias: Tensor | null, stride: number, padding: number, scale: Float32Array | null = null): TsConv {
    const { w, b } = checkPrepareConv2d(weight, bias, stride, padding, scale);
    const [O, C, kh, kw] = w.shape;
    return { O, C, kh, kw, stride, padding, w: scale ? scaleRows(w.data, O, scale) : w.data, b: b ? b.data : null };
  }

  linear(input: Tensor, w: LinearWeights, act: Activation = "none", res: Tensor | null = null): Tensor {
    const p = w as TsLinear;
    const { x, residual, shape, M } = checkLinear(input, p, act, res);
    const y = tensor(shape);
    if ("int8" in p) {
      const { int8: { q, scale }, b } = p as TsLinearInt8;
      linearInt8(x.data, q, scale, b, y.data, M, p.K, p.N, act, residual ? residual.data : null);
      return y;
    }
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
