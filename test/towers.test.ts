// loadModel(…, { towers }): one tower loaded, with the full model's bits; the other call refused; less wasm memory.
import { readFileSync } from "node:fs";
import { afterAll, describe, expect, test, vi } from "vitest";
import type { Backend } from "../src/backend/backend.js";
import { createWasmBackend } from "../src/backend/wasm.js";
import { TsBackend } from "../src/backend/ts.js";
import { memoryIo, runCli } from "../src/cli/cli.js";
import * as clip from "../src/clip.js";
import { buildModel, type CLIP, type Towers } from "../src/model.js";
import type { StateDict } from "../src/tensor.js";
import { parseSafetensors } from "../src/weights/safetensors.js";
import type { StateDictSpec } from "../bench/models.js";
import { expectBits, goldenDir, npy, npyTokens } from "./helpers/golden.js";

// every model the CLI builds, to see which towers each command asks for
const built = vi.hoisted(() => [] as string[]);
vi.mock("../src/clip.js", async (original) => {
  const mod = await original<typeof import("../src/clip.js")>();
  return {
    ...mod,
    modelFromCheckpoint: (...a: Parameters<typeof mod.modelFromCheckpoint>) => {
      const model = mod.modelFromCheckpoint(...a);
      built.push(model.towers);
      return model;
    },
  };
});

/** The wasm backend's memory (not part of the Backend interface), in bytes. */
function wasmBytes(backend: Backend): number {
  const memory = (backend as unknown as { memory: WebAssembly.Memory }).memory;
  expect(memory).toBeInstanceOf(WebAssembly.Memory);
  return memory.buffer.byteLength;
}

const disposeLater: CLIP[] = [];
afterAll(() => disposeLater.forEach((m) => m.dispose()));

const backends = { ts: async () => new TsBackend(), wasm: () => createWasmBackend({ threads: 1 }) };

for (const name of ["vit", "rn"]) {
  const dir = goldenDir(name);
  const bytes = readFileSync(`${dir}/weights.safetensors`);
  const sd = parseSafetensors(bytes);
  const pixels = npy(`${dir}/pixels.npy`), tokens = npyTokens(`${dir}/tokens.npy`);

  describe(`${name}: towers`, () => {
    for (const [backendName, make] of Object.entries(backends)) {
      test(`${backendName}: each tower alone gives the full model's bits; the other call is refused`, async () => {
        const full = buildModel(sd, await make());
        const image = buildModel(sd, await make(), { towers: "image" });
        const text = buildModel(sd, await make(), { towers: "text" });
        disposeLater.push(full, image, text);
        expect([full.towers, image.towers, text.towers]).toEqual(["both", "image", "text"]);
        expect(image.config).toEqual(full.config); // inferConfig reads the whole state dict
        expectBits(image.encodeImage(pixels).data, full.encodeImage(pixels).data);
        expectBits(text.encodeText(tokens).data, full.encodeText(tokens).data);
        expect(() => image.encodeText(tokens)).toThrow(/^this model was loaded with towers: "image"; encodeText needs the text tower$/);
        expect(() => text.encodeImage(pixels)).toThrow(/^this model was loaded with towers: "text"; encodeImage needs the image tower$/);
        for (const m of [image, text]) expect(() => m.forward(pixels, tokens)).toThrow(/forward needs the (text|image) tower$/);
        expect(() => image.token_embedding).toThrow(/token_embedding needs the text tower/);
        expect(() => text.visual).toThrow(/visual needs the image tower/);
        expect(image.logit_scale).toBe(full.logit_scale);
      });
    }

    test("wasm: a model of one tower holds less wasm memory than the whole", async () => {
      const size: Partial<Record<Towers, number>> = {};
      for (const towers of ["both", "image", "text"] as const) {
        const m = buildModel(sd, await createWasmBackend({ threads: 1 }), { towers });
        size[towers] = wasmBytes(m.backend);
        m.dispose();
      }
      expect(size.image).toBeLessThan(size.both!);
      expect(size.text).toBeLessThan(size.both!);
    });

    test("the other tower's keys are still checked as the loaded model checks them", () => {
      const altered = (edit: (m: StateDict) => void): StateDict => {
        const m = new Map(sd);
        edit(m);
        return m;
      };
      const wrongShape = altered((m) => m.set("transformer.resblocks.0.mlp.c_proj.bias", { data: new Float32Array(3), shape: [3] }));
      const stray = altered((m) => m.set("transformer.resblocks.0.extra", { data: new Float32Array(1), shape: [1] }));
      const missing = altered((m) => m.delete("ln_final.bias"));
      const visualMissing = altered((m) => m.delete(name === "vit" ? "visual.ln_post.bias" : "visual.attnpool.c_proj.bias"));
      for (const [what, s, towers] of [
        ["wrong shape", wrongShape, "image"], ["stray key", stray, "image"], ["missing key", missing, "image"], ["missing key", visualMissing, "text"],
      ] as const) {
        let expected = "";
        try {
          buildModel(s, new TsBackend());
        } catch (e) {
          expected = (e as Error).message;
        }
        expect(expected, what).not.toBe("");
        expect(() => buildModel(s, new TsBackend(), { towers }), what).toThrow(expected);
      }
    });

    test("towers is checked and passed through loadModel and load", async () => {
      await expect(clip.loadModel(bytes, { backend: "ts", towers: "vision" as Towers })).rejects.toThrow(/^towers must be "image", "text" or "both", got "vision"$/);
      const m = await clip.loadModel(`${dir}/weights.safetensors`, { backend: "ts", towers: "image" });
      expect(m.towers).toBe("image");
      const t = await clip.load(undefined, { backend: "ts", towers: "text" });
      expect(t.model.towers).toBe("text");
      expect(() => t.model.encodeImage(pixels)).toThrow(/encodeImage needs the image tower/);
    });
  });
}

test("the CLI: embed-image loads the image tower only, embed-text the text tower only, logits both", async () => {
  const dir = goldenDir("vit");
  const model = `${dir}/weights.safetensors`;
  const run = async (...argv: string[]) => {
    const io = memoryIo();
    const code = await runCli(argv, io);
    expect(code, io.err()).toBe(0);
  };
  built.length = 0;
  await run("embed-image", "--model", model, "--pixels", `${dir}/pixels.npy`);
  await run("embed-text", "--model", model, "--tokens", `${dir}/tokens.npy`);
  await run("logits", "--model", model, "--pixels", `${dir}/pixels.npy`, "--tokens", `${dir}/tokens.npy`);
  expect(built).toEqual(["image", "text", "both"]);
});

test("ViT-B/32 of full size (zero weights: memory does not depend on values): one tower takes far less wasm memory", async () => {
  const json = JSON.parse(readFileSync("test/golden/configs/ViT-B-32.json", "utf8")) as { state_dict: StateDictSpec };
  const sd: StateDict = new Map(json.state_dict.filter(([, , dtype]) => dtype === "float32")
    .map(([key, shape]) => [key, { data: new Float32Array(shape.reduce((a, b) => a * b, 1)), shape }]));
  const size: Partial<Record<Towers, number>> = {};
  for (const towers of ["both", "image", "text"] as const) {
    const m = buildModel(sd, await createWasmBackend({ threads: 1 }), { towers });
    size[towers] = wasmBytes(m.backend);
    m.dispose();
  }
  const mib = (n: number) => Math.round(n / 2 ** 20);
  console.log(`ViT-B/32 wasm memory, MiB: both ${mib(size.both!)}, image ${mib(size.image!)}, text ${mib(size.text!)}`);
  // the image tower holds 88 M of the 151 M parameters, the text tower 63 M (38 M without the token embedding,
  // which stays in JavaScript)
  expect(size.image!).toBeLessThan(0.8 * size.both!);
  expect(size.text!).toBeLessThan(0.5 * size.both!);
}, 60_000);
