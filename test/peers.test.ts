// Checkpoints saved by the peers themselves (Hugging Face transformers 5.18, open_clip 3.3.0; made by
// tools/golden/make_peer_goldens.py): each loads with the settings its config says and matches the peer's own
// outputs, or is refused with an error naming why. Nothing here is re-typed from the peers' code.
import { readdirSync, readFileSync } from "node:fs";
import { describe, expect, test } from "vitest";
import { loadModel, type LoadOptions } from "../src/clip.js";
import { assumedSettings } from "../src/config.js";
import type { CLIP } from "../src/model.js";
import { readNpy } from "../src/npy.js";
import { agreement, npy as golden } from "./helpers/golden.js";

const ROOT = "test/golden/peers";
const manifest = (c: string) => JSON.parse(readFileSync(`${ROOT}/${c}/manifest.json`, "utf8"));
const npy = (path: string) => readNpy(readFileSync(path));
const modelCfg = (c: string) => JSON.parse(readFileSync(`${ROOT}/${c}/model_cfg.json`, "utf8"));

function features(model: CLIP, c: string): { image: number; text: number } {
  const pixels = npy(`${ROOT}/${c}/pixels.npy`);
  const tokens = npy(`${ROOT}/${c}/tokens.npy`);
  const image = model.encodeImage({ data: pixels.data as Float32Array, shape: pixels.shape });
  const text = model.encodeText({ data: tokens.data as BigInt64Array, shape: tokens.shape });
  // max|a − b| / max|b|, the README's measure
  return { image: agreement(image, golden(`${ROOT}/${c}/image_features.npy`)).maxRel, text: agreement(text, golden(`${ROOT}/${c}/text_features.npy`)).maxRel };
}

const act = (a: string) => (a === "quick_gelu" ? "quickgelu" : a);

/** The settings clip-ts inferred are the ones the peer built the model with. */
function expectSettings(model: CLIP, c: string): void {
  const e = manifest(c).expect;
  const cfg = model.config;
  expect(cfg.embedDim).toBe(e.embed_dim);
  expect(cfg.transformerHeads).toBe(e.text.heads);
  expect(cfg.textActivation).toBe(act(e.text.activation));
  expect(cfg.textEps).toBe(e.text.ln_eps);
  expect(cfg.transformerMlpWidth).toBe(e.text.mlp_width);
  if (e.arch === "rn") {
    expect(cfg.vision).toMatchObject({ kind: "resnet", heads: e.vision.attnpool_heads });
  } else {
    expect(cfg.vision).toMatchObject({
      kind: "vit", heads: e.vision.heads, activation: act(e.vision.activation), eps: e.vision.ln_eps, mlpWidth: e.vision.mlp_width,
    });
  }
  expect(cfg.textPoolTokenId).toBe(e.text.pool.type === "eos" ? e.text.pool.eos_token_id : null);
  expect(assumedSettings(cfg), "nothing assumed when the config says").toEqual([]);
}

// [case, what is loaded, options, a label]
const LOADS: [string, string, LoadOptions, string][] = [
  ["hf_quickgelu_h64", "", {}, "save_pretrained folder (quick_gelu, 64-wide heads)"],
  ["hf_gelu_h32", "", {}, "save_pretrained folder (gelu, 32-wide heads, eps 1e-6, pooled at eos_token_id)"],
  ["hf_gelu_h32", "model.safetensors", {}, "its model.safetensors: config.json beside it is read"],
  ["hf_gelu_bin", "", {}, "pytorch_model.bin + config.json"],
  ["hf_sharded", "", {}, "3 shards through model.safetensors.index.json (folder)"],
  ["hf_sharded", "model.safetensors.index.json", {}, "the index file itself"],
  ["hf_fp16", "", {}, "fp16 safetensors"],
  ["oc_vit_gelu", "hf", {}, "open_clip folder: open_clip_config.json + open_clip_model.safetensors"],
  ["oc_vit_gelu", "model.pt", { config: "model_cfg" }, "torch.save state dict + its model config as options.config"],
  ["oc_vit_gelu", "model.safetensors", { activation: "gelu", heads: { vision: 2, text: 1 } }, "safetensors + explicit activation and heads"],
  ["oc_vit_quickgelu", "hf", {}, "open_clip folder with open_clip_pytorch_model.bin (quick_gelu)"],
  ["oc_rn_gelu", "model.safetensors", { config: "model_cfg" }, "ModifiedResNet + GELU text tower"],
  ["oc_train_ckpt", "epoch_1.pt", { config: "model_cfg" }, "open_clip training checkpoint (module. prefix, optimizer)"],
];

describe("peer checkpoints load with their own settings and match the peer ≤ 1e-5", () => {
  for (const [c, file, opts, label] of LOADS) {
    for (const backend of ["wasm", "ts"] as const) {
      test(`${c}: ${label} (${backend})`, async () => {
        const options: LoadOptions = { ...opts, backend, threads: 2 };
        if (opts.config === "model_cfg") options.config = modelCfg(c);
        if (opts.heads) expect(opts.heads).toEqual({ vision: manifest(c).expect.vision.heads, text: manifest(c).expect.text.heads });
        const model = await loadModel(`${ROOT}/${c}/${file}`, options);
        try {
          if (!opts.activation) expectSettings(model, c);
          const err = features(model, c);
          console.log(`${c} ${file || "(folder)"} ${backend}: encode_image ${err.image.toExponential(2)}, encode_text ${err.text.toExponential(2)}`);
          expect(err.image).toBeLessThanOrEqual(1e-5);
          expect(err.text).toBeLessThanOrEqual(1e-5);
        } finally {
          model.dispose();
        }
      });
    }
  }

  test("every golden case is exercised", () => {
    const golden = readdirSync(ROOT).filter((c) => manifest(c).kind === "golden");
    expect(new Set(LOADS.map(([c]) => c))).toEqual(new Set(golden));
  });
});

describe("open_clip's CustomTextCLIP layout (custom_text: the text tower under \"text.\")", () => {
  test("the same model, the same features", async () => {
    const { loadStateDict, writeSafetensors } = await import("../src/weights/index.js");
    const sd = loadStateDict(readFileSync(`${ROOT}/oc_vit_gelu/model.safetensors`), { rawKeys: true });
    const text = /^(token_embedding|positional_embedding|transformer\.|ln_final|text_projection)/;
    const renamed = new Map([...sd].map(([k, t]) => [text.test(k) ? `text.${k}` : k, t]));
    expect([...renamed.keys()].some((k) => k.startsWith("text.transformer."))).toBe(true);
    const model = await loadModel(writeSafetensors(renamed, "F32"), { backend: "wasm", config: { ...modelCfg("oc_vit_gelu"), custom_text: true } });
    try {
      const err = features(model, "oc_vit_gelu");
      expect(Math.max(err.image, err.text)).toBeLessThanOrEqual(1e-5);
    } finally {
      model.dispose();
    }
  });
});

describe("never silently wrong", () => {
  test("GELU weights with nothing saying their activation: the default is marked assumed, and it is wrong here", async () => {
    const model = await loadModel(`${ROOT}/oc_vit_gelu/model.safetensors`, { backend: "wasm", threads: 1, heads: { vision: 2, text: 1 } });
    try {
      expect(model.config.sources.textActivation).toBe("assumed");
      expect(assumedSettings(model.config)).toEqual(["activation QuickGELU (vision), QuickGELU (text)", "layer-norm eps 1e-5 (vision, text)"]);
      expect(features(model, "oc_vit_gelu").image).toBeGreaterThan(1e-3);
    } finally {
      model.dispose();
    }
  });

  test("gelu_new (the tanh approximation) is refused by name, in whichever tower", async () => {
    await expect(loadModel(`${ROOT}/hf_gelu_new`, { backend: "ts" })).rejects.toThrow(/config\.json: text_config\.hidden_act: activation "gelu_new" is not supported/);
  });

  test("a head count that does not divide the width, or 0 heads, is refused at load on both backends", async () => {
    for (const backend of ["ts", "wasm"] as const) {
      await expect(loadModel(`${ROOT}/oc_vit_gelu/model.safetensors`, { backend, heads: { vision: 3 } })).rejects.toThrow(/vision tower: 3 attention heads \(options\) do not divide the width 64/);
      // the text tower is 32 wide: 64-wide heads would be 0 heads, which the reference's build_model refuses too
      await expect(loadModel(`${ROOT}/oc_vit_gelu/model.safetensors`, { backend, activation: "gelu", heads: { vision: 2 } })).rejects.toThrow(/text tower: 0 attention heads \(width \/ 64\) for width 32.*give the head count/);
    }
  });

  test("explicit options win over the file's config; model.config.sources says where each came from", async () => {
    const model = await loadModel(`${ROOT}/hf_gelu_h32`, { backend: "ts", activation: { text: "quickgelu" } });
    try {
      expect(model.config.sources).toMatchObject({ textActivation: "options", visionActivation: "config.json", visionEps: "config.json" });
      expect(model.config.textActivation).toBe("quickgelu");
      expect(features(model, "hf_gelu_h32").text).toBeGreaterThan(1e-3);
    } finally {
      model.dispose();
    }
  });

  test("an unknown option is refused, not ignored", async () => {
    await expect(loadModel(`${ROOT}/hf_gelu_h32`, { quantization: "int8" } as LoadOptions)).rejects.toThrow(/unknown option "quantization"/);
  });
});
