import { readFileSync, readdirSync } from "node:fs";
import { describe, expect, test } from "vitest";
import { buildModel, inferConfig } from "../src/model.js";
import { StateDictError } from "../src/nn.js";
import { numel } from "../src/tensor.js";
import { RecordingBackend, shapeOnlyStateDict } from "./helpers/shape_only.js";

// Key names and shapes of the nine OpenAI checkpoints, dumped from the reference CLIP by tools/golden.
const dir = "test/golden/configs";
const configs = readdirSync(dir).filter((f) => f.endsWith(".json")).map((f) => JSON.parse(readFileSync(`${dir}/${f}`, "utf8"))).filter((c) => c.state_dict);
const isBuffer = (k: string) => /running_(mean|var)$|num_batches_tracked$/.test(k);

describe("buildModel infers every OpenAI configuration from key names and shapes", () => {
  test("all nine are present", () => expect(configs.map((c) => c.name).sort()).toEqual(
    ["RN101", "RN50", "RN50x16", "RN50x4", "RN50x64", "ViT-B/16", "ViT-B/32", "ViT-L/14", "ViT-L/14@336px"],
  ));

  for (const c of configs) {
    test(c.name, () => {
      const entries = [...c.state_dict, ...Object.keys(c.checkpoint_extra_keys).map((k) => [k, []])];
      const sd = shapeOnlyStateDict(entries);
      const r = c.config;
      expect(inferConfig(sd)).toMatchObject({
        embedDim: r.embed_dim, imageResolution: r.image_resolution,
        vision: Array.isArray(r.vision_layers)
          ? { kind: "resnet", layers: r.vision_layers, width: r.vision_width, heads: c.vision_heads ?? r.vision_width / 2 }
          : {
            kind: "vit", layers: r.vision_layers, width: r.vision_width, patchSize: r.vision_patch_size,
            heads: c.vision_heads ?? r.vision_width / 64, activation: "quickgelu", eps: 1e-5, mlpWidth: 4 * r.vision_width,
          },
        contextLength: r.context_length,
        vocabSize: r.vocab_size, transformerWidth: r.transformer_width, transformerHeads: r.transformer_heads,
        transformerLayers: r.transformer_layers, transformerMlpWidth: 4 * r.transformer_width,
        textActivation: "quickgelu", textEps: 1e-5, textPoolTokenId: null,
      });
      // the ResNet has no MLP and no LayerNorm: no activation, eps or MLP width to carry
      if (Array.isArray(r.vision_layers)) expect(Object.keys(inferConfig(sd).vision).sort()).toEqual(["heads", "kind", "layers", "width"]);
      // nothing but the weights: every setting they cannot tell is marked assumed
      // (a ResNet's vision tower has no activation or eps for a source to tell: those two are not listed)
      const sources = inferConfig(sd).sources;
      expect(Object.keys(sources).sort()).toEqual([
        "textActivation", "textEps", "transformerHeads", ...(Array.isArray(r.vision_layers) ? [] : ["visionActivation", "visionEps"]), "visionHeads",
      ].sort());
      expect(new Set(Object.values(sources))).toEqual(new Set(["assumed"]));
      // every key consumed with the expected shape, none left over
      const backend = new RecordingBackend();
      buildModel(sd, backend);
      const params = c.state_dict.filter(([k]: [string]) => !isBuffer(k)).reduce((s: number, [, shape]: [string, number[]]) => s + numel(shape), 0);
      expect(params).toBe(c.num_params);
      if (c.name === "ViT-B/32") expect(params).toBe(151_277_313);
      if (c.name === "RN50") expect(params).toBe(102_007_137);
    });
  }
});

describe("state dict errors name the key", () => {
  const vit = configs.find((c) => c.name === "ViT-B/32");
  test("missing key", () => {
    const sd = shapeOnlyStateDict(vit.state_dict.filter(([k]: [string]) => k !== "transformer.resblocks.3.ln_2.bias"));
    expect(() => buildModel(sd, new RecordingBackend())).toThrow(/missing key "transformer\.resblocks\.3\.ln_2\.bias" \(expected shape \[512\]\)/);
  });
  test("wrong shape", () => {
    const sd = shapeOnlyStateDict(vit.state_dict.map(([k, s]: [string, number[]]) => [k, k === "visual.ln_post.weight" ? [767] : s]));
    expect(() => buildModel(sd, new RecordingBackend())).toThrow(/"visual\.ln_post\.weight": expected shape \[768\], found \[767\]/);
  });
  test("unexpected key", () => {
    const sd = shapeOnlyStateDict([...vit.state_dict, ["visual.extra.weight", [3]]]);
    expect(() => buildModel(sd, new RecordingBackend())).toThrow(StateDictError);
    expect(() => buildModel(sd, new RecordingBackend())).toThrow(/unexpected key "visual\.extra\.weight"/);
  });
  test("a key inference needs", () => {
    const sd = shapeOnlyStateDict(vit.state_dict.filter(([k]: [string]) => k !== "ln_final.weight"));
    expect(() => buildModel(sd, new RecordingBackend())).toThrow(/missing key "ln_final\.weight"/);
  });
});

describe("limits", () => {
  test("a batch over maxBatch is refused before anything is allocated", async () => {
    const { loadModel } = await import("../src/clip.js");
    const model = await loadModel("test/golden/models/vit/weights.safetensors", { backend: "ts", maxBatch: 2 });
    expect(() => model.encodeImage({ data: new Float32Array(3 * 3 * 32 * 32), shape: [3, 3, 32, 32] })).toThrow(
      /encodeImage: a batch of 3 images is more than the limit of 2 \(maxBatch\)/,
    );
    expect(() => model.encodeText({ data: new Int32Array(3 * 77), shape: [3, 77] })).toThrow(/a batch of 3 token rows .* \(maxBatch\)/);
    await expect(loadModel("test/golden/models/vit/weights.safetensors", { backend: "ts", maxTensorBytes: 1000 })).rejects.toThrow(/maxTensorBytes/);
  });
});
