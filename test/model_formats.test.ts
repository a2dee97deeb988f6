import { readFileSync } from "node:fs";
import { describe, expect, test } from "vitest";
import { TsBackend } from "../src/backend/ts.js";
import { loadModel } from "../src/clip.js";
import { buildModel, type VisionTransformer } from "../src/model.js";
import { loadStateDictWithFormat } from "../src/weights/index.js";
import { agreement, expectBits, goldenDir, npy, npyTokens } from "./helpers/golden.js";

// The same weights written by the reference in each format must give the same bits through clip-ts.
describe("every weight format gives the same model", () => {
  const dir = goldenDir("vit");
  const pixels = npy(`${dir}/pixels.npy`), tokens = npyTokens(`${dir}/tokens.npy`);
  const formats = [
    ["weights.safetensors", "safetensors"],
    ["weights_state_dict.pt", "torch-zip"],
    ["weights_torchscript.pt", "torchscript"],
  ] as const;
  const outputs = formats.map(([file, format]) => {
    const loaded = loadStateDictWithFormat(readFileSync(`${dir}/${file}`));
    const model = buildModel(loaded.stateDict, new TsBackend());
    return { file, format, detected: loaded.format, ...model.forward(pixels, tokens), image: model.encodeImage(pixels), text: model.encodeText(tokens) };
  });

  for (const o of outputs) {
    test(`${o.file} is detected as ${o.format} and agrees with PyTorch`, () => {
      expect(o.detected).toBe(o.format);
      for (const [what, t] of [["encode_image", o.image], ["encode_text", o.text], ["logits_per_image", o.logitsPerImage]] as const) {
        const a = agreement(t, npy(`${dir}/${what}.npy`));
        console.log(`vit ${o.file} ${what}: max abs ${a.maxAbs.toExponential(2)}, max rel ${a.maxRel.toExponential(2)}`);
        expect(a.ok).toBe(true);
      }
    });
  }

  test("the three formats give bit-identical outputs", () => {
    for (const o of outputs.slice(1)) {
      expectBits(o.image.data, outputs[0].image.data, o.file);
      expectBits(o.text.data, outputs[0].text.data, o.file);
      expectBits(o.logitsPerImage.data, outputs[0].logitsPerImage.data, o.file);
    }
  });
});

// OpenAI's checkpoints mix fp16 and fp32 (the reference convert_weights); PyTorch ran the same fp16 weights
// upcast to fp32 for fp16/*.npy.
for (const name of ["vit", "rn"]) {
  test(`${name}: fp16 weights agree with PyTorch on the same fp16 weights`, async () => {
    const dir = goldenDir(name);
    const model = await loadModel(`${dir}/weights_fp16.pt`, { backend: "ts" });
    const pixels = npy(`${dir}/pixels.npy`), tokens = npyTokens(`${dir}/tokens.npy`);
    const { logitsPerImage } = model.forward(pixels, tokens);
    for (const [what, t] of [["encode_image", model.encodeImage(pixels)], ["encode_text", model.encodeText(tokens)], ["logits_per_image", logitsPerImage]] as const) {
      const a = agreement(t, npy(`${dir}/fp16/${what}.npy`));
      console.log(`${name} fp16 ${what}: max abs ${a.maxAbs.toExponential(2)}, max rel ${a.maxRel.toExponential(2)}`);
      expect(a.ok).toBe(true);
      // and they really differ from the fp32 goldens, so this tests the fp16 path
      expect(agreement(t, npy(`${dir}/${what}.npy`)).ok).toBe(false);
    }
  });
}

// A checkpoint is held once while loading: aligned F32 tensors are views of its bytes, and what the model keeps in
// JavaScript afterwards is copied out of them, so the file's buffer can be freed once the backend has its weights.
describe("loading does not copy the checkpoint twice, nor keep it", () => {
  const dir = goldenDir("vit");
  const bytes = new Uint8Array(readFileSync(`${dir}/weights.safetensors`));
  const { stateDict } = loadStateDictWithFormat(bytes);

  test("aligned F32 tensors of a safetensors file are views of its buffer", () => {
    const views = [...stateDict.values()].filter((t) => t.data.buffer === bytes.buffer);
    expect(views.length).toBe(stateDict.size);
  });

  test("a misaligned F32 tensor is copied (typed arrays need alignment), bit for bit", () => {
    const shifted = new Uint8Array(bytes.length + 1);
    shifted.set(bytes, 1);
    const copied = loadStateDictWithFormat(shifted.subarray(1)).stateDict;
    expect([...copied.values()].filter((x) => x.data.buffer === shifted.buffer)).toEqual([]);
    for (const [key, t] of stateDict) {
      expect(new Uint32Array(copied.get(key)!.data.slice().buffer)).toEqual(new Uint32Array(t.data.slice().buffer));
    }
  });

  test("the model's own tensors (embeddings, layer norms) are not views of the checkpoint", () => {
    const model = buildModel(stateDict, new TsBackend());
    const visual = model.visual as VisionTransformer; // the ViT golden
    const kept = [
      model.token_embedding, model.positional_embedding, model.ln_final.weight,
      visual.class_embedding, visual.positional_embedding, visual.ln_pre.bias,
    ];
    for (const t of kept) expect(t.data.buffer).not.toBe(bytes.buffer);
    expect(kept[0].data).toEqual(stateDict.get("token_embedding.weight")!.data);
  });
});
