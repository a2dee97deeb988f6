// The benchmarked models: their published configuration (test/golden/configs/, written from the reference),
// where the exported ONNX towers and weights live, and the analytic FLOP count of each forward pass.

import { existsSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

/** The project root: this file runs as dist/bench/models.js. */
export const ROOT = resolve(fileURLToPath(new URL(".", import.meta.url)), "..", "..");
/** Where tools/onnx/export_onnx.py writes (its --out), or $CLIP_TS_BENCH_CACHE for both. */
export const CACHE_DIR = process.env.CLIP_TS_BENCH_CACHE ? resolve(process.env.CLIP_TS_BENCH_CACHE) : join(ROOT, ".cache", "onnx");

/** build_model's hyper-parameters, as the reference names them. */
export interface RefConfig {
  embed_dim: number;
  image_resolution: number;
  vision_layers: number | [number, number, number, number];
  vision_width: number;
  vision_patch_size: number | null;
  context_length: number;
  vocab_size: number;
  transformer_width: number;
  transformer_heads: number;
  transformer_layers: number;
}

/** [key, shape, dtype, dtype after convert_weights] for every state-dict entry of the reference model. */
export type StateDictSpec = [string, number[], string, string][];

export interface ModelSpec {
  /** the CLI name: rn50, vit-b-32 */
  id: string;
  /** the OpenAI name: RN50, ViT-B/32 */
  name: string;
  config: RefConfig;
  stateDict: StateDictSpec;
  files: { weights: string; image: string; text: string; imageQ8: string; textQ8: string };
}

export const MODEL_IDS: Record<string, string> = { "rn50": "RN50", "vit-b-32": "ViT-B/32" };

export function loadSpec(id: string): ModelSpec {
  const name = MODEL_IDS[id];
  if (!name) throw new Error(`unknown model "${id}" (expected one of ${Object.keys(MODEL_IDS).join(", ")})`);
  const stem = name.replace(/[/@]/g, "-"); // as tools/onnx/export_onnx.py names its files
  const json = JSON.parse(readFileSync(join(ROOT, "test", "golden", "configs", `${stem}.json`), "utf8")) as {
    config: RefConfig;
    state_dict: StateDictSpec;
  };
  const file = (ext: string) => join(CACHE_DIR, stem + ext);
  return {
    id, name, config: json.config, stateDict: json.state_dict,
    files: {
      weights: file(".safetensors"), image: file(".image.onnx"), text: file(".text.onnx"),
      imageQ8: file(".image.q8.onnx"), textQ8: file(".text.q8.onnx"), // tools/onnx/quantize_q8.py
    },
  };
}

export function present(path: string): boolean {
  return existsSync(path);
}

// FLOPs = 2 × multiply-accumulates of the convolutions, linears and attention matmuls (QKᵀ and AV, counted dense:
// the text tower's causal mask does not halve them here, as the reference and ONNX Runtime compute the full
// square). Norms, activations, softmax, pooling and embedding lookups are left out: they are < 1 % of the total.

function conv(outC: number, inC: number, k: number, outHW: number): number {
  return outC * inC * k * k * outHW * outHW;
}

/** MACs of one residual attention block on L tokens of width W (self-attention over the same L). */
function block(L: number, W: number): number {
  return 4 * L * W * W + 8 * L * W * W + 2 * L * L * W; // q, k, v, out; c_fc, c_proj; QKᵀ, AV
}

function resnetMacs(c: RefConfig): number {
  const layers = c.vision_layers as number[];
  const w = c.vision_width;
  let hw = c.image_resolution / 2;
  let macs = conv(w / 2, 3, 3, hw) + conv(w / 2, w / 2, 3, hw) + conv(w, w / 2, 3, hw);
  hw /= 2; // the stem's avgpool
  let inplanes = w;
  layers.forEach((blocks, i) => {
    const planes = w << i;
    for (let b = 0; b < blocks; b++) {
      const stride = b === 0 && i > 0 ? 2 : 1;
      const out = hw / stride;
      macs += conv(planes, inplanes, 1, hw) + conv(planes, planes, 3, hw) + conv(planes * 4, planes, 1, out);
      if (stride > 1 || inplanes !== planes * 4) macs += conv(planes * 4, inplanes, 1, out);
      inplanes = planes * 4;
      hw = out;
    }
  });
  const E = w * 32, L = hw * hw + 1;
  // attention pooling: the mean token is the only query
  return macs + E * E + 2 * L * E * E + 2 * L * E + E * c.embed_dim;
}

function vitMacs(c: RefConfig): number {
  const p = c.vision_patch_size!, W = c.vision_width, grid = c.image_resolution / p, L = grid * grid + 1;
  return conv(W, 3, p, grid) + (c.vision_layers as number) * block(L, W) + W * c.embed_dim;
}

/** FLOPs of encode_image for one image. */
export function imageFlops(c: RefConfig): number {
  return 2 * (Array.isArray(c.vision_layers) ? resnetMacs(c) : vitMacs(c));
}

/** FLOPs of encode_text for one row (always context_length tokens: the reference pads, never truncates). */
export function textFlops(c: RefConfig): number {
  return 2 * (c.transformer_layers * block(c.context_length, c.transformer_width) + c.transformer_width * c.embed_dim);
}
