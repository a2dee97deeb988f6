// clip/model.py of openai/CLIP, module by module and in the same order: Bottleneck, AttentionPool2d,
// ModifiedResNet, LayerNorm, QuickGELU, ResidualAttentionBlock, Transformer, VisionTransformer, CLIP, buildModel;
// then what model.py has no function for. torch.nn's part (Linear, Conv2d, Sequential, the state dict) is src/nn.ts.
// Differences from the reference, each for a reason:
// - weights come from a state dict at construction (no random init; nothing here trains);
// - BatchNorm is folded into the preceding convolution at load (eval mode only);
// - the transformers keep tokens batch-first, [N, L, D]: the reference permutes to [L, N, D] only because
//   nn.MultiheadAttention wants it, and our attention takes the batch first;
// - nn.MultiheadAttention's packed in_proj is applied as three linears (q, k, v rows): the same sums;
// - a residual add (x + …) is done inside the kernel of the layer it follows: the same bits, one pass fewer.
// Each module keeps the prefix it was built with: its name in the state dict and in forward hooks.

import { PRECISIONS, type Backend, type Precision } from "./backend/backend.js";
import { resolveTower, type CLIPConfig, type Hints, type MlpActivation, type VisionConfig } from "./config.js";
import { expf } from "./kernels/exp.js";
import { f } from "./kernels/f32.js";
import { Conv2d, HalfTensor, Linear, Params, projection, rows, Sequential, StateDictError, type ForwardHook } from "./nn.js";
import { rowsOf, shapeString, storedOf, StoredTensor, tensor, type StateDict, type Tensor } from "./tensor.js";

export class Bottleneck {
  static readonly expansion = 4;
  readonly conv1: Conv2d; // bn1 folded in
  readonly conv2: Conv2d; // bn2 folded in
  readonly conv3: Conv2d; // bn3 folded in
  readonly downsample: Conv2d | null; // "-1" AvgPool2d(stride), "0" conv, "1" bn (folded)

  constructor(readonly backend: Backend, p: Params, readonly prefix: string, inplanes: number, planes: number, readonly stride = 1) {
    // all convs have stride 1; a stride > 1 is an avgpool after conv2 (and before the downsample conv): ResNet-D
    this.conv1 = new Conv2d(backend, p, `${prefix}.conv1`, { inChannels: inplanes, outChannels: planes, kernelSize: 1, bias: false, bn: `${prefix}.bn1` });
    this.conv2 = new Conv2d(backend, p, `${prefix}.conv2`, { inChannels: planes, outChannels: planes, kernelSize: 3, padding: 1, bias: false, bn: `${prefix}.bn2` });
    this.conv3 = new Conv2d(backend, p, `${prefix}.conv3`, { inChannels: planes, outChannels: planes * Bottleneck.expansion, kernelSize: 1, bias: false, bn: `${prefix}.bn3` });
    this.downsample = stride > 1 || inplanes !== planes * Bottleneck.expansion
      ? new Conv2d(backend, p, `${prefix}.downsample.0`, { inChannels: inplanes, outChannels: planes * Bottleneck.expansion, kernelSize: 1, stride: 1, bias: false, bn: `${prefix}.downsample.1` })
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
    readonly backend: Backend, p: Params, readonly prefix: string,
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
  readonly conv1: Conv2d; // bn1 folded in
  readonly conv2: Conv2d; // bn2 folded in
  readonly conv3: Conv2d; // bn3 folded in
  readonly layer1: Sequential<Bottleneck>;
  readonly layer2: Sequential<Bottleneck>;
  readonly layer3: Sequential<Bottleneck>;
  readonly layer4: Sequential<Bottleneck>;
  readonly attnpool: AttentionPool2d;
  private inplanes: number;

  constructor(
    readonly backend: Backend, p: Params, readonly prefix: string,
    layers: readonly [number, number, number, number], readonly outputDim: number, heads: number, readonly inputResolution: number, width: number,
  ) {
    // the 3-layer stem
    const half = width >> 1;
    this.conv1 = new Conv2d(backend, p, `${prefix}.conv1`, { inChannels: 3, outChannels: half, kernelSize: 3, stride: 2, padding: 1, bias: false, bn: `${prefix}.bn1` });
    this.conv2 = new Conv2d(backend, p, `${prefix}.conv2`, { inChannels: half, outChannels: half, kernelSize: 3, padding: 1, bias: false, bn: `${prefix}.bn2` });
    this.conv3 = new Conv2d(backend, p, `${prefix}.conv3`, { inChannels: half, outChannels: width, kernelSize: 3, padding: 1, bias: false, bn: `${prefix}.bn3` });

    // residual layers
    this.inplanes = width;
    this.layer1 = this.makeLayer(p, `${prefix}.layer1`, width, layers[0]);
    this.layer2 = this.makeLayer(p, `${prefix}.layer2`, width * 2, layers[1], 2);
    this.layer3 = this.makeLayer(p, `${prefix}.layer3`, width * 4, layers[2], 2);
    this.layer4 = this.makeLayer(p, `${prefix}.layer4`, width * 8, layers[3], 2);

    const embedDim = width * 32; // the ResNet feature dimension
    this.attnpool = new AttentionPool2d(backend, p, `${prefix}.attnpool`, inputResolution / 32, embedDim, heads, outputDim);
  }

  private makeLayer(p: Params, prefix: string, planes: number, blocks: number, stride = 1): Sequential<Bottleneck> {
    const layers = [new Bottleneck(this.backend, p, `${prefix}.0`, this.inplanes, planes, stride)];
    this.inplanes = planes * Bottleneck.expansion;
    for (let i = 1; i < blocks; i++) layers.push(new Bottleneck(this.backend, p, `${prefix}.${i}`, this.inplanes, planes));
    return new Sequential(prefix, layers);
  }

  forward(x: Tensor, hook?: ForwardHook): Tensor {
    // the stem: relu(bn(conv(x))) three times, then avgpool
    for (const conv of [this.conv1, this.conv2, this.conv3]) x = conv.forward(x, "relu");
    x = this.backend.avgPool2d(x, 2);
    hook?.(`${this.prefix}.avgpool`, x);

    x = this.layer1.forward(x, hook);
    x = this.layer2.forward(x, hook);
    x = this.layer3.forward(x, hook);
    x = this.layer4.forward(x, hook);
    x = this.attnpool.forward(x);
    hook?.(this.attnpool.prefix, x);
    return x;
  }
}

/** LayerNorm over the last dimension, always in f32 (the reference subclasses it for fp16 models). */
export class LayerNorm {
  readonly weight: Tensor;
  readonly bias: Tensor;
  constructor(readonly backend: Backend, p: Params, readonly prefix: string, width: number, readonly eps = 1e-5) {
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
  // attn, nn.MultiheadAttention(d_model, n_head):
  readonly q_proj: Linear; // rows [0, d) of attn.in_proj_weight
  readonly k_proj: Linear; // rows [d, 2d)
  readonly v_proj: Linear; // rows [2d, 3d)
  readonly out_proj: Linear;
  readonly ln_1: LayerNorm;
  // mlp: c_fc, the activation, c_proj
  readonly c_fc: Linear;
  readonly c_proj: Linear;
  readonly ln_2: LayerNorm;

  constructor(
    readonly backend: Backend, p: Params, readonly prefix: string, readonly dModel: number, readonly nHead: number,
    readonly act: MlpActivation = "quickgelu", eps = 1e-5, precision: Precision = "f32",
  ) {
    const d = dModel;
    const inW = p.get(`${prefix}.attn.in_proj_weight`, [3 * d, d]);
    const inB = p.get(`${prefix}.attn.in_proj_bias`, [3 * d]);
    const proj = (i: number) => new Linear(
      backend,
      rowsOf(inW, i * d, (i + 1) * d),
      rowsOf(inB, i * d, (i + 1) * d),
      precision,
    );
    this.q_proj = proj(0);
    this.k_proj = proj(1);
    this.v_proj = proj(2);
    this.out_proj = Linear.load(backend, p, `${prefix}.attn.out_proj`, d, d, precision);
    this.ln_1 = new LayerNorm(backend, p, `${prefix}.ln_1`, d, eps);
    const hidden = p.shapeOf(`${prefix}.mlp.c_fc.weight`, 2)[0]; // d·mlp_ratio: 4 in OpenAI's models, not in all of open_clip's
    this.c_fc = Linear.load(backend, p, `${prefix}.mlp.c_fc`, d, hidden, precision);
    this.c_proj = Linear.load(backend, p, `${prefix}.mlp.c_proj`, hidden, d, precision);
    this.ln_2 = new LayerNorm(backend, p, `${prefix}.ln_2`, d, eps);
  }

  /**
   * The reference's attention(x), self.attn(x, x, x)[0] (out_proj included), plus `residual`, for x: [N, L, D];
   * keyCount as in Backend.attention (the causal mask of the text tower). With `queries`, only the token
   * queries[n] of each sequence asks, giving [N, 1, D]; every token is still a key and a value.
   */
  attention(x: Tensor, keyCount: Int32Array | null, residual: Tensor, queries: Int32Array | null = null): Tensor {
    const q = this.q_proj.forward(queries ? rows(x, queries, true) : x);
    const k = this.k_proj.forward(x);
    const v = this.v_proj.forward(x);
    return this.out_proj.forward(this.backend.attention(q, k, v, this.nHead, keyCount), "none", residual);
  }

  /** The reference's mlp(x): c_proj(act(c_fc(x))), plus `residual`. */
  mlp(x: Tensor, residual: Tensor): Tensor {
    return this.c_proj.forward(this.c_fc.forward(x, this.act), "none", residual);
  }

  forward(x: Tensor, keyCount: Int32Array | null = null): Tensor {
    x = this.attention(this.ln_1.forward(x), keyCount, x); // x = x + self.attention(self.ln_1(x))
    x = this.mlp(this.ln_2.forward(x), x); // x = x + self.mlp(self.ln_2(x))
    return x;
  }

  /**
   * forward() for one token per sequence, x[n, index[n]] → [N, 1, D]; every token is still a key and a value.
   * For the last block: the other tokens' outputs are never read. Every op is row-wise, so the bits are the same.
   */
  forwardPooled(x: Tensor, index: Int32Array, keyCount: Int32Array | null): Tensor {
    x = this.attention(this.ln_1.forward(x), keyCount, rows(x, index, true), index);
    x = this.mlp(this.ln_2.forward(x), x);
    return x;
  }
}

export class Transformer {
  readonly resblocks: ResidualAttentionBlock[];
  constructor(
    backend: Backend, p: Params, readonly prefix: string, readonly width: number, readonly layers: number, readonly heads: number,
    act: MlpActivation = "quickgelu", eps = 1e-5, precision: Precision = "f32",
  ) {
    this.resblocks = [];
    for (let i = 0; i < layers; i++) this.resblocks.push(new ResidualAttentionBlock(backend, p, `${prefix}.resblocks.${i}`, width, heads, act, eps, precision));
  }

  forward(x: Tensor, keyCount: Int32Array | null = null, hook?: ForwardHook): Tensor {
    for (const block of this.resblocks) {
      x = block.forward(x, keyCount);
      hook?.(block.prefix, x);
    }
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
  /** f32: the patch embedding; int8: null, patchLinear does its work. */
  readonly conv1: Conv2d | null;
  /** int8: conv1 as the linear it is (stride = kernel: each output pixel is its patch's pixels · the weights),
   *  on the patches flattened as conv1.weight's rows are, [c, ky, kx]. */
  readonly patchLinear: Linear | null;
  readonly class_embedding: Tensor;
  readonly positional_embedding: Tensor;
  readonly ln_pre: LayerNorm;
  readonly transformer: Transformer;
  readonly ln_post: LayerNorm;
  readonly proj: Linear; // x @ proj, as a linear with weight projᵀ

  constructor(
    readonly backend: Backend, p: Params, readonly prefix: string,
    readonly inputResolution: number, readonly patchSize: number, readonly width: number,
    layers: number, heads: number, readonly outputDim: number, act: MlpActivation = "quickgelu", eps = 1e-5,
    precision: Precision = "f32",
  ) {
    if (precision === "int8") {
      this.conv1 = null;
      const w = p.get(`${prefix}.conv1.weight`, [width, 3, patchSize, patchSize]), shape = [width, 3 * patchSize * patchSize];
      const stored = storedOf(w);
      this.patchLinear = new Linear(backend, stored ? new StoredTensor(shape, stored) : { data: w.data, shape }, null, "int8");
    } else {
      this.conv1 = new Conv2d(backend, p, `${prefix}.conv1`, { inChannels: 3, outChannels: width, kernelSize: patchSize, stride: patchSize, bias: false });
      this.patchLinear = null;
    }
    const grid = inputResolution / patchSize;
    this.class_embedding = p.own(`${prefix}.class_embedding`, [width]);
    this.positional_embedding = p.own(`${prefix}.positional_embedding`, [grid * grid + 1, width]);
    this.ln_pre = new LayerNorm(backend, p, `${prefix}.ln_pre`, width, eps);
    this.transformer = new Transformer(backend, p, `${prefix}.transformer`, width, layers, heads, act, eps, precision);
    this.ln_post = new LayerNorm(backend, p, `${prefix}.ln_post`, width, eps);
    this.proj = projection(backend, p.get(`${prefix}.proj`, [width, outputDim]));
  }

  forward(x: Tensor, hook?: ForwardHook): Tensor {
    const tokens = this.conv1 ? this.embedConv(this.conv1, x, hook) : this.embedPatches(this.patchLinear!, x, hook);
    x = this.ln_pre.forward(tokens);
    hook?.(this.ln_pre.prefix, x);

    const classToken = new Int32Array(x.shape[0]);
    if (hook) x = rows(this.transformer.forward(x, null, hook), classToken);
    else x = this.transformer.forwardPooled(x, classToken, null, null);

    x = this.ln_post.forward(x); // the class token
    hook?.(this.ln_post.prefix, x);
    return this.proj.forward(x);
  }

  /** conv1, then [*, width, grid²] -> [*, grid², width], and the class token and positional embedding (withClass). */
  private embedConv(conv1: Conv2d, image: Tensor, hook?: ForwardHook): Tensor {
    const x = conv1.forward(image); // shape = [*, width, grid, grid]
    hook?.(conv1.prefix, x);
    const [N, D, gh, gw] = x.shape, G = gh * gw;
    const patches = tensor([N * G, D]);
    for (let n = 0; n < N; n++) {
      for (let d = 0; d < D; d++) for (let g = 0; g < G; g++) patches.data[(n * G + g) * D + d] = x.data[(n * D + d) * G + g];
    }
    return this.withClass(patches, N);
  }

  /** Patch rows [N·grid², width] -> [N, grid² + 1, width]: the class token first, plus the positional embedding. */
  private withClass(x: Tensor, N: number): Tensor {
    const D = x.shape[1], G = x.shape[0] / N, L = G + 1;
    const tokens = tensor([N, L, D]);
    const pos = this.positional_embedding.data, cls = this.class_embedding.data;
    for (let n = 0; n < N; n++) {
      for (let d = 0; d < D; d++) tokens.data[n * L * D + d] = f(cls[d] + pos[d]);
      for (let g = 0; g < G; g++) {
        const t = (n * L + g + 1) * D, xr = (n * G + g) * D, pr = (g + 1) * D;
        for (let d = 0; d < D; d++) tokens.data[t + d] = f(x.data[xr + d] + pos[pr + d]);
      }
    }
    return tokens;
  }

  /** embedConv's tokens, conv1 done as patchLinear on the flattened patches: its output is already token-major. */
  private embedPatches(patchLinear: Linear, image: Tensor, hook?: ForwardHook): Tensor {
    const [N, C, H, W] = image.shape, P = this.patchSize, gh = H / P, gw = W / P, G = gh * gw, K = C * P * P;
    const patches = tensor([N * G, K]);
    for (let n = 0; n < N; n++) {
      for (let g = 0; g < G; g++) {
        const y0 = Math.floor(g / gw) * P, x0 = (g % gw) * P, row = (n * G + g) * K;
        for (let c = 0; c < C; c++) {
          for (let ky = 0; ky < P; ky++) {
            const src = ((n * C + c) * H + y0 + ky) * W + x0;
            patches.data.set(image.data.subarray(src, src + P), row + (c * P + ky) * P);
          }
        }
      }
    }
    const x = patchLinear.forward(patches); // [N·grid², width]
    const D = x.shape[1];
    if (hook) {
      const conv = tensor([N, D, gh, gw]);
      for (let n = 0; n < N; n++) for (let g = 0; g < G; g++) for (let d = 0; d < D; d++) conv.data[(n * D + d) * G + g] = x.data[(n * G + g) * D + d];
      hook(`${this.prefix}.conv1`, conv);
    }
    return this.withClass(x, N);
  }
}

/** Which towers a model loads: "image" serves encodeImage only, "text" encodeText only. */
export type Towers = "image" | "text" | "both";
export const TOWERS: readonly Towers[] = ["image", "text", "both"];

export class CLIP {
  readonly logit_scale: number;
  private readonly image: { visual: ModifiedResNet | VisionTransformer } | null;
  private readonly text: {
    transformer: Transformer; token_embedding: Tensor; positional_embedding: Tensor; ln_final: LayerNorm; text_projection: Linear;
  } | null;

  /**
   * Batches larger than maxBatch are refused before anything is allocated (a .npy can declare any N). A tower left
   * out by `towers` is built over a backend that prepares nothing and from Params that hand out no data: its keys
   * and shapes are checked (and count as used) exactly as when loading it, and nothing of it is kept.
   */
  /** precision "int8": the transformers' linear layers (attention in/out, MLP) and the ViT's patch embedding run in
   *  int8 (src/kernels/linear_int8.ts); the ResNet's convolutions, layer norms, attention itself, the ResNet's attention
   *  pool and the projections stay f32. */
  constructor(
    readonly backend: Backend, p: Params, readonly config: CLIPConfig, readonly maxBatch = DEFAULT_MAX_BATCH, readonly towers: Towers = "both",
    readonly precision: Precision = "f32",
  ) {
    if (!Number.isSafeInteger(maxBatch) || maxBatch < 1) throw new RangeError(`maxBatch must be a positive integer, got ${maxBatch}`);
    if (!TOWERS.includes(towers)) throw new TypeError(`towers must be "image", "text" or "both", got ${JSON.stringify(towers)}`);
    if (!PRECISIONS.includes(precision)) throw new TypeError(`precision must be "f32" or "int8", got ${JSON.stringify(precision)}`);
    const c = config, v = c.vision;
    const [ib, ip] = towers === "text" ? [KEYS_ONLY, new KeysOnly(p)] : [backend, p];
    const [tb, tp] = towers === "image" ? [KEYS_ONLY, new KeysOnly(p)] : [backend, p];
    const visual = v.kind === "resnet"
      ? new ModifiedResNet(ib, ip, "visual", v.layers, c.embedDim, v.heads, c.imageResolution, v.width)
      : new VisionTransformer(ib, ip, "visual", c.imageResolution, v.patchSize, v.width, v.layers, v.heads, c.embedDim, v.activation, v.eps, precision);
    this.image = towers === "text" ? null : { visual };
    const text = {
      transformer: new Transformer(tb, tp, "transformer", c.transformerWidth, c.transformerLayers, c.transformerHeads, c.textActivation, c.textEps, precision),
      token_embedding: tp.ownTable("token_embedding.weight", [c.vocabSize, c.transformerWidth]),
      positional_embedding: tp.own("positional_embedding", [c.contextLength, c.transformerWidth]),
      ln_final: new LayerNorm(tb, tp, "ln_final", c.transformerWidth, c.textEps),
      text_projection: projection(tb, tp.get("text_projection", [c.transformerWidth, c.embedDim])),
    };
    this.text = towers === "image" ? null : text;
    // a 0-d tensor in OpenAI's checkpoints, [1] in some others
    this.logit_scale = p.get("logit_scale", p.stateDict.get("logit_scale")?.shape.length === 1 ? [1] : []).data[0];
  }

  get visual(): ModifiedResNet | VisionTransformer { return this.need("image", "visual").visual; }
  get transformer(): Transformer { return this.need("text", "transformer").transformer; }
  get token_embedding(): Tensor { return this.need("text", "token_embedding").token_embedding; }
  get positional_embedding(): Tensor { return this.need("text", "positional_embedding").positional_embedding; }
  get ln_final(): LayerNorm { return this.need("text", "ln_final").ln_final; }
  get text_projection(): Linear { return this.need("text", "text_projection").text_projection; }

  private need(tower: "image", what: string): NonNullable<CLIP["image"]>;
  private need(tower: "text", what: string): NonNullable<CLIP["text"]>;
  private need(tower: "image" | "text", what: string): NonNullable<CLIP["image"] | CLIP["text"]> {
    const t = this[tower];
    if (!t) throw new Error(`this model was loaded with towers: "${this.towers}"; ${what} needs the ${tower} tower`);
    return t;
  }

  encodeImage(image: Tensor, hook?: ForwardHook): Tensor {
    const { visual } = this.need("image", "encodeImage");
    const r = this.config.imageResolution;
    const [, c, h, w] = image.shape;
    checkShape("encodeImage: pixels", image.shape);
    if (image.shape.length !== 4 || c !== 3 || h !== r || w !== r || image.data.length !== image.shape[0] * 3 * r * r) {
      throw new RangeError(`encodeImage: expected pixels of shape [N, 3, ${r}, ${r}], got ${shapeString(image.shape)}`);
    }
    checkBatch("encodeImage", "images", image.shape[0], this.maxBatch);
    if (hook || !this.backend.scoped) return visual.forward(image, hook); // a hook may keep module outputs
    return this.backend.scoped(() => visual.forward(image));
  }

  encodeText(text: TokenTensor, hook?: ForwardHook): Tensor {
    const { transformer, token_embedding, positional_embedding, ln_final, text_projection } = this.need("text", "encodeText");
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
    const pos = positional_embedding.data;
    const emb = token_embedding instanceof HalfTensor ? token_embedding : token_embedding.data;
    const at = emb instanceof HalfTensor ? (i: number) => emb.at(i) : (i: number) => emb[i]!; // f16 kept: widened here
    for (let n = 0; n < N; n++) {
      for (let t = 0; t < Lt; t++) {
        const id = ids[n * L + t], o = (n * Lt + t) * D;
        for (let d = 0; d < D; d++) x.data[o + d] = f(at(id * D + d) + pos[t * D + d]);
      }
    }
    const causal = causalKeyCounts(N, Lt);
    if (hook) {
      x = transformer.forward(x, causal, hook);
      x = ln_final.forward(x);
      hook(ln_final.prefix, x);
      return text_projection.forward(rows(x, eot));
    }
    const pooled = (): Tensor => text_projection.forward(ln_final.forward(transformer.forwardPooled(x, eot, causal, Int32Array.from(eot, (e) => e + 1))));
    return this.backend.scoped ? this.backend.scoped(pooled) : pooled();
  }

  /** Releases the backend's memory and threads. */
  dispose(): void {
    this.backend.dispose();
  }

  /** Both logits, as the reference forward(): cosine similarities scaled by exp(logit_scale). */
  forward(image: Tensor, text: TokenTensor): { logitsPerImage: Tensor; logitsPerText: Tensor } {
    this.need("image", "forward");
    this.need("text", "forward");
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

// convert_weights (fp16 for GPUs) has no counterpart: every weight is f32 here, fp16 checkpoints are widened at load.

export interface BuildOptions {
  /** Larger batches are refused (default 1024). */
  maxBatch?: number;
  /** The towers to load (default "both"); the other's keys are still checked, its weights neither prepared nor kept. */
  towers?: Towers;
  /** What the state dict cannot tell, in priority order (options, the file's config, the architecture's name…). */
  hints?: readonly Hints[];
  /** "int8": the transformers' linear layers and the ViT's patch embedding in int8 (see CLIP); default "f32". */
  precision?: Precision;
}

/** Builds the model from a state dict; every key must be used and have the expected shape. */
export function buildModel(sd: StateDict, backend: Backend, options: BuildOptions = {}): CLIP {
  const p = new Params(sd);
  const model = new CLIP(backend, p, inferConfig(sd, options.hints), options.maxBatch, options.towers, options.precision);
  const extra = p.unexpected();
  if (extra.length) throw new StateDictError(`unexpected key${extra.length > 1 ? "s" : ""} ${extra.slice(0, 5).map((k) => `"${k}"`).join(", ")}${extra.length > 5 ? ` and ${extra.length - 5} more` : ""}`);
  return model;
}

// ---- not in clip/model.py

/** Params of a tower that is not loaded: each key is checked and marked used in `loaded`, and no data is handed out. */
class KeysOnly extends Params {
  constructor(private readonly loaded: Params) {
    super(loaded.stateDict);
  }
  override get(key: string, shape: number[]): Tensor {
    this.loaded.get(key, shape);
    return { data: NO_DATA, shape: shape.slice() };
  }
  override own(key: string, shape: number[]): Tensor {
    return this.get(key, shape);
  }
}

const NO_DATA = new Float32Array(0);

function notLoaded(): never {
  throw new Error("this tower was not loaded");
}

/** The backend of a tower that is not loaded: prepares nothing, runs nothing. */
const KEYS_ONLY: Backend = {
  name: "keys only",
  prepareLinear: (w) => ({ N: w.shape[0], K: w.shape[1] }),
  prepareConv2d: (w, _b, stride, padding) => ({ O: w.shape[0], C: w.shape[1], kh: w.shape[2], kw: w.shape[3], stride, padding }),
  linear: notLoaded, conv2d: notLoaded, layerNorm: notLoaded, attention: notLoaded, avgPool2d: notLoaded,
  dispose: () => {},
};

/**
 * build_model's first half: the hyper-parameters the state dict shows, from key names and shapes. The ones it
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

  // what the vision tower's keys show; the rest (heads, activation, eps) is resolved with the text tower's below
  let shown: { kind: "resnet"; layers: [number, number, number, number]; width: number } | { kind: "vit"; layers: number; width: number; patchSize: number };
  let imageResolution: number;
  if (sd.has("visual.proj")) {
    const width = shape("visual.conv1.weight")[0];
    const layers = blocks("visual.transformer.resblocks.");
    const patchSize = shape("visual.conv1.weight")[3];
    const gridSize = Math.round(Math.sqrt(shape("visual.positional_embedding")[0] - 1));
    imageResolution = patchSize * gridSize;
    shown = { kind: "vit", layers, width, patchSize };
  } else {
    const layers: [number, number, number, number] = [blocks("visual.layer1."), blocks("visual.layer2."), blocks("visual.layer3."), blocks("visual.layer4.")];
    const width = shape("visual.layer1.0.conv1.weight")[0];
    const tokens = shape("visual.attnpool.positional_embedding")[0];
    const outputWidth = Math.round(Math.sqrt(tokens - 1));
    if (outputWidth * outputWidth + 1 !== tokens) {
      throw new StateDictError(`visual.attnpool.positional_embedding has ${tokens} rows, not a square grid + 1`);
    }
    imageResolution = outputWidth * 32;
    shown = { kind: "resnet", layers, width };
  }
  const transformerWidth = shape("ln_final.weight")[0];
  const tp = shape("text_projection");
  if (tp.length !== 2 || tp[0] !== transformerWidth) {
    const transposed = tp.length === 2 && tp[1] === transformerWidth;
    throw new StateDictError(`text_projection has shape [${tp.join(", ")}], expected [${transformerWidth} (the text width), embed_dim]` +
      (transposed ? ": it looks transposed (nn.Linear's [out, in] layout; the reference multiplies x @ text_projection)" : ""));
  }
  if (shown.kind === "vit") {
    const vp = shape("visual.proj");
    if (vp.length === 2 && vp[0] !== shown.width && vp[1] === shown.width) {
      throw new StateDictError(`visual.proj has shape [${vp.join(", ")}], expected [${shown.width} (the vision width), ${tp[1]}]: it looks transposed`);
    }
  }
  const mlpWidth = (prefix: string, layers: number) => (layers > 0 ? shape(`${prefix}.resblocks.0.mlp.c_fc.weight`)[0] : 4 * shape(`${prefix === "transformer" ? "ln_final" : "visual.ln_post"}.weight`)[0]);
  // the ResNet's attention pool has width·32 features
  const v = resolveTower("vision", shown.kind === "vit" ? shown.width : shown.width * 32, 64, hints);
  const text = resolveTower("text", transformerWidth, 64, hints);
  const contextLength = shape("positional_embedding")[0];
  const vocabSize = shape("token_embedding.weight")[0];
  const transformerLayers = blocks("transformer.resblocks.");
  const vision: VisionConfig = shown.kind === "vit"
    ? { ...shown, heads: v.heads, activation: v.activation, eps: v.eps, mlpWidth: mlpWidth("visual.transformer", shown.layers) }
    : { ...shown, heads: v.heads };
  return {
    embedDim: tp[1],
    imageResolution, vision,
    contextLength, vocabSize,
    transformerWidth,
    transformerHeads: text.heads,
    transformerLayers,
    transformerMlpWidth: mlpWidth("transformer", transformerLayers),
    textActivation: text.activation,
    textEps: text.eps,
    textPoolTokenId: text.eosTokenId,
    sources: {
      visionHeads: v.sources.heads,
      ...(vision.kind === "vit" ? { visionActivation: v.sources.activation, visionEps: v.sources.eps } : {}),
      transformerHeads: text.sources.heads, textActivation: text.sources.activation, textEps: text.sources.eps,
    },
  };
}

export const DEFAULT_MAX_BATCH = 1024;

/** Token ids as the reference takes them: [N, context_length] of int32 or int64. */
export interface TokenTensor {
  data: Int32Array | BigInt64Array;
  shape: number[];
}

/** A shape of non-negative integers (a fractional or negative dimension would index outside the data). */
function checkShape(what: string, shape: readonly number[]): void {
  if (!Array.isArray(shape) || shape.some((d) => !Number.isSafeInteger(d) || d < 0)) {
    throw new RangeError(`${what}: shape ${Array.isArray(shape) ? `[${shape.join(", ")}]` : String(shape)} must be non-negative integers`);
  }
}

function checkBatch(where: string, what: string, n: number, limit: number): void {
  if (n > limit) throw new RangeError(`${where}: a batch of ${n} ${what} is more than the limit of ${limit} (maxBatch)`);
}

/** build_attention_mask of the reference: query i sees keys 0..i. */
function causalKeyCounts(N: number, L: number): Int32Array {
  const counts = new Int32Array(N * L);
  for (let t = 0; t < N * L; t++) counts[t] = (t % L) + 1;
  return counts;
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
