// precision "int8" on whole models: the same bits on the ts backend and on wasm at 1–3 threads, embeddings within
// cosine 0.995 of float32 ones (the golden models, the embedded models on the example images and prompts), only
// the transformers' linears and the ViT's patch embedding changed (the ResNet image tower keeps its f32 bits), and
// the CLI's --precision.
import { mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, test } from "vitest";
import { createWasmBackend } from "../src/backend/wasm.js";
import { TsBackend } from "../src/backend/ts.js";
import { memoryIo, runCli } from "../src/cli/cli.js";
import { embeddedModelPaths, load } from "../src/clip.js";
import { buildModel, type CLIP } from "../src/model.js";
import { readNpyFloat32 } from "../src/npy.js";
import type { Tensor } from "../src/tensor.js";
import { linearInt8, quantizeLinearWeights } from "../src/kernels/linear_int8.js";
import { parseSafetensors } from "../src/weights/safetensors.js";
import { expectBits, goldenDir, npy, npyTokens } from "./helpers/golden.js";

/** The cosine of each row of a to the same row of b. */
function rowCosines(a: Tensor, b: Tensor): number[] {
  const [N, D] = a.shape;
  return Array.from({ length: N }, (_, n) => {
    let ab = 0, aa = 0, bb = 0;
    for (let d = 0; d < D; d++) {
      const x = a.data[n * D + d], y = b.data[n * D + d];
      ab += x * y;
      aa += x * x;
      bb += y * y;
    }
    return ab / Math.sqrt(aa * bb);
  });
}

const models: CLIP[] = [];
afterAll(() => models.forEach((m) => m.dispose()));

for (const name of ["vit", "rn"]) {
  describe(`${name}: int8`, () => {
    const dir = goldenDir(name);
    const sd = parseSafetensors(readFileSync(`${dir}/weights.safetensors`));
    const pixels = npy(`${dir}/pixels.npy`), tokens = npyTokens(`${dir}/tokens.npy`);
    const ts8 = buildModel(sd, new TsBackend(), { precision: "int8" });
    const image = ts8.encodeImage(pixels), text = ts8.encodeText(tokens);

    test("cosine to the float32 embeddings ≥ 0.995 (the reference's encode_image / encode_text)", () => {
      const cos = [...rowCosines(image, npy(`${dir}/encode_image.npy`)), ...rowCosines(text, npy(`${dir}/encode_text.npy`))];
      for (const c of cos) expect(c).toBeGreaterThanOrEqual(0.995);
      if (name === "vit") expect(Math.min(...cos), "quantized: not the f32 result").toBeLessThan(0.999999);
    });

    if (name === "vit") {
      test("the patch embedding: conv1 as an int8 linear on the flattened patches, hooked in conv1's layout", () => {
        const outs = (m: CLIP) => {
          const got = new Map<string, Tensor>();
          m.encodeImage(pixels, (n, t) => got.set(n, t));
          return got.get("visual.conv1")!;
        };
        const conv8 = outs(ts8), conv32 = outs(buildModel(sd, new TsBackend()));
        expect(conv8.shape).toEqual(conv32.shape);
        const [N, D, gh, gw] = conv8.shape, G = gh * gw, P = pixels.shape[2] / gh, K = 3 * P * P;
        // the twin: the patches flattened as conv1.weight's rows, [c, ky, kx], through linearInt8
        const patches = new Float32Array(N * G * K);
        for (let n = 0; n < N; n++) for (let g = 0; g < G; g++) for (let c = 0; c < 3; c++) for (let ky = 0; ky < P; ky++) for (let kx = 0; kx < P; kx++) {
          const y = Math.floor(g / gw) * P + ky, x = (g % gw) * P + kx;
          patches[(n * G + g) * K + (c * P + ky) * P + kx] = pixels.data[((n * 3 + c) * gh * P + y) * gw * P + x];
        }
        const { q, scale } = quantizeLinearWeights(sd.get("visual.conv1.weight")!.data, D, K);
        const y = new Float32Array(N * G * D);
        linearInt8(patches, q, scale, null, y, N * G, K, D);
        const expected = new Float32Array(N * D * G);
        for (let n = 0; n < N; n++) for (let g = 0; g < G; g++) for (let d = 0; d < D; d++) expected[(n * D + d) * G + g] = y[(n * G + g) * D + d];
        expectBits(conv8.data, expected);
        const c = rowCosines({ data: conv8.data, shape: [1, conv8.data.length] }, { data: conv32.data, shape: [1, conv32.data.length] })[0];
        expect(c).toBeGreaterThan(0.999);
        expect(c, "quantized: not the f32 result").toBeLessThan(1);
      });
    }

    if (name === "rn") {
      test("the ResNet image tower stays float32: the f32 bits", () => {
        expectBits(image.data, buildModel(sd, new TsBackend()).encodeImage(pixels).data);
      });
    }

    for (const threads of [1, 2, 3]) {
      test(`wasm on ${threads} thread${threads > 1 ? "s" : ""} = ts, bit for bit`, async () => {
        const model = buildModel(sd, await createWasmBackend({ threads, minParallelWork: 0 }), { precision: "int8" });
        models.push(model);
        expectBits(model.encodeImage(pixels).data, image.data);
        expectBits(model.encodeText(tokens).data, text.data);
      });
    }
  });
}

describe("the embedded models, int8", async () => {
  const examples = readdirSync("examples").filter((f) => f.endsWith(".png")).sort();
  const prompts = ["a photo of a red diamond", "a photo of a blue star", "a yellow heart", "green", "a photo of a purple square on a white background, drawn small"];
  for (const file of ["clip-tiny-rn", "clip-tiny-vit"]) {
    test(`${file}: cosine to f32 ≥ 0.995 on the example images and prompts; zero-shot top-1 unchanged`, async () => {
      const path = file === "clip-tiny-rn" ? (await embeddedModelPaths()).weights : `weights/${file}.safetensors`;
      const [f32, int8] = await Promise.all([load(path, { threads: 1 }), load(path, { threads: 1, precision: "int8" })]);
      models.push(f32.model, int8.model);
      const pix = (c: typeof f32) => {
        const ts = examples.map((e) => c.preprocess(new Uint8Array(readFileSync(join("examples", e)))));
        const R = ts[0].shape[2], one = 3 * R * R, data = new Float32Array(ts.length * one);
        ts.forEach((t, i) => data.set(t.data, i * one));
        return { data, shape: [ts.length, 3, R, R] };
      };
      const tok = f32.tokenize(prompts);
      for (const c of [...rowCosines(int8.model.encodeImage(pix(int8)), f32.model.encodeImage(pix(f32))),
        ...rowCosines(int8.model.encodeText(tok), f32.model.encodeText(tok))]) {
        expect(c).toBeGreaterThanOrEqual(0.995);
      }
      const top1 = (c: typeof f32) => {
        const { logitsPerImage: l } = c.model.forward(pix(c), tok);
        const T = prompts.length;
        return examples.map((_, i) => { const row = [...l.data.subarray(i * T, (i + 1) * T)]; return row.indexOf(Math.max(...row)); });
      };
      expect(top1(int8)).toEqual(top1(f32));
    });
  }
});

describe("--precision", () => {
  const tmp = mkdtempSync(join(tmpdir(), "clip-ts-int8-"));
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));

  test("embed-text --precision int8 = the int8 model's encode_text; an unknown precision is a one-line usage error", async () => {
    const dir = goldenDir("vit"), out = join(tmp, "t.npy");
    let io = memoryIo();
    expect(await runCli(["embed-text", "--model", `${dir}/weights.safetensors`, "--tokens", `${dir}/tokens.npy`, "--out", out, "--precision", "int8", "--threads", "1"], io), io.err()).toBe(0);
    const model = buildModel(parseSafetensors(readFileSync(`${dir}/weights.safetensors`)), new TsBackend(), { precision: "int8" });
    expectBits(readNpyFloat32(readFileSync(out), out).data, model.encodeText(npyTokens(`${dir}/tokens.npy`)).data);
    io = memoryIo();
    expect(await runCli(["embed-text", "--tokens", `${dir}/tokens.npy`, "--precision", "int4"], io)).toBe(2);
    expect(io.err().trimEnd().split("\n")).toHaveLength(1);
    expect(io.err()).toMatch(/--precision must be one of f32, int8, got "int4"/);
  });
});
