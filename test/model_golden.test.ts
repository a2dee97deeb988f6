import { readFileSync } from "node:fs";
import { describe, expect, test } from "vitest";
import { TsBackend } from "../src/backend/ts.js";
import { buildModel, ModifiedResNet, VisionTransformer } from "../src/model.js";
import { Params } from "../src/nn.js";
import type { Tensor } from "../src/tensor.js";
import { parseSafetensors } from "../src/weights/safetensors.js";
import { agreement, expectBits, goldenDir, lndToNld, npy, npyTokens } from "./helpers/golden.js";

// Every module's output against the reference's, captured by forward hooks in tools/golden/make_model_goldens.py.
for (const name of ["vit", "rn"]) {
  describe(`${name}: the readable TypeScript path against PyTorch`, () => {
    const dir = goldenDir(name);
    const manifest = JSON.parse(readFileSync(`${dir}/manifest.json`, "utf8"));
    const model = buildModel(parseSafetensors(readFileSync(`${dir}/weights.safetensors`)), new TsBackend());
    const acts = new Map<string, Tensor>();
    const hook = (n: string, t: Tensor) => acts.set(n, t);
    const image = model.encodeImage(npy(`${dir}/pixels.npy`), hook);
    const text = model.encodeText(npyTokens(`${dir}/tokens.npy`), hook);

    for (const m of manifest.modules as { name: string; path: string; layout: string }[]) {
      test(m.name, () => {
        const expected = npy(`${dir}/${m.path}`);
        const actual = acts.get(m.name);
        expect(actual, `no output hooked for ${m.name}`).toBeDefined();
        const a = agreement(actual!, m.layout === "LND" ? lndToNld(expected) : expected);
        console.log(`${name} ${m.name}: max abs ${a.maxAbs.toExponential(2)}, max rel ${a.maxRel.toExponential(2)}`);
        expect(a.ok).toBe(true);
      });
    }

    test("computing only what reaches the output (no hook) gives the same bits as the full forward", () => {
      expectBits(model.encodeImage(npy(`${dir}/pixels.npy`)).data, image.data);
      expectBits(model.encodeText(npyTokens(`${dir}/tokens.npy`)).data, text.data);
      // the first two rows end early (lengths 9 and 30): only 30 positions are computed
      const short = npyTokens(`${dir}/tokens.npy`);
      const two = { data: short.data.slice(0, 2 * 77), shape: [2, 77] };
      expectBits(model.encodeText(two).data, text.data.slice(0, 2 * text.shape[1]));
    });

    test("the vision tower built under another prefix reports its outputs under that name, with the same bits", () => {
      const sd = parseSafetensors(readFileSync(`${dir}/weights.safetensors`));
      const renamed = new Map([...sd].filter(([k]) => k.startsWith("visual.")).map(([k, t]) => [`tower${k.slice("visual".length)}`, t]));
      const p = new Params(renamed), c = model.config, v = c.vision, backend = new TsBackend();
      const tower = v.kind === "resnet"
        ? new ModifiedResNet(backend, p, "tower", v.layers, c.embedDim, v.heads, c.imageResolution, v.width)
        : new VisionTransformer(backend, p, "tower", c.imageResolution, v.patchSize, v.width, v.layers, v.heads, c.embedDim, v.activation, v.eps);
      expect(p.unexpected()).toEqual([]);
      const seen = new Map<string, Tensor>();
      tower.forward(npy(`${dir}/pixels.npy`), (n, t) => seen.set(n, t));
      const visual = [...acts].filter(([n]) => n.startsWith("visual."));
      expect(visual.length).toBeGreaterThanOrEqual(5);
      expect([...seen.keys()]).toEqual(visual.map(([n]) => `tower${n.slice("visual".length)}`));
      for (const [n, t] of visual) expectBits(seen.get(`tower${n.slice("visual".length)}`)!.data, t.data, n);
    });

    test("encode_image, encode_text and both logits", () => {
      const { logitsPerImage, logitsPerText } = model.forward(npy(`${dir}/pixels.npy`), npyTokens(`${dir}/tokens.npy`));
      for (const [what, actual] of [["encode_image", image], ["encode_text", text], ["logits_per_image", logitsPerImage], ["logits_per_text", logitsPerText]] as const) {
        const a = agreement(actual, npy(`${dir}/${what}.npy`));
        console.log(`${name} ${what}: max abs ${a.maxAbs.toExponential(2)}, max rel ${a.maxRel.toExponential(2)}`);
        expect(a.ok, what).toBe(true);
      }
    });
  });
}
