// Weights and inputs that used to load or run with a misleading error (hostile-input issue rows 4, 8, 9): each is
// refused at load or at the call, on both backends alike, with a message that names the real problem.
import { readFileSync } from "node:fs";
import { describe, expect, test } from "vitest";
import { readZip, writeZip } from "../fuzz/formats/zip.js";
import { loadModel } from "../src/clip.js";
import type { StateDict } from "../src/tensor.js";
import { loadStateDict, writeSafetensors } from "../src/weights/index.js";

const golden = (name: string) => loadStateDict(readFileSync(`test/golden/models/${name}/weights.safetensors`));
const bytes = (sd: StateDict) => writeSafetensors(sd, "F32");

function transposed(sd: StateDict, key: string): StateDict {
  const t = sd.get(key)!;
  const [r, c] = t.shape;
  const data = new Float32Array(r * c);
  for (let i = 0; i < r; i++) for (let j = 0; j < c; j++) data[j * r + i] = t.data[i * c + j];
  return new Map([...sd].map(([k, v]) => [k, k === key ? { data, shape: [c, r] } : v]));
}

describe.each(["ts", "wasm"] as const)("refused at load (%s)", (backend) => {
  // (a 32-wide tower, 0 heads of 64 by default, is refused in peers.test.ts on a real 32-wide open_clip tower)
  test("0 heads, or heads that do not divide the width", async () => {
    await expect(loadModel(bytes(golden("rn")), { backend, heads: { text: 0 } })).rejects.toThrow(/heads must be a positive integer/);
    await expect(loadModel(bytes(golden("vit")), { backend, heads: { text: 3 } })).rejects.toThrow(/text tower: 3 attention heads \(options\) do not divide the width 128/);
  });

  test("a transposed text_projection is named as such", async () => {
    const sd = golden("vit");
    await expect(loadModel(bytes(transposed(sd, "text_projection")), { backend })).rejects.toThrow(
      /text_projection has shape \[64, 128\], expected \[128 \(the text width\), embed_dim\]: it looks transposed/,
    );
  });

  test("stray blocks are named, not reported as a missing block", async () => {
    const sd = golden("vit");
    const t = sd.get("visual.transformer.resblocks.1.ln_1.weight")!;
    const stray = new Map([...sd, ["visual.transformer.resblocks.7.ln_1.weight", t]]);
    await expect(loadModel(bytes(stray), { backend })).rejects.toThrow(/visual\.transformer\.resblocks\.\*: blocks 7 found but not all of 0…7/);
  });

  test("maxBatch NaN, 0 or fractional is refused, not a limit turned off", async () => {
    for (const maxBatch of [NaN, 0, 2.5, -1]) {
      await expect(loadModel(bytes(golden("vit")), { backend, maxBatch })).rejects.toThrow(/maxBatch must be a positive integer/);
    }
  });
});

describe.each(["ts", "wasm"] as const)("refused at the call (%s)", (backend) => {
  test("a fractional or negative batch dimension", async () => {
    const model = await loadModel(bytes(golden("vit")), { backend, threads: 1 });
    try {
      expect(() => model.encodeImage({ data: new Float32Array(3 * 32 * 32), shape: [0.5, 3, 32, 32] })).toThrow(/encodeImage: pixels: shape \[0\.5, 3, 32, 32\] must be non-negative integers/);
      expect(() => model.encodeText({ data: new Int32Array(77), shape: [-1, 77] })).toThrow(/encodeText: token ids: shape \[-1, 77\] must be non-negative integers/);
    } finally {
      model.dispose();
    }
  });
});

describe.each(["ts", "wasm"] as const)("NaN and Inf pixels give NaN features, as in PyTorch (%s)", (backend) => {
  // torch.relu keeps NaN, and the attention pool's softmax over a NaN or all +Inf row is NaN (test/golden/nan)
  test("one NaN pixel, or every pixel +Inf, on the ResNet", async () => {
    const model = await loadModel(bytes(golden("rn")), { backend, threads: 2 });
    try {
      const r = model.config.imageResolution;
      for (const fill of [NaN, Infinity]) {
        const data = new Float32Array(3 * r * r).fill(Number.isNaN(fill) ? 0.1 : fill);
        if (Number.isNaN(fill)) data[5] = NaN;
        const out = model.encodeImage({ data, shape: [1, 3, r, r] });
        expect([...out.data].every(Number.isNaN), `fill ${fill}`).toBe(true);
      }
    } finally {
      model.dispose();
    }
  });
});

describe("a TorchScript archive is taken for OpenAI's only when its module is clip/model.py's", () => {
  test("the same weights scripted from another model's module: nothing said, so the defaults are marked assumed", async () => {
    const file = new Uint8Array(readFileSync("test/golden/models/vit/weights_torchscript.pt"));
    const openai = await loadModel(file, { backend: "ts" });
    expect(openai.config.sources.textActivation).toBe("OpenAI's model (TorchScript archive)");
    openai.dispose();
    // open_clip's jit export is scripted from open_clip.model (GELU): rename the module in every class reference
    const rename = (b: Uint8Array) => Buffer.from(Buffer.from(b).toString("latin1").replaceAll("__torch__.clip.model", "__torch__.open.model"), "latin1");
    const other = writeZip(readZip(file).map((e) => (e.name.endsWith(".pkl") ? { ...e, data: new Uint8Array(rename(e.data)) } : e))).bytes;
    const model = await loadModel(other, { backend: "ts" });
    expect(Object.values(model.config.sources)).toEqual(Array(6).fill("assumed"));
    model.dispose();
  });
});
