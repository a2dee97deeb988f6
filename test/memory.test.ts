// Loading at memory speed and fp16-resident weights (issue 13): stored tensors read straight into wasm memory and
// widened there give the bits of widening first; weights: "fp16" gives the bits of the f32 path on fp16 weights,
// on both backends and any thread count; an fp32 checkpoint is refused for it in one line.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { test } from "@fast-check/vitest";
import { afterAll, beforeAll, describe, expect } from "vitest";
import { memoryIo, runCli } from "../src/cli/cli.js";
import { checkpointFromBytes, loadModel, modelFromCheckpoint, readCheckpoint, readTableAhead, type LoadOptions } from "../src/clip.js";
import { TsBackend } from "../src/backend/ts.js";
import { createWasmBackend, type WasmBackend } from "../src/backend/wasm.js";
import type { Activation } from "../src/kernels/activations.js";
import { f32ToF16Exact } from "../src/backend/half.js";
import { f16ToF32 } from "../src/kernels/f16.js";
import { buildModel, type CLIP } from "../src/model.js";
import { HalfTensor } from "../src/nn.js";
import { StoredTensor, storedOf, type Tensor } from "../src/tensor.js";
import { foldBatchNorm } from "../src/kernels/batch_norm.js";
import { f16BitsToF32, f32ToF16Bits } from "../src/weights/dtypes.js";
import { parseSafetensors, writeSafetensors } from "../src/weights/safetensors.js";
import { goldenDir, npy, npyTokens } from "./helpers/golden.js";

const f32 = new Float32Array(1), u32 = new Uint32Array(f32.buffer);
const bitsOf = (x: number) => ((f32[0] = x), u32[0]!);

/** The bits of each value, NaN canonicalised (wasm and JS may carry different NaN payloads). */
function bits(a: Float32Array): Uint32Array {
  const u = new Uint32Array(a.length);
  for (let i = 0; i < a.length; i++) u[i] = Number.isNaN(a[i]) ? 0x7fc00000 : bitsOf(a[i]!);
  return u;
}

let wasm: WasmBackend[] = []; // fp32 weights, threads 1, 2, 3
let wasmHalf: WasmBackend[] = []; // fp16 weights, threads 1, 2, 3
const ts = new TsBackend(), tsHalf = new TsBackend({ weights: "fp16" });
let dir = "";

beforeAll(async () => {
  wasm = await Promise.all([1, 2, 3].map((threads) => createWasmBackend({ threads, minParallelWork: 0 })));
  wasmHalf = await Promise.all([1, 2, 3].map((threads) => createWasmBackend({ threads, minParallelWork: 0, weights: "fp16" })));
  dir = mkdtempSync(join(tmpdir(), "clip-ts-memory-"));
});
afterAll(() => {
  [...wasm, ...wasmHalf].forEach((b) => b.dispose());
  rmSync(dir, { recursive: true, force: true });
});

/** Deterministic f16 values from a seed, as f32: normal, subnormal, ±0, the largest; ±Inf and NaN when asked. */
function halves(n: number, seed: number, specials = false): Float32Array {
  let s = seed >>> 0;
  const next = () => ((s = (Math.imul(s ^ (s >>> 15), 0x2c1b3c6d) + 0x6d2b79f5) >>> 0), s / 4294967296);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const r = next();
    const h = r < 0.02 ? 0x8000 : r < 0.05 ? Math.floor(next() * 0x400) | (next() < 0.5 ? 0x8000 : 0)
      : r < 0.06 ? 0x7bff : specials && r < 0.07 ? (next() < 0.5 ? 0xfc00 : 0x7e01)
        : f32ToF16Bits(next() * 4 - 2);
    out[i] = f16BitsToF32(h);
  }
  return out;
}
const values = (n: number, seed: number) => halves(n, seed ^ 0x5bd1e995).map((v, i) => v * (1 + (i % 7) / 8));

/** w stored as f16 bytes in memory, as a safetensors file gives it. */
function storedF16(w: Tensor): StoredTensor {
  const sd = parseSafetensors(writeSafetensors(new Map([["w", w]]), "F16"));
  return sd.get("w") as StoredTensor;
}

const act = fc.constantFrom<Activation>("none", "relu", "quickgelu", "gelu");
const seed = fc.integer({ min: 0, max: 0x7fffffff });

describe("binary16 → f32", () => {
  test("f16ToF32 (the readable twin) gives every one of the 65536 values the loader's table gives", () => {
    for (let h = 0; h < 65536; h++) {
      const a = f16ToF32(h), b = f16BitsToF32(h);
      expect(Number.isNaN(a) ? "NaN" : bitsOf(a), `0x${h.toString(16)}`).toBe(Number.isNaN(b) ? "NaN" : bitsOf(b));
    }
  });

  test("f32ToF16Exact inverts it on every non-NaN value, and refuses values binary16 cannot hold", () => {
    for (let h = 0; h < 65536; h++) {
      if ((h & 0x7c00) === 0x7c00 && (h & 0x3ff) !== 0) continue;
      expect(f32ToF16Exact(f16ToF32(h)), `0x${h.toString(16)}`).toBe(h);
    }
    for (const x of [0.1, 65520, 2 ** -25, 1 + 2 ** -11, Math.fround(1 / 3), 3e38]) expect(f32ToF16Exact(Math.fround(x))).toBe(-1);
    expect(f32ToF16Exact(NaN)).toBe(0x7e00);
  });
});

describe("stored f16 weights packed in wasm memory: the bits of widening first", () => {
  test.prop([fc.integer({ min: 1, max: 9 }), fc.integer({ min: 1, max: 70 }), fc.integer({ min: 1, max: 37 }), act, seed], { numRuns: 40 })(
    "linear, f16 stored bytes (NaN, ±Inf, subnormals) vs the widened f32 tensor", (M, K, N, a, s) => {
      const x = { shape: [M, K], data: values(M * K, s) }, w = { shape: [N, K], data: halves(N * K, s + 1, true) };
      const bias = { shape: [N], data: values(N, s + 2) };
      const expected = bits(ts.linear(x, ts.prepareLinear(w, bias), a).data);
      for (const b of wasm) {
        const stored = storedF16(w);
        expect(bits(b.linear(x, b.prepareLinear(stored, bias), a).data), `${b.threads} thread(s)`).toEqual(expected);
        expect((stored as unknown as { widened: unknown }).widened, "never widened in JS").toBeNull();
      }
    });

  test.prop([fc.integer({ min: 1, max: 9 }), fc.integer({ min: 1, max: 4 }), fc.constantFrom(1, 2, 3), fc.boolean(), fc.boolean(), fc.boolean(), seed], { numRuns: 50 })(
    "conv2d, f16 stored bytes (kept f16 with weights fp16) or an f32 tensor, finite or not, with a folded BatchNorm's scale or not, vs the TypeScript", (O, C, k, withScale, stored, specials, s) => {
      const x = { shape: [2, C, 9, 9], data: values(2 * C * 81, s) }, w = { shape: [O, C, k, k], data: halves(O * C * k * k, s + 1, specials) };
      const bias = { shape: [O], data: values(O, s + 2) }, scale = withScale ? values(O, s + 3) : null;
      const expected = bits(ts.conv2d(x, ts.prepareConv2d(w, bias, 2, 1, scale), "relu").data);
      // scaled as foldBatchNorm scales: f32(w · scale[o])
      const folded = scale ? { shape: w.shape, data: foldBatchNorm(w.data, O, scale, new Float32Array(O), new Float32Array(O), new Float32Array(O).fill(1), 0).weight } : w;
      expect(bits(ts.conv2d(x, ts.prepareConv2d(folded, bias, 2, 1), "relu").data)).toEqual(expected);
      for (const [b, weights] of [...wasm.map((b) => [b, "fp32"] as const), ...wasmHalf.map((b) => [b, "fp16"] as const)]) {
        const weight = stored ? storedF16(w) : w;
        expect(bits(b.conv2d(x, b.prepareConv2d(weight, bias, 2, 1, scale), "relu").data), `${b.threads} thread(s), ${weights}`).toEqual(expected);
      }
    });
});

describe('weights: "fp16" (f16 panels widened inside the GEMM): the bits of the f32 path', () => {
  test.prop([fc.integer({ min: 1, max: 23 }), fc.integer({ min: 1, max: 70 }), fc.integer({ min: 1, max: 37 }), act, fc.boolean(), fc.boolean(), fc.boolean(), fc.boolean(), seed], { numRuns: 80 })(
    "ts and wasm on 1–3 threads, given f32 tensors or stored f16 bytes, finite or not", (M, K, N, a, withBias, withResidual, stored, specials, s) => {
      const x = { shape: [M, K], data: values(M * K, s) }, w = { shape: [N, K], data: halves(N * K, s + 1, specials) };
      const bias = withBias ? { shape: [N], data: values(N, s + 2) } : null;
      const res = withResidual ? { shape: [M, N], data: values(M * N, s + 3) } : null;
      const weight = () => (stored ? storedF16(w) : w);
      const expected = bits(ts.linear(x, ts.prepareLinear(w, bias), a, res).data);
      expect(bits(tsHalf.linear(x, tsHalf.prepareLinear(weight(), bias), a, res).data), "ts fp16").toEqual(expected);
      for (const b of wasmHalf) {
        expect(bits(b.linear(x, b.prepareLinear(weight(), bias), a, res).data), `wasm fp16, ${b.threads} thread(s)`).toEqual(expected);
      }
    });

  test("M and K blocks past the GEMM's, a partial last panel, a 3-D input", () => {
    const x = { shape: [2, 201, 300], data: values(2 * 201 * 300, 1) }, w = { shape: [37, 300], data: halves(37 * 300, 2) };
    const bias = { shape: [37], data: values(37, 3) }, res = { shape: [2, 201, 37], data: values(2 * 201 * 37, 4) };
    const expected = bits(ts.linear(x, ts.prepareLinear(w, bias), "quickgelu", res).data);
    for (const b of wasmHalf) expect(bits(b.linear(x, b.prepareLinear(w, bias), "quickgelu", res).data)).toEqual(expected);
  });

  test("a weight that is not an fp16 value is refused in one line", () => {
    const w = { shape: [2, 3], data: new Float32Array([1, 2, 0.1, 4, 5, 6]) };
    for (const b of [tsHalf, wasmHalf[0]!]) {
      expect(() => b.prepareLinear(w, null)).toThrow(/^weights "fp16": prepareLinear: weight \[2, 3\] holds 0\.1\d*, which is not an fp16 value \(an fp32 checkpoint\?\); [^\n]*use weights "fp32"[^\n]*$/);
    }
  });

  test("half the wasm memory for the same linear weights, and 4 bytes a zero or subnormal half (none past 1/16 of them); a tensor with an infinite or NaN weight stays f32", async () => {
    const w = { shape: [512, 768], data: halves(512 * 768, 5) };
    const grown = async (weights: "fp32" | "fp16") => {
      const b = await createWasmBackend({ threads: 1, weights });
      const before = (b as unknown as { top: number }).top;
      b.prepareLinear(w, null);
      const used = (b as unknown as { top: number }).top - before;
      b.dispose();
      return used;
    };
    const tiny = w.data.filter((v) => Math.abs(v) < 2 ** -14).length, panels = 512 / 16;
    expect(tiny).toBeGreaterThan(0);
    expect(tiny).toBeLessThan(w.data.length / 16);
    const list = Math.ceil(((panels + 1 + tiny) * 4) / 16) * 16;
    expect(await grown("fp16")).toBe((await grown("fp32")) / 2 + list);
    w.data.fill(0, 0, w.data.length / 8); // past 1/16 zero: no list, the float widening
    expect(await grown("fp16")).toBe((await grown("fp32")) / 2);
    w.data[w.data.length - 1] = -Infinity;
    expect(await grown("fp16")).toBe(await grown("fp32"));
  });

  test("a convolution's weights take half the wasm memory (their BatchNorm scale kept beside them); with an infinite or NaN weight they stay f32", async () => {
    const w = { shape: [64, 32, 3, 3], data: halves(64 * 288, 6) }, scale = values(64, 7);
    const grown = async (weights: "fp32" | "fp16") => {
      const b = await createWasmBackend({ threads: 1, weights });
      const before = (b as unknown as { top: number }).top;
      b.prepareConv2d(w, null, 1, 1, scale);
      const used = (b as unknown as { top: number }).top - before;
      b.dispose();
      return used;
    };
    expect(await grown("fp32")).toBe(64 * 288 * 4);
    expect(await grown("fp16")).toBe(64 * 288 * 2 + 64 * 4);
    w.data[100] = NaN; // an infinite or NaN weight: kept f32 (the widening before each convolution skips that case)
    expect(await grown("fp16")).toBe(64 * 288 * 4);
  });

  test.prop([fc.integer({ min: 1, max: 23 }), fc.integer({ min: 1, max: 70 }), fc.integer({ min: 1, max: 37 }), fc.double({ min: 0, max: 1 }), seed], { numRuns: 30 })(
    "zero and subnormal halves, few (patched after the integer widening) or many (the float widening), 1–3 threads", (M, K, N, share, s) => {
      const x = { shape: [M, K], data: values(M * K, s) }, w = { shape: [N, K], data: halves(N * K, s + 1) };
      let r = s >>> 0;
      for (let i = 0; i < w.data.length; i++) {
        r = (Math.imul(r ^ (r >>> 13), 0x5bd1e995) + 1) >>> 0;
        if (r / 2 ** 32 < share) w.data[i] = f16BitsToF32((r & 0x83ff) | (r & 0x400 ? 0 : 0x8000));
      }
      const expected = bits(ts.linear(x, ts.prepareLinear(w, null), "none").data);
      for (const b of wasmHalf) expect(bits(b.linear(x, b.prepareLinear(w, null)).data), `${b.threads} thread(s)`).toEqual(expected);
    });
});

/** encodeImage and encodeText of a golden model's inputs, as bits. */
function embed(model: CLIP, name: string): Uint32Array[] {
  const d = goldenDir(name);
  return [bits(model.encodeImage(npy(`${d}/pixels.npy`)).data), bits(model.encodeText(npyTokens(`${d}/tokens.npy`)).data)];
}

describe("whole models: the fp16 golden checkpoints (test/golden/models/*/weights_fp16.pt)", () => {
  for (const name of ["vit", "rn"]) {
    test(`${name}: weights "fp16" gives the embeddings of the f32 path bit for bit (ts, wasm 1 and 2 threads)`, async () => {
      const file = `${goldenDir(name)}/weights_fp16.pt`;
      const run = async (o: LoadOptions) => {
        const m = await loadModel(file, o);
        try {
          return embed(m, name);
        } finally {
          m.dispose();
        }
      };
      const expected = await run({ backend: "wasm", threads: 1 });
      for (const o of [{ backend: "wasm", threads: 1 }, { backend: "wasm", threads: 2 }, { backend: "ts" }] as LoadOptions[]) {
        expect(await run({ ...o, weights: "fp16" }), JSON.stringify(o)).toEqual(expected);
      }
    }, 120_000);
  }

  test('an fp32 checkpoint with weights "fp16" is refused in one line naming the option', async () => {
    await expect(loadModel(`${goldenDir("vit")}/weights.safetensors`, { weights: "fp16" })).rejects.toThrow(/^weights "fp16": [^\n]*not an fp16 value[^\n]*$/);
    await expect(loadModel(`${goldenDir("vit")}/weights.safetensors`, { weights: "fp8" as "fp16" })).rejects.toThrow(/unknown weights "fp8"/);
  });
});

describe("a safetensors file opened, not read whole: its tensors read into wasm memory", () => {
  test("fp16 and fp32 files by path give the bits of the same bytes loaded on the ts backend", async () => {
    const sd = parseSafetensors(readFileSync(`${goldenDir("vit")}/weights.safetensors`));
    for (const dtype of ["F16", "F32"] as const) {
      const bytes = writeSafetensors(sd, dtype);
      const file = join(dir, `vit.${dtype}.safetensors`);
      writeFileSync(file, bytes);
      const ref = await loadModel(bytes, { backend: "ts" });
      const expected = embed(ref, "vit");
      for (const o of [{ threads: 1 }, { threads: 2 }, { threads: 1, weights: "fp16" }] as LoadOptions[]) {
        if (o.weights === "fp16" && dtype === "F32") continue;
        const m = await loadModel(file, o);
        expect(embed(m, "vit"), `${dtype} ${JSON.stringify(o)}`).toEqual(expected);
        m.dispose();
      }
      // and the state dict read from the file widens to the same values as from the bytes
      const ck = await readCheckpoint(file);
      for (const [k, t] of parseSafetensors(bytes)) expect(bits(ck.stateDict.get(k)!.data), k).toEqual(bits(t.data));
    }
  }, 120_000);

  test("an f16 token embedding is kept f16 (half the memory) and gives the text embeddings of its widened copy", async () => {
    const bytes = writeSafetensors(parseSafetensors(readFileSync(`${goldenDir("vit")}/weights.safetensors`)), "F16");
    const m = await loadModel(bytes, { threads: 1 });
    expect(m.token_embedding).toBeInstanceOf(HalfTensor);
    const widened = new Map([...parseSafetensors(bytes)].map(([k, t]) => [k, { data: t.data.slice(), shape: t.shape }]));
    const plain = buildModel(widened, new TsBackend());
    expect(plain.token_embedding).not.toBeInstanceOf(HalfTensor);
    expect(bits(m.token_embedding.data)).toEqual(bits(plain.token_embedding.data));
    const tokens = npyTokens(`${goldenDir("vit")}/tokens.npy`);
    expect(bits(m.encodeText(tokens).data)).toEqual(bits(plain.encodeText(tokens).data));
    m.dispose();
  });

  test("an fp16 file's token embedding is read ahead on another thread into the array the model keeps: the same bits; a failed read disposes the model and says why", async () => {
    const file = join(dir, "ahead.safetensors");
    const bytes = writeSafetensors(parseSafetensors(readFileSync(`${goldenDir("vit")}/weights.safetensors`)), "F16");
    writeFileSync(file, bytes);
    const tokens = npyTokens(`${goldenDir("vit")}/tokens.npy`);
    const ref = await loadModel(bytes, { threads: 1 });
    const ck = await readCheckpoint(file);
    const table = ck.stateDict.get("token_embedding.weight");
    const ready = readTableAhead(ck.stateDict);
    const ahead = ck.stateDict.get("token_embedding.weight");
    expect(ahead).toBeInstanceOf(HalfTensor);
    const m = await ready(modelFromCheckpoint(ck, await createWasmBackend({ threads: 1 })));
    expect(m.token_embedding).toBe(ahead); // kept, not copied
    expect(bits(m.encodeText(tokens).data)).toEqual(bits(ref.encodeText(tokens).data));
    expect(bits(m.token_embedding.data)).toEqual(bits(table!.data));
    m.dispose();
    // loadModel by path takes the same road; an image-only model and an fp32 file read nothing ahead
    const byPath = await loadModel(file, { threads: 1 });
    expect(bits(byPath.encodeText(tokens).data)).toEqual(bits(ref.encodeText(tokens).data));
    byPath.dispose();
    ref.dispose();
    const imageOnly = await readCheckpoint(file);
    readTableAhead(imageOnly.stateDict, "image");
    expect(imageOnly.stateDict.get("token_embedding.weight")).not.toBeInstanceOf(HalfTensor);
    // the read fails (the file shrank): the model is disposed and the one-line error is the read's
    const late = await readCheckpoint(file);
    const lateReady = readTableAhead(late.stateDict);
    writeFileSync(file, bytes.subarray(0, 1000));
    let disposed = false;
    const fake = { dispose: () => (disposed = true) } as unknown as CLIP;
    await expect(lateReady(fake)).rejects.toThrow(/changed size while it was being loaded/);
    expect(disposed).toBe(true);
    // a build that throws before the read is awaited leaves no unhandled rejection (vitest would report one)
    writeFileSync(file, bytes);
    const dropped = await readCheckpoint(file);
    readTableAhead(dropped.stateDict);
    writeFileSync(file, bytes.subarray(0, 1000));
    await new Promise((r) => setTimeout(r, 200));
  });

  test("a file that shrinks after its header was read is refused in one line", async () => {
    const file = join(dir, "shrinks.safetensors");
    const bytes = writeSafetensors(parseSafetensors(readFileSync(`${goldenDir("vit")}/weights.safetensors`)), "F16");
    writeFileSync(file, bytes);
    const ck = await readCheckpoint(file);
    writeFileSync(file, bytes.subarray(0, bytes.length - 1000));
    const t = [...ck.stateDict.values()].at(-1)!;
    expect(() => t.data).toThrow(/changed size while it was being loaded/);
  });
});

describe("a torch zip (.pt: torch.save, TorchScript) opened, not read whole: its stored tensors read into wasm memory", () => {
  const files = [["vit", "weights_fp16.pt"], ["rn", "weights_fp16.pt"], ["vit", "weights_state_dict.pt"], ["vit", "weights_torchscript.pt"]];
  for (const [name, base] of files) {
    test(`${name}/${base} by path: the state dict, format and script class of its bytes; the embeddings of its bytes`, async () => {
      const file = `${goldenDir(name!)}/${base}`, bytes = readFileSync(file);
      const config = { json: JSON.parse(readFileSync(`${goldenDir(name!)}/config.json`, "utf8")), source: "config.json" };
      const opened = await readCheckpoint(file), whole = checkpointFromBytes(bytes, {}, config);
      expect(opened.format).toBe(whole.format);
      expect(opened.hints).toEqual(whole.hints); // a TorchScript file's class still names OpenAI's settings
      expect([...opened.stateDict.keys()]).toEqual([...whole.stateDict.keys()]);
      let unread = 0;
      for (const [k, t] of whole.stateDict) {
        const o = opened.stateDict.get(k)!;
        expect(o.shape, k).toEqual(t.shape);
        expect(bits(o.data), k).toEqual(bits(t.data));
        if (storedOf(o)?.readAsync) unread++; // read from the file when asked (bytes in memory have no async read)
      }
      expect(unread).toBeGreaterThan(whole.stateDict.size / 2);
      if (!base!.includes("fp16")) return; // the same state dict: the f32 files' embeddings follow
      const ref = await loadModel(bytes, { backend: "ts" });
      const m = await loadModel(file, { threads: 2 });
      expect(embed(m, name!)).toEqual(embed(ref, name!));
      m.dispose();
      ref.dispose();
    }, 120_000);
  }

  test("a .pt that shrinks after its directory was read is refused in one line", async () => {
    const file = join(dir, "shrinks.pt"), bytes = readFileSync(`${goldenDir("vit")}/weights_fp16.pt`);
    writeFileSync(file, bytes);
    const ck = await readCheckpoint(file);
    writeFileSync(file, bytes.subarray(0, bytes.length - 1000));
    const t = ck.stateDict.get("visual.proj")!;
    expect(() => t.data).toThrow(/^"[^"]*shrinks\.pt" changed size while it was being loaded$/);
  });
});

describe("the command line: --weights fp16", () => {
  const run = async (...argv: string[]) => {
    const io = memoryIo();
    const code = await runCli(argv, io);
    return { code, stdout: io.out(), stderr: io.err() };
  };

  test("embed-text of the fp16 golden gives the bits of --weights fp32; an fp32 checkpoint and a bad value get one line", async () => {
    const d = goldenDir("vit"), outs = ["fp32", "fp16"].map((w) => join(dir, `text.${w}.npy`));
    for (const [i, w] of ["fp32", "fp16"].entries()) {
      const r = await run("embed-text", "--model", `${d}/weights_fp16.pt`, "--tokens", `${d}/tokens.npy`, "--weights", w, "--out", outs[i]!);
      expect(r.code, r.stderr).toBe(0);
    }
    expect(readFileSync(outs[1]!)).toEqual(readFileSync(outs[0]!));
    for (const [args, pattern] of [
      [["--model", `${d}/weights.safetensors`, "--weights", "fp16"], /weights "fp16": .*not an fp16 value/],
      [["--model", `${d}/weights_fp16.pt`, "--weights", "fp8"], /--weights/],
    ] as const) {
      const r = await run("embed-text", ...args, "--tokens", `${d}/tokens.npy`, "--out", join(dir, "x.npy"));
      expect(r.code).not.toBe(0);
      expect(r.stderr.trimEnd().split("\n"), r.stderr).toHaveLength(1);
      expect(r.stderr).toMatch(pattern);
    }
  }, 60_000);
});
