// Parameter names: everything is brought to the names of clip/model.py (OpenAI), which model loading expects.
// Hugging Face transformers' CLIPModel (modeling_clip.py, ViT vision tower only) is renamed and re-laid out here.
import type { StateDict, Tensor } from "../tensor.js";
import { WeightsError } from "./errors.js";

type Entry = Tensor & { dtype?: string };

/** Hyper-parameters some checkpoints store as tensors; clip.py's build_model discards them too. */
const NON_WEIGHT_KEYS = new Set(["input_resolution", "context_length", "vocab_size"]);

export function isHuggingFaceClip(sd: StateDict): boolean {
  for (const k of sd.keys()) if (k.startsWith("text_model.") || k.startsWith("vision_model.")) return true;
  return false;
}

/** [a, b] → [b, a]: HF stores projections as nn.Linear weights, OpenAI as the matrix that right-multiplies. */
function transpose(t: Entry, name: string): Entry {
  if (t.shape.length !== 2) throw new WeightsError(`keys: "${name}" should be 2-D, has shape [${t.shape.join(", ")}]`);
  const [r, c] = t.shape as [number, number];
  const out = new Float32Array(r * c);
  for (let i = 0; i < r; i++) for (let j = 0; j < c; j++) out[j * r + i] = t.data[i * c + j]!;
  return { data: out, shape: [c, r], dtype: t.dtype };
}

const LAYER_PARTS: ReadonlyMap<string, string> = new Map([
  ["self_attn.out_proj.weight", "attn.out_proj.weight"],
  ["self_attn.out_proj.bias", "attn.out_proj.bias"],
  ["layer_norm1.weight", "ln_1.weight"],
  ["layer_norm1.bias", "ln_1.bias"],
  ["layer_norm2.weight", "ln_2.weight"],
  ["layer_norm2.bias", "ln_2.bias"],
  ["mlp.fc1.weight", "mlp.c_fc.weight"],
  ["mlp.fc1.bias", "mlp.c_fc.bias"],
  ["mlp.fc2.weight", "mlp.c_proj.weight"],
  ["mlp.fc2.bias", "mlp.c_proj.bias"],
]);

const TOP_LEVEL: ReadonlyMap<string, string> = new Map([
  ["text_model.embeddings.token_embedding.weight", "token_embedding.weight"],
  ["text_model.embeddings.position_embedding.weight", "positional_embedding"],
  ["text_model.final_layer_norm.weight", "ln_final.weight"],
  ["text_model.final_layer_norm.bias", "ln_final.bias"],
  ["vision_model.embeddings.class_embedding", "visual.class_embedding"],
  ["vision_model.embeddings.patch_embedding.weight", "visual.conv1.weight"],
  ["vision_model.embeddings.position_embedding.weight", "visual.positional_embedding"],
  // "pre_layrnorm" is HF's spelling.
  ["vision_model.pre_layrnorm.weight", "visual.ln_pre.weight"],
  ["vision_model.pre_layrnorm.bias", "visual.ln_pre.bias"],
  ["vision_model.post_layernorm.weight", "visual.ln_post.weight"],
  ["vision_model.post_layernorm.bias", "visual.ln_post.bias"],
  ["logit_scale", "logit_scale"],
]);

const TRANSPOSED: ReadonlyMap<string, string> = new Map([
  ["text_projection.weight", "text_projection"],
  ["visual_projection.weight", "visual.proj"],
]);

const LAYER_RE = /^(text_model|vision_model)\.encoder\.layers\.(\d+)\.(.+)$/;
const QKV_RE = /^self_attn\.([qkv])_proj\.(weight|bias)$/;

/** Rename a Hugging Face CLIPModel state dict to OpenAI names, merging q/k/v into in_proj (q, k, v order). */
export function hfToOpenAI(sd: StateDict): StateDict {
  const out: StateDict = new Map();
  const qkv = new Map<string, Partial<Record<"q" | "k" | "v", Entry>>>();
  const put = (name: string, t: Entry, from: string): void => {
    if (out.has(name)) throw new WeightsError(`keys: "${from}" maps to "${name}", which is already set`);
    out.set(name, t);
  };
  for (const [k, t] of sd) {
    if (k.endsWith(".position_ids")) continue; // an index buffer (arange), not a weight
    const renamed = TOP_LEVEL.get(k);
    if (renamed !== undefined) {
      put(renamed, t, k);
      continue;
    }
    const transposed = TRANSPOSED.get(k);
    if (transposed !== undefined) {
      put(transposed, transpose(t, k), k);
      continue;
    }
    const m = LAYER_RE.exec(k);
    if (m) {
      const base = `${m[1] === "vision_model" ? "visual." : ""}transformer.resblocks.${m[2]}.`;
      const part = m[3]!;
      const layerPart = LAYER_PARTS.get(part);
      if (layerPart !== undefined) {
        put(base + layerPart, t, k);
        continue;
      }
      const q = QKV_RE.exec(part);
      if (q) {
        const target = `${base}attn.in_proj_${q[2]}`;
        const slot = qkv.get(target) ?? {};
        slot[q[1] as "q" | "k" | "v"] = t;
        qkv.set(target, slot);
        continue;
      }
    }
    throw new WeightsError(`keys: unrecognised Hugging Face CLIP parameter "${k}"`);
  }
  for (const [target, { q, k, v }] of qkv) {
    if (!q || !k || !v) throw new WeightsError(`keys: "${target}" needs q_proj, k_proj and v_proj; some are missing`);
    const rest = q.shape.slice(1).join(",");
    const sameRank = k.shape.length === q.shape.length && v.shape.length === q.shape.length;
    if (q.shape.length === 0 || !sameRank || k.shape.slice(1).join(",") !== rest || v.shape.slice(1).join(",") !== rest) {
      throw new WeightsError(`keys: q/k/v projections for "${target}" have mismatched shapes`);
    }
    const data = new Float32Array(q.data.length + k.data.length + v.data.length);
    data.set(q.data, 0);
    data.set(k.data, q.data.length);
    data.set(v.data, q.data.length + k.data.length);
    put(target, { data, shape: [q.shape[0]! + k.shape[0]! + v.shape[0]!, ...q.shape.slice(1)], dtype: q.dtype }, target);
  }
  return out;
}

/**
 * OpenAI names whatever the source: strips DataParallel's "module." prefix, drops stored
 * hyper-parameters, and converts Hugging Face naming when detected.
 */
export function normaliseKeys(sd: StateDict): StateDict {
  const out: StateDict = new Map();
  for (const [k, t] of sd) {
    const name = k.startsWith("module.") ? k.slice("module.".length) : k;
    if (NON_WEIGHT_KEYS.has(name)) continue;
    if (out.has(name)) throw new WeightsError(`keys: "${k}" collides with another parameter once its "module." prefix is removed`);
    out.set(name, t);
  }
  if (isHuggingFaceClip(out)) return hfToOpenAI(out);
  return out.has("text.token_embedding.weight") && !out.has("token_embedding.weight") ? openClipCustomText(out) : out;
}

/** open_clip's CustomTextCLIP (custom_text: true) keeps the text tower under "text."; its names are otherwise OpenAI's. */
function openClipCustomText(sd: StateDict): StateDict {
  const out: StateDict = new Map();
  for (const [k, t] of sd) {
    const name = k.startsWith("text.") ? k.slice("text.".length) : k;
    if (out.has(name)) throw new WeightsError(`keys: "${k}" collides with another parameter once its "text." prefix is removed`);
    out.set(name, t);
  }
  return out;
}
