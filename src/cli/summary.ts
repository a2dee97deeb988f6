// `clip-ts summary`: the reference CLIP's module tree exactly as PyTorch's print(model) shows it, with each
// module's output shape for one image and one text, its parameter count and its FLOPs.
import type { CLIPConfig, MlpActivation, VisionConfig } from "../config.js";
import type { CLIP } from "../model.js";
import { Params } from "../nn.js";
import { numel, shapeString, tensor, type StateDict, type Tensor } from "../tensor.js";
import { parse } from "./args.js";
import { MODEL_HELP, MODEL_OPTIONS, openModel, type Command } from "./common.js";

type ResNetConfig = Extract<VisionConfig, { kind: "resnet" }>;
type ViTConfig = Extract<VisionConfig, { kind: "vit" }>;

/** One nn.Module of the reference, as print(model) names it. */
export interface ModuleNode {
  /** The attribute name under its parent ("visual", "0", "-1"); "" for the root. */
  name: string;
  /** The dotted path of forward hooks and state-dict keys ("" for the root). */
  path: string;
  type: string;
  /** extra_repr of a leaf (the constructor arguments PyTorch prints); null for a module with children. */
  extra: string | null;
  children: ModuleNode[];
  /** Output shape for one input, batch-first. */
  shape: number[];
  /** 2·MACs of this module's own products (its children's are theirs). */
  flops: number;
}

const join = (path: string, name: string) => (path ? `${path}.${name}` : name);

function leaf(path: string, name: string, type: string, extra: string, shape: number[], flops = 0): ModuleNode {
  return { name, path: join(path, name), type, extra, children: [], shape, flops };
}

function node(path: string, name: string, type: string, build: (p: string) => ModuleNode[], shapeOf?: (c: ModuleNode[]) => number[], flops = 0): ModuleNode {
  const p = join(path, name);
  const children = build(p);
  return { name, path: p, type, extra: null, children, shape: shapeOf ? shapeOf(children) : children[children.length - 1].shape, flops };
}

// ---- nn leaf modules, with PyTorch's extra_repr

function conv2d(path: string, name: string, cin: number, cout: number, k: number, stride: number, pad: number, N: number, H: number): ModuleNode {
  const Ho = Math.floor((H + 2 * pad - k) / stride) + 1;
  const extra = `${cin}, ${cout}, kernel_size=(${k}, ${k}), stride=(${stride}, ${stride})${pad ? `, padding=(${pad}, ${pad})` : ""}, bias=False`;
  return leaf(path, name, "Conv2d", extra, [N, cout, Ho, Ho], 2 * N * cout * Ho * Ho * cin * k * k);
}
const batchNorm2d = (path: string, name: string, shape: number[]) =>
  leaf(path, name, "BatchNorm2d", `${shape[1]}, eps=1e-05, momentum=0.1, affine=True, track_running_stats=True`, shape);
const relu = (path: string, name: string, shape: number[]) => leaf(path, name, "ReLU", "inplace=True", shape);
function avgPool2d(path: string, name: string, k: number, [N, C, H]: number[]): ModuleNode {
  const Ho = Math.floor(H / k);
  return leaf(path, name, "AvgPool2d", `kernel_size=${k}, stride=${k}, padding=0`, [N, C, Ho, Ho]);
}
function linear(path: string, name: string, inF: number, outF: number, rows: number[], type = "Linear"): ModuleNode {
  return leaf(path, name, type, `in_features=${inF}, out_features=${outF}, bias=True`, [...rows, outF], 2 * numel(rows) * inF * outF);
}
const layerNorm = (path: string, name: string, shape: number[]) =>
  leaf(path, name, "LayerNorm", `(${shape[shape.length - 1]},), eps=1e-05, elementwise_affine=True`, shape);

// ---- the modules of clip/model.py

function bottleneck(path: string, name: string, inplanes: number, planes: number, stride: number, N: number, H: number): ModuleNode {
  return node(path, name, "Bottleneck", (p) => {
    const c1 = conv2d(p, "conv1", inplanes, planes, 1, 1, 0, N, H);
    const c2 = conv2d(p, "conv2", planes, planes, 3, 1, 1, N, H);
    const pool = stride > 1 ? avgPool2d(p, "avgpool", stride, c2.shape) : leaf(p, "avgpool", "Identity", "", c2.shape);
    const Ho = pool.shape[2];
    const c3 = conv2d(p, "conv3", planes, planes * 4, 1, 1, 0, N, Ho);
    const out = [c1, batchNorm2d(p, "bn1", c1.shape), relu(p, "relu1", c1.shape), c2, batchNorm2d(p, "bn2", c2.shape),
      relu(p, "relu2", c2.shape), pool, c3, batchNorm2d(p, "bn3", c3.shape), relu(p, "relu3", c3.shape)];
    if (stride > 1 || inplanes !== planes * 4) {
      out.push(node(p, "downsample", "Sequential", (d) => [
        avgPool2d(d, "-1", stride, [N, inplanes, H, H]),
        conv2d(d, "0", inplanes, planes * 4, 1, 1, 0, N, Ho),
        batchNorm2d(d, "1", c3.shape),
      ]));
    }
    return out;
  }, (c) => c[9].shape);
}

function modifiedResNet(path: string, c: CLIPConfig, v: ResNetConfig, N: number): ModuleNode {
  const { layers, width } = v, R = c.imageResolution;
  const embed = width * 32;
  return node(path, "visual", "ModifiedResNet", (p) => {
    const out: ModuleNode[] = [];
    let x: number[] = [N, 3, R, R];
    [[3, width >> 1, 2], [width >> 1, width >> 1, 1], [width >> 1, width, 1]].forEach(([cin, cout, s], i) => {
      const conv = conv2d(p, `conv${i + 1}`, cin, cout, 3, s, 1, N, x[2]);
      out.push(conv, batchNorm2d(p, `bn${i + 1}`, conv.shape), relu(p, `relu${i + 1}`, conv.shape));
      x = conv.shape;
    });
    out.push(avgPool2d(p, "avgpool", 2, x));
    x = out[out.length - 1].shape;
    let inplanes = width;
    layers.forEach((blocks, i) => {
      const planes = width << i, stride = i === 0 ? 1 : 2;
      out.push(node(p, `layer${i + 1}`, "Sequential", (lp) => {
        const bs: ModuleNode[] = [];
        for (let b = 0; b < blocks; b++) {
          bs.push(bottleneck(lp, String(b), inplanes, planes, b === 0 ? stride : 1, N, x[2]));
          inplanes = planes * 4;
          x = bs[b].shape;
        }
        return bs;
      }));
    });
    const L = x[2] * x[3] + 1;
    const own = 2 * 2 * N * L * embed; // q·kᵀ and the weighted sum of v, for the one (mean) query
    out.push(node(p, "attnpool", "AttentionPool2d", (ap) => [
      linear(ap, "k_proj", embed, embed, [N, L]),
      linear(ap, "q_proj", embed, embed, [N, 1]),
      linear(ap, "v_proj", embed, embed, [N, L]),
      linear(ap, "c_proj", embed, c.embedDim, [N, 1]),
    ], () => [N, c.embedDim], own));
    return out;
  });
}

interface Mlp { hidden: number; act: MlpActivation }

function residualAttentionBlock(path: string, name: string, D: number, N: number, L: number, mlp: Mlp): ModuleNode {
  const x = [N, L, D];
  // in_proj (q, k, v) and the two attention products, which PyTorch computes in full even under a causal mask
  const attnFlops = 2 * N * L * D * 3 * D + 2 * 2 * N * L * L * D;
  return node(path, name, "ResidualAttentionBlock", (p) => [
    node(p, "attn", "MultiheadAttention", (a) => [linear(a, "out_proj", D, D, [N, L], "NonDynamicallyQuantizableLinear")], undefined, attnFlops),
    layerNorm(p, "ln_1", x),
    node(p, "mlp", "Sequential", (m) => [
      linear(m, "c_fc", D, mlp.hidden, [N, L]),
      leaf(m, "gelu", mlp.act === "gelu" ? "GELU" : "QuickGELU", mlp.act === "gelu" ? "approximate='none'" : "", [N, L, mlp.hidden]),
      linear(m, "c_proj", mlp.hidden, D, [N, L]),
    ]),
    layerNorm(p, "ln_2", x),
  ], () => x);
}

function transformer(path: string, name: string, D: number, layers: number, N: number, L: number, mlp: Mlp): ModuleNode {
  return node(path, name, "Transformer", (p) => [
    node(p, "resblocks", "Sequential", (r) => Array.from({ length: layers }, (_, i) => residualAttentionBlock(r, String(i), D, N, L, mlp)), () => [N, L, D]),
  ], () => [N, L, D]);
}

function visionTransformer(path: string, c: CLIPConfig, v: ViTConfig, N: number): ModuleNode {
  const P = v.patchSize, W = v.width, G = c.imageResolution / P, L = G * G + 1;
  return node(path, "visual", "VisionTransformer", (p) => [
    conv2d(p, "conv1", 3, W, P, P, 0, N, c.imageResolution),
    layerNorm(p, "ln_pre", [N, L, W]),
    transformer(p, "transformer", W, v.layers, N, L, { hidden: v.mlpWidth, act: v.activation }),
    layerNorm(p, "ln_post", [N, W]),
  ], () => [N, c.embedDim], 2 * N * W * c.embedDim /* x @ proj */);
}

/** The module tree of the reference CLIP for a configuration, for one image and one text. */
export function moduleTree(c: CLIPConfig): ModuleNode {
  const N = 1, L = c.contextLength, W = c.transformerWidth;
  const root = node("", "", "CLIP", (p) => [
    c.vision.kind === "resnet" ? modifiedResNet(p, c, c.vision, N) : visionTransformer(p, c, c.vision, N),
    transformer(p, "transformer", W, c.transformerLayers, N, L, { hidden: c.transformerMlpWidth, act: c.textActivation }),
    leaf(p, "token_embedding", "Embedding", `${c.vocabSize}, ${W}`, [N, L, W]),
    layerNorm(p, "ln_final", [N, L, W]),
  ], () => [N, N], 2 * N * W * c.embedDim /* @ text_projection */ + 2 * N * N * c.embedDim /* the logits */);
  return root;
}

export function subtreeFlops(n: ModuleNode): number {
  return n.children.reduce((s, c) => s + subtreeFlops(c), n.flops);
}

const BUFFER = /(^|\.)(running_mean|running_var)$/;

/** Parameters (not buffers) under a module path, from the checkpoint: PyTorch's sum of p.numel(). */
export function parameterCount(sd: StateDict, path: string): number {
  let n = 0;
  for (const [k, t] of sd) {
    if (Params.ignored.test(k) || BUFFER.test(k)) continue;
    if (path === "" || k.startsWith(`${path}.`) || k === path) n += numel(t.shape);
  }
  return n;
}

export function* walk(n: ModuleNode): Generator<ModuleNode> {
  yield n;
  for (const c of n.children) yield* walk(c);
}

/** Output shapes of the modules the model reports through its forward hook, for one image and one text. */
export function hookedShapes(model: CLIP): Map<string, number[]> {
  const c = model.config;
  const shapes = new Map<string, number[]>();
  const hook = (name: string, t: Tensor) => shapes.set(name, t.shape);
  model.encodeImage(tensor([1, 3, c.imageResolution, c.imageResolution]), hook);
  const ids = new Int32Array(c.contextLength);
  ids[0] = c.vocabSize - 2; // start and end of text, the end the highest id as in OpenAI's vocabulary
  ids[1] = c.vocabSize - 1;
  model.encodeText({ data: ids, shape: [1, c.contextLength] }, hook);
  return shapes;
}

export function formatCount(n: number): string {
  return n.toLocaleString("en-US");
}

export function formatFlops(n: number): string {
  if (n === 0) return "0";
  const units = ["", "k", "M", "G", "T", "P"];
  const i = Math.min(units.length - 1, Math.floor(Math.log10(n) / 3));
  const v = n / 10 ** (3 * i);
  return `${v.toPrecision(3)}${units[i] ? ` ${units[i]}` : ""}`;
}

/** The tree lines exactly as print(model), and the columns for each module's opening line. */
export function renderSummary(root: ModuleNode, sd: StateDict): string {
  const rows: [string, string, string, string][] = [];
  const emit = (n: ModuleNode, depth: number) => {
    const indent = "  ".repeat(depth);
    const head = `${indent}${n.name ? `(${n.name}): ` : ""}${n.type}(`;
    const cols: [string, string, string] = [shapeString(n.shape), formatCount(parameterCount(sd, n.path)), formatFlops(subtreeFlops(n))];
    if (n.extra !== null) {
      rows.push([...cols, `${head}${n.extra})`]);
      return;
    }
    rows.push([...cols, head]);
    for (const c of n.children) emit(c, depth + 1);
    rows.push(["", "", "", `${indent})`]);
  };
  emit(root, 0);
  const header: [string, string, string, string] = ["Output shape", "Params", "FLOPs", "Module"];
  const w = [0, 1, 2].map((i) => Math.max(header[i].length, ...rows.map((r) => r[i].length)));
  const line = (r: [string, string, string, string]) =>
    `${r[0].padEnd(w[0])}  ${r[1].padStart(w[1])}  ${r[2].padStart(w[2])}  ${r[3]}`.trimEnd();
  return [line(header), ...rows.map(line)].join("\n");
}

function describe(c: CLIPConfig): string {
  const heads = (h: number) => `${h} head${h === 1 ? "" : "s"}`;
  const act = (a: MlpActivation) => (a === "gelu" ? "GELU" : "QuickGELU");
  const v = c.vision;
  const vision = v.kind === "resnet"
    ? `ModifiedResNet ${c.imageResolution}px, layers (${v.layers.join(", ")}), width ${v.width}, attnpool ${heads(v.heads)}`
    : `VisionTransformer ${c.imageResolution}px, patch ${v.patchSize}, width ${v.width}, ${v.layers} layers, ${heads(v.heads)}, ${act(v.activation)}`;
  return `${vision}; text: context ${c.contextLength}, vocab ${c.vocabSize}, width ${c.transformerWidth}, ` +
    `${c.transformerLayers} layers, ${heads(c.transformerHeads)}, ${act(c.textActivation)}; embed_dim ${c.embedDim}`;
}

export const summary: Command = {
  name: "summary",
  summary: "the module tree (as PyTorch prints it) with output shapes, parameters and FLOPs",
  help: `Usage:
  clip-ts summary [--model FILE] [options]

Prints the reference CLIP's modules as PyTorch's print(model) names and nests them, with for each module: its
output shape for one image and one text (run through the model once; transformer outputs batch-first
[N, L, D], where PyTorch's hooks see [L, N, D]), its parameters (submodules included) and its FLOPs
(2 × the multiply-accumulates of convolutions, linears and attention products, submodules included; norms,
activations, pooling and additions are not counted).

Options:
${MODEL_HELP}`,

  async run(argv, io) {
    const { values } = parse(argv, MODEL_OPTIONS, false);
    if (values.help) return io.stdout.write(`${this.help}\n`);
    const { model, stateDict, path } = await openModel(io, values);
    try {
      const c = model.config;
      const root = moduleTree(c);
      const hooked = hookedShapes(model);
      for (const n of walk(root)) {
        const s = hooked.get(n.path);
        if (s) n.shape = s; // what the model produced, where it reports it
      }
      const visual = root.children[0], text = root.children[1];
      const textFlops = subtreeFlops(text) + 2 * c.transformerWidth * c.embedDim;
      io.stdout.write([
        `${path}: ${describe(c)}`,
        "",
        renderSummary(root, stateDict),
        "",
        `Total parameters: ${formatCount(parameterCount(stateDict, ""))} (visual ${formatCount(parameterCount(stateDict, "visual"))})`,
        `FLOPs: encode_image ${formatFlops(subtreeFlops(visual))} per image, encode_text ${formatFlops(textFlops)} per text of ${c.contextLength} tokens`,
        "",
      ].join("\n"));
    } finally {
      model.dispose();
    }
  },
};
