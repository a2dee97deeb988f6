// clip/model.py of openai/CLIP, module by module and in the same order: Bottleneck, AttentionPool2d,
// ModifiedResNet, LayerNorm, QuickGELU, ResidualAttentionBlock, Transformer, VisionTransformer, CLIP, buildModel.
// Differences from the reference, each for a reason:
// - weights come from a state dict at construction (no random init; nothing here trains);
// - BatchNorm is folded into the preceding convolution at load (eval mode only);
// - the transformers keep tokens batch-first, [N, L, D]: the reference permutes to [L, N, D] only because
//   nn.MultiheadAttention wants it, and our attention takes the batch first;
// - nn.MultiheadAttention's packed in_proj is applied as three linears (q, k, v rows): the same sums.

import type { Backend, Conv2dWeights, LinearWeights } from "./backend/backend.js";
import { ASSUMED, resolveTower, type Hints, type MlpActivation } from "./config.js";
import type { Activation } from "./kernels/activations.js";
import { foldBatchNorm } from "./kernels/batch_norm.js";
import { expf } from "./kernels/exp.js";
import { f } from "./kernels/f32.js";
import { shapeString, tensor, type StateDict, type Tensor } from "./tensor.js";

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
    return { data: t.data, shape: t.shape };
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
    return { data: t.data.slice(), shape: t.shape };
  }

  /** Keys the reference ignores too: buffers it rebuilds itself or never reads. */
  static readonly ignored = /(^|\.)num_batches_tracked$|^(input_resolution|context_length|vocab_size)$/;

  unexpected(): string[] {
    return [...this.stateDict.keys()].filter((k) => !this.used.has(k) && !Params.ignored.test(k));
  }
}

/** nn.Linear, prepared for the backend. */
export class Linear {
  readonly weights: LinearWeights;
  constructor(readonly backend: Backend, weight: Tensor, bias: Tensor | null) {
    this.weights = backend.prepareLinear(weight, bias);
  }
  static load(backend: Backend, p: Params, prefix: string, inFeatures: number, outFeatures: number): Linear {
    return new Linear(backend, p.get(`${prefix}.weight`, [outFeatures, inFeatures]), p.get(`${prefix}.bias`, [outFeatures]));
  }
  forward(x: Tensor, act: Activation = "none", residual: Tensor | null = null): Tensor {
    return this.backend.linear(x, this.weights, act, residual);
  }
}

/** A bias-free nn.Conv2d, with the nn.BatchNorm2d that follows it folded in when `bn` is given. */
export class Conv2d {
  readonly weights: Conv2dWeights;
  constructor(
    readonly backend: Backend, p: Params, prefix: string, inC: number, outC: number, kernel: number,
    stride = 1, padding = 0, bn: string | null = null,
  ) {
    const w = p.get(`${prefix}.weight`, [outC, inC, kernel, kernel]);
    let bias: Tensor | null = null;
    let weight = w;
    if (bn) {
      const folded = foldBatchNorm(
        w.data, outC,
        p.get(`${bn}.weight`, [outC]).data, p.get(`${bn}.bias`, [outC]).data,
        p.get(`${bn}.running_mean`, [outC]).data, p.get(`${bn}.running_var`, [outC]).data,
      );
      weight = { data: folded.weight, shape: w.shape };
      bias = { data: folded.bias, shape: [outC] };
    }
    this.weights = backend.prepareConv2d(weight, bias, stride, padding);
  }
  forward(x: Tensor, act: Activation = "none", residual: Tensor | null = null): Tensor {
    return this.backend.conv2d(x, this.weights, act, residual);
  }
}

export class Bottleneck {
  static readonly expansion = 4;
  readonly conv1: Conv2d; // bn1 folded in
  readonly conv2: Conv2d; // bn2 folded in
  readonly conv3: Conv2d; // bn3 folded in
  readonly downsample: Conv2d | null; // "-1" AvgPool2d(stride), "0" conv, "1" bn (folded)

  constructor(readonly backend: Backend, p: Params, prefix: string, inplanes: number, planes: number, readonly stride = 1) {
    // all convs have stride 1; a stride > 1 is an avgpool after conv2 (and before the downsample conv): ResNet-D
    this.conv1 = new Conv2d(backend, p, `${prefix}.conv1`, inplanes, planes, 1, 1, 0, `${prefix}.bn1`);
    this.conv2 = new Conv2d(backend, p, `${prefix}.conv2`, planes, planes, 3, 1, 1, `${prefix}.bn2`);
    this.conv3 = new Conv2d(backend, p, `${prefix}.conv3`, planes, planes * Bottleneck.expansion, 1, 1, 0, `${prefix}.bn3`);
    this.downsample = stride > 1 || inplanes !== planes * Bottleneck.expansion
      ? new Conv2d(backend, p, `${prefix}.downsample.0`, inplanes, planes * Bottleneck.expansion, 1, 1, 0, `${prefix}.downsample.1`)
      : null;
  }

  forward(x: Tensor): Tensor {
    let identity = x;

    let out = this.conv1.forward(x, "relu"); // relu1(bn1(conv1(x)))
    out = this.conv2.forward(out, "relu"); // relu2(bn2(conv2(out)))
    if (this.stride > 1) out = this.backend.avgPool2d(out, this.stride);

    if (this.downsample) {
      identity = this.stride > 1 ? this.backend.avgPool2d(x, this.stride) : x;
      identity = this.downsample.forward(identity);
    }

    return this.conv3.forward(out, "relu", identity); // relu3(bn3(conv3(out)) + identity)
  }
}

export class AttentionPool2d {
  readonly positional_embedding: Tensor;
  readonly k_proj: Linear;
  readonly q_proj: Linear;
  readonly v_proj: Linear;
  readonly c_proj: Linear;

  constructor(
    readonly backend: Backend, p: Params, prefix: string,
    spacialDim: number, readonly embedDim: number, readonly numHeads: number, outputDim: number,
  ) {
    this.positional_embedding = p.own(`${prefix}.positional_embedding`, [spacialDim * spacialDim + 1, embedDim]);
    this.k_proj = Linear.load(backend, p, `${prefix}.k_proj`, embedDim, embedDim);
    this.q_proj = Linear.load(backend, p, `${prefix}.q_proj`, embedDim, embedDim);
    this.v_proj = Linear.load(backend, p, `${prefix}.v_proj`, embedDim, embedDim);
    this.c_proj = Linear.load(backend, p, `${prefix}.c_proj`, embedDim, outputDim);
  }

  forward(x: Tensor): Tensor {
    const [N, C, H, W] = x.shape;
    const HW = H * W, L = HW + 1;
    // NCHW -> N(HW+1)C: the spatial mean first, then the HW tokens, plus the positional embedding
    const tokens = tensor([N, L, C]);
    const pos = this.positional_embedding.data;
    for (let n = 0; n < N; n++) {
      for (let c = 0; c < C; c++) {
        const src = (n * C + c) * HW;
        let sum = 0;
        for (let s = 0; s < HW; s++) sum = f(sum + x.data[src + s]);
        tokens.data[n * L * C + c] = f(f(sum / HW) + pos[c]);
        for (let s = 0; s < HW; s++) tokens.data[(n * L + s + 1) * C + c] = f(x.data[src + s] + pos[(s + 1) * C + c]);
      }
    }
    // only the mean token queries (query=x[:1]); every token is a key and a value
    const query = tensor([N, 1, C]);
    for (let n = 0; n < N; n++) query.data.set(tokens.data.subarray(n * L * C, n * L * C + C), n * C);
    const q = this.q_proj.forward(query);
    const k = this.k_proj.forward(tokens);
    const v = this.v_proj.forward(tokens);
    const out = this.c_proj.forward(this.backend.attention(q, k, v, this.numHeads));
    return { data: out.data, shape: [N, out.shape[2]] };
  }
}

export class ModifiedResNet {
  readonly conv1: Conv2d;
  readonly conv2: Conv2d;
  readonly conv3: Conv2d;
  readonly layer1: Bottleneck[];
  readonly layer2: Bottleneck[];
  readonly layer3: Bottleneck[];
  readonly layer4: Bottleneck[];
  readonly attnpool: AttentionPool2d;
  private inplanes: number;

  constructor(
    readonly backend: Backend, p: Params, prefix: string,
    layers: readonly number[], readonly outputDim: number, heads: number, readonly inputResolution: number, width: number,
  ) {
    // the 3-layer stem (bn1..bn3 folded in)
    this.conv1 = new Conv2d(backend, p, `${prefix}.conv1`, 3, width >> 1, 3, 2, 1, `${prefix}.bn1`);
    this.conv2 = new Conv2d(backend, p, `${prefix}.conv2`, width >> 1, width >> 1, 3, 1, 1, `${prefix}.bn2`);
    this.conv3 = new Conv2d(backend, p, `${prefix}.conv3`, width >> 1, width, 3, 1, 1, `${prefix}.bn3`);

    this.inplanes = width;
    this.layer1 = this.makeLayer(p, `${prefix}.layer1`, width, layers[0]);
    this.layer2 = this.makeLayer(p, `${prefix}.layer2`, width * 2, layers[1], 2);
    this.layer3 = this.makeLayer(p, `${prefix}.layer3`, width * 4, layers[2], 2);
    this.layer4 = this.makeLayer(p, `${prefix}.layer4`, width * 8, layers[3], 2);

    const embedDim = width * 32; // the ResNet feature dimension
    this.attnpool = new AttentionPool2d(backend, p, `${prefix}.attnpool`, inputResolution / 32, embedDim, heads, outputDim);
  }

  private makeLayer(p: Params, prefix: string, planes: number, blocks: number, stride = 1): Bottleneck[] {
    const layer = [new Bottleneck(this.backend, p, `${prefix}.0`, this.inplanes, planes, stride)];
    this.inplanes = planes * Bottleneck.expansion;
    for (let i = 1; i < blocks; i++) layer.push(new Bottleneck(this.backend, p, `${prefix}.${i}`, this.inplanes, planes));
    return layer;
  }

  stem(x: Tensor): Tensor {
    x = this.conv1.forward(x, "relu");
    x = this.conv2.forward(x, "relu");
    x = this.conv3.forward(x, "relu");
    return this.backend.avgPool2d(x, 2);
  }

  forward(x: Tensor, hook?: ForwardHook): Tensor {
    x = this.stem(x);
    hook?.("visual.avgpool", x);
    for (const [name, layer] of [["layer1", this.layer1], ["layer2", this.layer2], ["layer3", this.layer3], ["layer4", this.layer4]] as const) {
      layer.forEach((block, i) => {
        x = block.forward(x);
        hook?.(`visual.${name}.${i}`, x);
      });
      hook?.(`visual.${name}`, x);
    }
    x = this.attnpool.forward(x);
    hook?.("visual.attnpool", x);
    return x;
  }
}

/** LayerNorm over the last dimension, always in f32 (the reference subclasses it for fp16 models). */
export class LayerNorm {
  readonly weight: Tensor;
  readonly bias: Tensor;
  constructor(readonly backend: Backend, p: Params, prefix: string, width: number, readonly eps = 1e-5) {
    this.weight = p.own(`${prefix}.weight`, [width]);
    this.bias = p.own(`${prefix}.bias`, [width]);
  }
  forward(x: Tensor): Tensor {
    return this.backend.layerNorm(x, this.weight, this.bias, this.eps);
  }
}

// QuickGELU, x·sigmoid(1.702·x), is the "quickgelu" activation fused into mlp.c_fc (src/kernels/activations.ts);
// open_clip and Hugging Face models may use nn.GELU instead ("gelu", the erf form), which the config says.

export class ResidualAttentionBlock {
  readonly q_proj: Linear; // rows [0, d) of attn.in_proj_weight
  readonly k_proj: Linear; // rows [d, 2d)
  readonly v_proj: Linear; // rows [2d, 3d)
  readonly out_proj: Linear;
  readonly ln_1: LayerNorm;
  readonly c_fc: Linear;
  readonly c_proj: Linear;
  readonly ln_2: LayerNorm;

  constructor(
    readonly backend: Backend, p: Params, prefix: string, readonly dModel: number, readonly nHead: number,
    readonly act: MlpActivation = "quickgelu", eps = 1e-5,
  ) {
    const d = dModel;
    const inW = p.get(`${prefix}.attn.in_proj_weight`, [3 * d, d]);
    const inB = p.get(`${prefix}.attn.in_proj_bias`, [3 * d]);
    const proj = (i: number) => new Linear(
      backend,
      { data: inW.data.subarray(i * d * d, (i + 1) * d * d), shape: [d, d] },
      { data: inB.data.subarray(i * d, (i + 1) * d), shape: [d] },
    );
    this.q_proj = proj(0);
    this.k_proj = proj(1);
    this.v_proj = proj(2);
    this.out_proj = Linear.load(backend, p, `${prefix}.attn.out_proj`, d, d);
    this.ln_1 = new LayerNorm(backend, p, `${prefix}.ln_1`, d, eps);
    const hidden = p.shapeOf(`${prefix}.mlp.c_fc.weight`, 2)[0]; // d·mlp_ratio: 4 in OpenAI's models, not in all of open_clip's
    this.c_fc = Linear.load(backend, p, `${prefix}.mlp.c_fc`, d, hidden);
    this.c_proj = Linear.load(backend, p, `${prefix}.mlp.c_proj`, hidden, d);
    this.ln_2 = new LayerNorm(backend, p, `${prefix}.ln_2`, d, eps);
  }

  /** x: [N, L, D]; keyCount as in Backend.attention (the causal mask of the text tower). */
  attention(x: Tensor, keyCount: Int32Array | null): Tensor {
    const q = this.q_proj.forward(x);
    const k = this.k_proj.forward(x);
    const v = this.v_proj.forward(x);
    return this.backend.attention(q, k, v, this.nHead, keyCount);
  }

  forward(x: Tensor, keyCount: Int32Array | null = null): Tensor {
    x = this.out_proj.forward(this.attention(this.ln_1.forward(x), keyCount), "none", x); // x + attn(ln_1(x))
    const h = this.c_fc.forward(this.ln_2.forward(x), this.act);
    return this.c_proj.forward(h, "none", x); // x + mlp(ln_2(x))
  }

  /**
   * forward() for one token per sequence, x[n, index[n]] → [N, 1, D]; every token is still a key and a value.
   * For the last block: the other tokens' outputs are never read. Every op is row-wise, so the bits are the same.
   */
  forwardPooled(x: Tensor, index: Int32Array, keyCount: Int32Array | null): Tensor {
    const h = this.ln_1.forward(x);
    const q = this.q_proj.forward(rows(h, index, true));
    const attn = this.backend.attention(q, this.k_proj.forward(h), this.v_proj.forward(h), this.nHead, keyCount);
    const y = this.out_proj.forward(attn, "none", rows(x, index, true));
    return this.c_proj.forward(this.c_fc.forward(this.ln_2.forward(y), this.act), "none", y);
  }
}

export class Transformer {
  readonly resblocks: ResidualAttentionBlock[];
  constructor(
    backend: Backend, p: Params, prefix: string, readonly width: number, readonly layers: number, readonly heads: number,
    act: MlpActivation = "quickgelu", eps = 1e-5,
  ) {
    this.resblocks = [];
    for (let i = 0; i < layers; i++) this.resblocks.push(new ResidualAttentionBlock(backend, p, `${prefix}.resblocks.${i}`, width, heads, act, eps));
  }

  forward(x: Tensor, keyCount: Int32Array | null = null, hook?: ForwardHook, name = "transformer"): Tensor {
    this.resblocks.forEach((block, i) => {
      x = block.forward(x, keyCount);
      hook?.(`${name}.resblocks.${i}`, x);
    });
    return x;
  }

  /** forward(), then only the token index[n] of each sequence: [N, D]. The last block computes just those. */
  forwardPooled(x: Tensor, index: Int32Array, keyCount: Int32Array | null, pooledKeyCount: Int32Array | null): Tensor {
    const last = this.resblocks.length - 1;
    for (let i = 0; i < last; i++) x = this.resblocks[i].forward(x, keyCount);
    const y = last >= 0 ? this.resblocks[last].forwardPooled(x, index, pooledKeyCount) : rows(x, index, true);
    return { data: y.data, shape: [y.shape[0], y.shape[2]] };
  }
}

export class VisionTransformer {
  readonly conv1: Conv2d;
  readonly class_embedding: Tensor;
  readonly positional_embedding: Tensor;
  readonly ln_pre: LayerNorm;
  readonly transformer: Transformer;
  readonly ln_post: LayerNorm;
  readonly proj: Linear; // x @ proj, as a linear with weight projᵀ

  constructor(
    readonly backend: Backend, p: Params, prefix: string,
    readonly inputResolution: number, readonly patchSize: number, readonly width: number,
    layers: number, heads: number, readonly outputDim: number, act: MlpActivation = "quickgelu", eps = 1e-5,
  ) {
    this.conv1 = new Conv2d(backend, p, `${prefix}.conv1`, 3, width, patchSize, patchSize, 0);
    const grid = inputResolution / patchSize;
    this.class_embedding = p.own(`${prefix}.class_embedding`, [width]);
    this.positional_embedding = p.own(`${prefix}.positional_embedding`, [grid * grid + 1, width]);
    this.ln_pre = new LayerNorm(backend, p, `${prefix}.ln_pre`, width, eps);
    this.transformer = new Transformer(backend, p, `${prefix}.transformer`, width, layers, heads, act, eps);
    this.ln_post = new LayerNorm(backend, p, `${prefix}.ln_post`, width, eps);
    this.proj = projection(backend, p.get(`${prefix}.proj`, [width, outputDim]));
  }

  forward(x: Tensor, hook?: ForwardHook): Tensor {
    x = this.conv1.forward(x); // shape = [*, width, grid, grid]
    hook?.("visual.conv1", x);
    const [N, D, gh, gw] = x.shape;
    const G = gh * gw, L = G + 1;
    // [*, width, grid²] -> [*, grid², width], class token first, plus the positional embedding
    const tokens = tensor([N, L, D]);
    const pos = this.positional_embedding.data, cls = this.class_embedding.data;
    for (let n = 0; n < N; n++) {
      for (let d = 0; d < D; d++) {
        tokens.data[n * L * D + d] = f(cls[d] + pos[d]);
        for (let g = 0; g < G; g++) tokens.data[(n * L + g + 1) * D + d] = f(x.data[(n * D + d) * G + g] + pos[(g + 1) * D + d]);
      }
    }
    x = this.ln_pre.forward(tokens);
    hook?.("visual.ln_pre", x);

    const classToken = new Int32Array(N);
    if (hook) x = rows(this.transformer.forward(x, null, hook, "visual.transformer"), classToken);
    else x = this.transformer.forwardPooled(x, classToken, null, null);

    x = this.ln_post.forward(x); // the class token
    hook?.("visual.ln_post", x);
    return this.proj.forward(x);
  }
}

export interface CLIPConfig {
  embedDim: number;
  // vision
  imageResolution: number;
  visionLayers: number | [number, number, number, number]; // a tuple: ModifiedResNet
  visionWidth: number;
  visionPatchSize: number | null;
  // text
  contextLength: number;
  vocabSize: number;
  transformerWidth: number;
  transformerHeads: number;
  transformerLayers: number;
  // what the state dict cannot tell (src/config.ts): each with its source in `sources`
  visionHeads: number;
  visionActivation: MlpActivation; // unused by the ResNet (no MLP)
  visionEps: number; // unused by the ResNet (no LayerNorm)
  visionMlpWidth: number | null; // c_fc's outputs: 4·width in OpenAI's models (null: the ResNet)
  transformerMlpWidth: number;
  /** The text is pooled at the first position of this id (Hugging Face's eos_token_id); null: at argmax, as the reference. */
  textPoolTokenId: number | null;
  textActivation: MlpActivation;
  textEps: number;
  /** Per setting above (and transformerHeads): the source that gave it, or "assumed" (OpenAI's build_model). */
  sources: Record<"visionHeads" | "visionActivation" | "visionEps" | "transformerHeads" | "textActivation" | "textEps", string>;
}

/** The settings nothing said and that the model uses, as "name value" phrases; empty when every one was given. */
export function assumedSettings(c: CLIPConfig): string[] {
  const out: string[] = [];
  const resnet = Array.isArray(c.visionLayers);
  const acts = [
    ...(!resnet && c.sources.visionActivation === ASSUMED ? [["vision", c.visionActivation]] : []),
    ...(c.sources.textActivation === ASSUMED ? [["text", c.textActivation]] : []),
  ];
  if (acts.length) out.push(`activation ${acts.map(([t, a]) => `${a === "quickgelu" ? "QuickGELU" : "GELU"} (${t})`).join(", ")}`);
  const heads = [
    ...(c.sources.visionHeads === ASSUMED ? [`${c.visionHeads} (vision)`] : []),
    ...(c.sources.transformerHeads === ASSUMED ? [`${c.transformerHeads} (text)`] : []),
  ];
  if (heads.length) out.push(`64-wide attention heads: ${heads.join(", ")}`);
  const eps = [...(!resnet && c.sources.visionEps === ASSUMED ? ["vision"] : []), ...(c.sources.textEps === ASSUMED ? ["text"] : [])];
  if (eps.length) out.push(`layer-norm eps 1e-5 (${eps.join(", ")})`);
  return out;
}

/** Called with each module's output in forward order (the names of the reference's state dict / forward hooks). */
export type ForwardHook = (name: string, output: Tensor) => void;

/** Token ids as the reference takes them: [N, context_length] of int32 or int64. */
export interface TokenTensor {
  data: Int32Array | BigInt64Array;
  shape: number[];
}

export class CLIP {
  readonly visual: ModifiedResNet | VisionTransformer;
  readonly transformer: Transformer;
  readonly token_embedding: Tensor;
  readonly positional_embedding: Tensor;
  readonly ln_final: LayerNorm;
  readonly text_projection: Linear; // x @ text_projection, as a linear with weight text_projectionᵀ
  readonly logit_scale: number;

  /** Batches larger than maxBatch are refused before anything is allocated (a .npy can declare any N). */
  constructor(readonly backend: Backend, p: Params, readonly config: CLIPConfig, readonly maxBatch = DEFAULT_MAX_BATCH) {
    if (!Number.isSafeInteger(maxBatch) || maxBatch < 1) throw new RangeError(`maxBatch must be a positive integer, got ${maxBatch}`);
    const c = config;
    if (Array.isArray(c.visionLayers)) {
      this.visual = new ModifiedResNet(backend, p, "visual", c.visionLayers, c.embedDim, c.visionHeads, c.imageResolution, c.visionWidth);
    } else {
      this.visual = new VisionTransformer(
        backend, p, "visual", c.imageResolution, c.visionPatchSize!, c.visionWidth, c.visionLayers as number, c.visionHeads, c.embedDim,
        c.visionActivation, c.visionEps,
      );
    }
    this.transformer = new Transformer(
      backend, p, "transformer", c.transformerWidth, c.transformerLayers, c.transformerHeads, c.textActivation, c.textEps,
    );
    this.token_embedding = p.own("token_embedding.weight", [c.vocabSize, c.transformerWidth]);
    this.positional_embedding = p.own("positional_embedding", [c.contextLength, c.transformerWidth]);
    this.ln_final = new LayerNorm(backend, p, "ln_final", c.transformerWidth, c.textEps);
    this.text_projection = projection(backend, p.get("text_projection", [c.transformerWidth, c.embedDim]));
    // a 0-d tensor in OpenAI's checkpoints, [1] in some others
    this.logit_scale = p.get("logit_scale", p.stateDict.get("logit_scale")?.shape.length === 1 ? [1] : []).data[0];
  }

  encodeImage(image: Tensor, hook?: ForwardHook): Tensor {
    const r = this.config.imageResolution;
    const [, c, h, w] = image.shape;
    checkShape("encodeImage: pixels", image.shape);
    if (image.shape.length !== 4 || c !== 3 || h !== r || w !== r || image.data.length !== image.shape[0] * 3 * r * r) {
      throw new RangeError(`encodeImage: expected pixels of shape [N, 3, ${r}, ${r}], got ${shapeString(image.shape)}`);
    }
    checkBatch("encodeImage", "images", image.shape[0], this.maxBatch);
    return this.visual.forward(image, hook);
  }

  encodeText(text: TokenTensor, hook?: ForwardHook): Tensor {
    const { contextLength: L, vocabSize, transformerWidth: D } = this.config;
    const [N] = text.shape;
    checkShape("encodeText: token ids", text.shape);
    if (text.shape.length !== 2 || text.shape[1] !== L || text.data.length !== N * L) {
      throw new RangeError(`encodeText: expected token ids of shape [N, ${L}], got ${shapeString(text.shape)}`);
    }
    checkBatch("encodeText", "token rows", N, this.maxBatch);
    const ids = new Int32Array(N * L);
    for (let i = 0; i < N * L; i++) {
      const id = Number(text.data[i]);
      if (!(id >= 0 && id < vocabSize)) {
        throw new RangeError(`encodeText: token id ${text.data[i]} at [${Math.floor(i / L)}, ${i % L}] is outside the vocabulary [0, ${vocabSize})`);
      }
      ids[i] = id;
    }

    // the end-of-text token is the highest id in each row (text.argmax(dim=-1)): the features are taken there
    const eot = this.config.textPoolTokenId === null ? argmaxPerRow(ids, N, L) : firstIndexPerRow(ids, N, L, this.config.textPoolTokenId);
    // Causal attention: no position after the last end-of-text token can change the output, so they are not
    // computed (unless a hook asks for every module's full output). The bits are the same either way.
    const Lt = hook ? L : eot.reduce((a, e) => Math.max(a, e + 1), 1);

    // token_embedding(text) + positional_embedding: [batch_size, n_ctx, d_model]
    let x = tensor([N, Lt, D]);
    const emb = this.token_embedding.data, pos = this.positional_embedding.data;
    for (let n = 0; n < N; n++) {
      for (let t = 0; t < Lt; t++) {
        const id = ids[n * L + t], o = (n * Lt + t) * D;
        for (let d = 0; d < D; d++) x.data[o + d] = f(emb[id * D + d] + pos[t * D + d]);
      }
    }
    const causal = causalKeyCounts(N, Lt);
    if (hook) {
      x = this.transformer.forward(x, causal, hook);
      x = this.ln_final.forward(x);
      hook("ln_final", x);
      x = rows(x, eot);
    } else {
      x = this.ln_final.forward(this.transformer.forwardPooled(x, eot, causal, Int32Array.from(eot, (e) => e + 1)));
    }
    return this.text_projection.forward(x);
  }

  /** Releases the backend's memory and threads. */
  dispose(): void {
    this.backend.dispose();
  }

  /** Both logits, as the reference forward(): cosine similarities scaled by exp(logit_scale). */
  forward(image: Tensor, text: TokenTensor): { logitsPerImage: Tensor; logitsPerText: Tensor } {
    return this.logits(this.encodeImage(image), this.encodeText(text));
  }

  /** The second half of forward(): both logits from the raw encode_image / encode_text outputs. */
  logits(imageFeatures: Tensor, textFeatures: Tensor): { logitsPerImage: Tensor; logitsPerText: Tensor } {
    const logitsPerImage = scaledSimilarity(this.logit_scale, normalize(imageFeatures), normalize(textFeatures));
    const [I, T] = logitsPerImage.shape;
    const logitsPerText = tensor([T, I]); // logits_per_image.t()
    for (let i = 0; i < I; i++) for (let j = 0; j < T; j++) logitsPerText.data[j * I + i] = logitsPerImage.data[i * T + j];
    return { logitsPerImage, logitsPerText };
  }
}

/** (logit_scale.exp() * image_features) @ text_features.t(), in the reference's order, for normalised features. */
export function scaledSimilarity(logitScale: number, imageFeatures: Tensor, textFeatures: Tensor): Tensor {
  const scale = expf(logitScale);
  const [I, E] = imageFeatures.shape, [T] = textFeatures.shape;
  const out = tensor([I, T]);
  for (let i = 0; i < I; i++) {
    for (let j = 0; j < T; j++) {
      let acc = 0;
      for (let e = 0; e < E; e++) acc = f(acc + f(f(scale * imageFeatures.data[i * E + e]) * textFeatures.data[j * E + e]));
      out.data[i * T + j] = acc;
    }
  }
  return out;
}

export const DEFAULT_MAX_BATCH = 1024;

/** A shape of non-negative integers (a fractional or negative dimension would index outside the data). */
function checkShape(what: string, shape: readonly number[]): void {
  if (!Array.isArray(shape) || shape.some((d) => !Number.isSafeInteger(d) || d < 0)) {
    throw new RangeError(`${what}: shape ${Array.isArray(shape) ? `[${shape.join(", ")}]` : String(shape)} must be non-negative integers`);
  }
}

function checkBatch(where: string, what: string, n: number, limit: number): void {
  if (n > limit) throw new RangeError(`${where}: a batch of ${n} ${what} is more than the limit of ${limit} (maxBatch)`);
}

/** x / ‖x‖ per row. */
export function normalize(x: Tensor): Tensor {
  const [N, E] = x.shape;
  const y = tensor([N, E]);
  for (let n = 0; n < N; n++) {
    let sq = 0;
    for (let e = 0; e < E; e++) sq = f(sq + f(x.data[n * E + e] * x.data[n * E + e]));
    const norm = f(Math.sqrt(sq));
    for (let e = 0; e < E; e++) y.data[n * E + e] = f(x.data[n * E + e] / norm);
  }
  return y;
}

/** A [in, out] projection matrix applied as x @ proj: a bias-free linear whose weight is its transpose. */
function projection(backend: Backend, proj: Tensor): Linear {
  const [K, N] = proj.shape;
  const wT = tensor([N, K]);
  for (let k = 0; k < K; k++) for (let n = 0; n < N; n++) wT.data[n * K + k] = proj.data[k * N + n];
  return new Linear(backend, wT, null);
}

/** x[arange(N), index] for x: [N, L, D] → [N, D] (or [N, 1, D]). */
function rows(x: Tensor, index: Int32Array, keepDim = false): Tensor {
  const [N, L, D] = x.shape;
  const y = tensor(keepDim ? [N, 1, D] : [N, D]);
  for (let n = 0; n < N; n++) y.data.set(x.data.subarray((n * L + index[n]) * D, (n * L + index[n] + 1) * D), n * D);
  return y;
}

/** The first position of the largest id in each row, as torch.argmax. */
export function argmaxPerRow(ids: Int32Array, N: number, L: number): Int32Array {
  const out = new Int32Array(N);
  for (let n = 0; n < N; n++) {
    for (let t = 1; t < L; t++) if (ids[n * L + t] > ids[n * L + out[n]]) out[n] = t;
  }
  return out;
}

/** The first position of `id` in each row (0 where absent, as torch.argmax of the comparison). */
export function firstIndexPerRow(ids: Int32Array, N: number, L: number, id: number): Int32Array {
  const out = new Int32Array(N);
  for (let n = 0; n < N; n++) {
    const t = ids.subarray(n * L, (n + 1) * L).indexOf(id);
    out[n] = t < 0 ? 0 : t;
  }
  return out;
}

/** build_attention_mask of the reference: query i sees keys 0..i. */
function causalKeyCounts(N: number, L: number): Int32Array {
  const counts = new Int32Array(N * L);
  for (let t = 0; t < N * L; t++) counts[t] = (t % L) + 1;
  return counts;
}

/**
 * build_model of the reference: the hyper-parameters the state dict shows, from key names and shapes. The ones it
 * cannot show (heads, activation, eps) come from `hints`, first source first, else OpenAI's defaults, marked assumed.
 */
export function inferConfig(sd: StateDict, hints: readonly Hints[] = []): CLIPConfig {
  const shape = (key: string): number[] => {
    const t = sd.get(key);
    if (!t) throw new StateDictError(`missing key "${key}": cannot infer the model configuration`);
    return t.shape;
  };
  const keys = [...sd.keys()];
  // blocks numbered 0..n-1 under prefix; a gap means stray or missing keys, named here rather than as a missing block
  const blocks = (prefix: string): number => {
    const seen = new Set<number>();
    for (const k of keys) {
      if (!k.startsWith(prefix)) continue;
      const part = k.slice(prefix.length).split(".")[0];
      if (!/^\d+$/.test(part)) throw new StateDictError(`unexpected key "${k}": ${prefix}<block number> expected`);
      seen.add(Number(part));
    }
    const n = seen.size;
    const stray = [...seen].filter((i) => i >= n).sort((a, b) => a - b);
    if (stray.length) {
      throw new StateDictError(`${prefix}*: blocks ${stray.join(", ")} found but not all of 0…${Math.max(...seen)} (stray keys, or a missing block)`);
    }
    return n;
  };

  const vit = sd.has("visual.proj");
  let visionWidth: number, visionLayers: CLIPConfig["visionLayers"], visionPatchSize: number | null, imageResolution: number;
  if (vit) {
    visionWidth = shape("visual.conv1.weight")[0];
    visionLayers = blocks("visual.transformer.resblocks.");
    visionPatchSize = shape("visual.conv1.weight")[3];
    const gridSize = Math.round(Math.sqrt(shape("visual.positional_embedding")[0] - 1));
    imageResolution = visionPatchSize * gridSize;
  } else {
    visionLayers = [1, 2, 3, 4].map((b) => blocks(`visual.layer${b}.`)) as [number, number, number, number];
    visionWidth = shape("visual.layer1.0.conv1.weight")[0];
    const tokens = shape("visual.attnpool.positional_embedding")[0];
    const outputWidth = Math.round(Math.sqrt(tokens - 1));
    if (outputWidth * outputWidth + 1 !== tokens) {
      throw new StateDictError(`visual.attnpool.positional_embedding has ${tokens} rows, not a square grid + 1`);
    }
    visionPatchSize = null;
    imageResolution = outputWidth * 32;
  }
  const transformerWidth = shape("ln_final.weight")[0];
  const tp = shape("text_projection");
  if (tp.length !== 2 || tp[0] !== transformerWidth) {
    const transposed = tp.length === 2 && tp[1] === transformerWidth;
    throw new StateDictError(`text_projection has shape [${tp.join(", ")}], expected [${transformerWidth} (the text width), embed_dim]` +
      (transposed ? ": it looks transposed (nn.Linear's [out, in] layout; the reference multiplies x @ text_projection)" : ""));
  }
  if (vit) {
    const vp = shape("visual.proj");
    if (vp.length === 2 && vp[0] !== visionWidth && vp[1] === visionWidth) {
      throw new StateDictError(`visual.proj has shape [${vp.join(", ")}], expected [${visionWidth} (the vision width), ${tp[1]}]: it looks transposed`);
    }
  }
  const mlpWidth = (prefix: string, layers: number) => (layers > 0 ? shape(`${prefix}.resblocks.0.mlp.c_fc.weight`)[0] : 4 * shape(`${prefix === "transformer" ? "ln_final" : "visual.ln_post"}.weight`)[0]);
  const vision = resolveTower("vision", vit ? visionWidth : visionWidth * 32, 64, hints);
  const text = resolveTower("text", transformerWidth, 64, hints);
  return {
    embedDim: tp[1],
    imageResolution, visionLayers, visionWidth, visionPatchSize,
    contextLength: shape("positional_embedding")[0],
    vocabSize: shape("token_embedding.weight")[0],
    transformerWidth,
    transformerHeads: text.heads,
    transformerLayers: blocks("transformer.resblocks."),
    visionHeads: vision.heads,
    visionActivation: vision.activation,
    visionEps: vision.eps,
    visionMlpWidth: vit ? mlpWidth("visual.transformer", visionLayers as number) : null,
    transformerMlpWidth: mlpWidth("transformer", blocks("transformer.resblocks.")),
    textActivation: text.activation,
    textEps: text.eps,
    textPoolTokenId: text.eosTokenId,
    sources: {
      visionHeads: vision.sources.heads, visionActivation: vision.sources.activation, visionEps: vision.sources.eps,
      transformerHeads: text.sources.heads, textActivation: text.sources.activation, textEps: text.sources.eps,
    },
  };
}

export interface BuildOptions {
  /** Larger batches are refused (default 1024). */
  maxBatch?: number;
  /** What the state dict cannot tell, in priority order (options, the file's config, the architecture's name…). */
  hints?: readonly Hints[];
}

/** Builds the model from a state dict; every key must be used and have the expected shape. */
export function buildModel(sd: StateDict, backend: Backend, options: BuildOptions = {}): CLIP {
  const p = new Params(sd);
  const model = new CLIP(backend, p, inferConfig(sd, options.hints), options.maxBatch);
  const extra = p.unexpected();
  if (extra.length) throw new StateDictError(`unexpected key${extra.length > 1 ? "s" : ""} ${extra.slice(0, 5).map((k) => `"${k}"`).join(", ")}${extra.length > 5 ? ` and ${extra.length - 5} more` : ""}`);
  return model;
}
