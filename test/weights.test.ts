// Loading every fixture made by tools/fixtures/make_weight_fixtures.py and comparing with what torch recorded.
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { describe, expect, test } from "vitest";
import type { StateDict } from "../src/tensor.js";
import { f16BitsToF32, f32ToF16Bits } from "../src/weights/dtypes.js";
import {
  hfToOpenAI,
  isHuggingFaceClip,
  loadStateDict,
  loadStateDictWithFormat,
  normaliseKeys,
  parseSafetensors,
  WeightsError,
  writeSafetensors,
  ZipArchive,
} from "../src/weights/index.js";

const DIR = "test/fixtures/weights/";

interface Expected {
  shape: number[];
  dtype: string;
  values?: number[];
  sha256?: string;
}
interface ExpectedFile {
  format: string;
  tensors: Record<string, Expected>;
}
const expected = JSON.parse(readFileSync(DIR + "expected.json", "utf8")) as Record<string, ExpectedFile> & {
  f16_cases: [number, number][];
};

function bytesOf(name: string): Uint8Array {
  return new Uint8Array(readFileSync(DIR + name));
}

function sha256(data: Float32Array): string {
  return createHash("sha256").update(new Uint8Array(data.buffer, data.byteOffset, data.byteLength)).digest("hex");
}

function expectMatches(sd: StateDict, exp: Record<string, Expected>): void {
  expect([...sd.keys()].sort()).toEqual(Object.keys(exp).sort());
  for (const [name, e] of Object.entries(exp)) {
    const t = sd.get(name)!;
    expect(t.shape, name).toEqual(e.shape);
    expect(t.dtype, name).toBe(e.dtype);
    expect(t.data).toBeInstanceOf(Float32Array);
    if (e.values) expect(Array.from(t.data), name).toEqual(e.values.map(Math.fround));
    if (e.sha256) expect(sha256(t.data), name).toBe(e.sha256);
  }
}

describe("fixtures load as torch recorded them", () => {
  const files = [
    "torch_sd.pt",
    "torch_wrapped.pt",
    "torch_extras.pt",
    "torch_sd_zip64.pt",
    "torchscript_tree.pt",
    "clip_tiny_traced.pt",
    "clip_tiny_hf.safetensors",
    "tiny.safetensors",
  ];
  for (const file of files) {
    test(file, () => {
      const { format, stateDict } = loadStateDictWithFormat(bytesOf(file));
      expect(format).toBe(expected[file]!.format);
      expectMatches(stateDict, expected[file]!.tensors);
    });
  }

  test("torch.save views keep their values: transposed, strided, offset into a shared storage, stride-0", () => {
    const sd = loadStateDict(bytesOf("torch_sd.pt"));
    // The expected values were recorded from the views in row-major order; check shapes explicitly too.
    expect(sd.get("transposed")!.shape).toEqual([5, 3]);
    expect(sd.get("strided_cols")!.shape).toEqual([4, 2]);
    const ex = sd.get("expanded")!;
    expect(ex.shape).toEqual([3, 4]);
    for (let r = 0; r < 3; r++) for (let c = 1; c < 4; c++) expect(ex.data[r * 4 + c]).toBe(ex.data[r * 4]);
    expect(sd.get("scalar")!.shape).toEqual([]);
    expect(Array.from(sd.get("scalar")!.data)).toEqual([2.5]);
    expect(sd.get("empty")!.data.length).toBe(0);
    // Tensors sharing a storage are independent copies.
    sd.get("shared_a")!.data[0] = 1234;
    expect(sd.get("shared_b")!.data[0]).not.toBe(1234);
  });

  test("the traced CLIP keeps OpenAI's fp16/fp32 mix and every key of model.state_dict()", () => {
    const sd = loadStateDict(bytesOf("clip_tiny_traced.pt"));
    expect(sd.get("visual.conv1.weight")!.dtype).toBe("F16");
    expect(sd.get("visual.transformer.resblocks.0.attn.in_proj_weight")!.dtype).toBe("F16");
    expect(sd.get("ln_final.weight")!.dtype).toBe("F32");
    expect(sd.get("visual.transformer.resblocks.0.attn.in_proj_weight")!.shape).toEqual([192, 64]);
    expect(sd.size).toBe(38);
  });

  test("TorchScript module tree: nested submodules, Sequential/ModuleList indices, buffers; non-tensors and input_resolution dropped", () => {
    const raw = loadStateDictWithFormat(bytesOf("torchscript_tree.pt"), { rawKeys: true }).stateDict;
    expect(raw.has("input_resolution")).toBe(true);
    expect(raw.has("label")).toBe(false);
    const sd = loadStateDict(bytesOf("torchscript_tree.pt"));
    expect(sd.has("input_resolution")).toBe(false);
    expect(sd.get("heads.1.scale")!.dtype).toBe("F16");
  });

  test("wrapped checkpoints: state_dict unwrapped, module. stripped, non-tensors skipped", () => {
    const raw = loadStateDictWithFormat(bytesOf("torch_wrapped.pt"), { rawKeys: true }).stateDict;
    expect([...raw.keys()]).toEqual(["module.a.weight", "module.b", "module.input_resolution"]);
  });

  test("checksums of tensor storages are verified on request", () => {
    const bytes = bytesOf("torch_sd.pt");
    expect(() => loadStateDict(bytes, { verifyChecksums: true })).not.toThrow();
    // Flip one bit inside a tensor's data; stored entries are views, so their offset is the position in the file.
    const entry = new ZipArchive(bytes).read("torch_sd/data/0", false);
    const copy = bytes.slice();
    copy[entry.byteOffset + 1]! ^= 0x10;
    expect(() => loadStateDict(copy)).not.toThrow();
    expect(() => loadStateDict(copy, { verifyChecksums: true })).toThrow(/CRC mismatch in "torch_sd\/data\/0"/);
  });

  test("legacy torch.save stream gives a clear error", () => {
    expect(() => loadStateDict(bytesOf("legacy_sd.pt"))).toThrow(WeightsError);
    expect(() => loadStateDict(bytesOf("legacy_sd.pt"))).toThrow(/unsupported legacy torch.save format/);
  });
});

describe("Hugging Face names", () => {
  test("the HF-named fixture gives the same OpenAI key set as the traced model", () => {
    const hf = loadStateDict(bytesOf("clip_tiny_hf.safetensors"));
    const oa = loadStateDict(bytesOf("clip_tiny_traced.pt"));
    expect([...hf.keys()].sort()).toEqual([...oa.keys()].sort());
    for (const [k, t] of oa) expect(hf.get(k)!.shape, k).toEqual(t.shape);
  });

  test("q/k/v merge in q, k, v order and projections transpose", () => {
    const t = (shape: number[], start: number) => ({
      shape,
      data: Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, (_, i) => start + i),
    });
    const sd: StateDict = new Map([
      ["text_model.encoder.layers.3.self_attn.k_proj.weight", t([2, 2], 10)],
      ["text_model.encoder.layers.3.self_attn.q_proj.weight", t([2, 2], 0)],
      ["text_model.encoder.layers.3.self_attn.v_proj.weight", t([2, 2], 20)],
      ["visual_projection.weight", t([2, 3], 0)],
      ["text_model.embeddings.position_ids", t([1, 4], 0)],
    ]);
    expect(isHuggingFaceClip(sd)).toBe(true);
    const out = hfToOpenAI(sd);
    expect([...out.keys()].sort()).toEqual(["transformer.resblocks.3.attn.in_proj_weight", "visual.proj"]);
    expect(out.get("transformer.resblocks.3.attn.in_proj_weight")!.shape).toEqual([6, 2]);
    expect(Array.from(out.get("transformer.resblocks.3.attn.in_proj_weight")!.data)).toEqual([0, 1, 2, 3, 10, 11, 12, 13, 20, 21, 22, 23]);
    expect(out.get("visual.proj")!.shape).toEqual([3, 2]);
    expect(Array.from(out.get("visual.proj")!.data)).toEqual([0, 3, 1, 4, 2, 5]);
  });

  test("unknown HF keys and incomplete q/k/v are errors", () => {
    const one = { shape: [2, 2], data: new Float32Array(4) };
    expect(() => hfToOpenAI(new Map([["vision_model.encoder.layers.0.self_attn.q_proj.weight", one]]))).toThrow(
      /needs q_proj, k_proj and v_proj/,
    );
    expect(() => hfToOpenAI(new Map([["vision_model.something_new.weight", one]]))).toThrow(
      /unrecognised Hugging Face CLIP parameter "vision_model.something_new.weight"/,
    );
    expect(() => hfToOpenAI(new Map([["text_projection.weight", { shape: [4], data: new Float32Array(4) }]]))).toThrow(/should be 2-D/);
  });

  test("normaliseKeys strips module., drops stored hyper-parameters, and refuses collisions", () => {
    const one = { shape: [1], data: new Float32Array(1) };
    const out = normaliseKeys(new Map([["module.visual.proj", one], ["context_length", one], ["vocab_size", one]]));
    expect([...out.keys()]).toEqual(["visual.proj"]);
    expect(() => normaliseKeys(new Map([["module.a", one], ["a", one]]))).toThrow(/collides/);
  });
});

describe("safetensors writer", () => {
  const sd: StateDict = new Map([
    ["a.weight", { shape: [2, 3], data: Float32Array.from([1, -2, 3.5, 0, 1e-8, 70000]) }],
    ["odd", { shape: [3], data: Float32Array.from([0.1, 0.2, 0.3]) }],
    ["scalar", { shape: [], data: Float32Array.from([7]) }],
    ["empty", { shape: [0, 4], data: new Float32Array(0) }],
  ]);

  test("F32 round-trips exactly, header padded to 8 bytes", () => {
    const bytes = writeSafetensors(sd, "F32", { format: "pt" });
    const headerLen = new DataView(bytes.buffer).getUint32(0, true);
    expect(headerLen % 8).toBe(0);
    const back = parseSafetensors(bytes);
    expect([...back.keys()]).toEqual([...sd.keys()]);
    for (const [k, t] of sd) {
      expect(back.get(k)!.shape).toEqual(t.shape);
      expect(back.get(k)!.dtype).toBe("F32");
      expect(Array.from(back.get(k)!.data)).toEqual(Array.from(t.data));
    }
  });

  test("F16 rounds like torch .half() (overflow to inf, tiny to subnormal)", () => {
    const back = parseSafetensors(writeSafetensors(sd, "F16"));
    expect(back.get("a.weight")!.dtype).toBe("F16");
    for (const [k, t] of sd) {
      expect(Array.from(back.get(k)!.data), k).toEqual(Array.from(t.data, (x) => f16BitsToF32(f32ToF16Bits(x))));
    }
    expect(back.get("a.weight")!.data[5]).toBe(Infinity);
  });

  test("a tensor whose data does not fill its shape is refused", () => {
    expect(() => writeSafetensors(new Map([["x", { shape: [2, 2], data: new Float32Array(3) }]]), "F32")).toThrow(WeightsError);
  });
});

describe("half precision conversion", () => {
  test("f32 → f16 matches numpy on edge and random cases", () => {
    const f = new Float32Array(1);
    const u = new Uint32Array(f.buffer);
    for (const [bits, half] of expected.f16_cases) {
      u[0] = bits;
      expect(f32ToF16Bits(f[0]!), `f32 bits ${bits.toString(16)}`).toBe(half);
    }
  });

  test("every finite f16 survives f16 → f32 → f16; NaN stays NaN", () => {
    const bad: number[] = [];
    let nans = 0;
    for (let h = 0; h < 65536; h++) {
      const x = f16BitsToF32(h);
      if (Number.isNaN(x)) {
        nans++;
        if ((h & 0x7c00) !== 0x7c00 || (h & 0x3ff) === 0 || !Number.isNaN(f16BitsToF32(f32ToF16Bits(x)))) bad.push(h);
      } else if (f32ToF16Bits(x) !== h) {
        bad.push(h);
      }
    }
    expect(bad).toEqual([]);
    expect(nans).toBe(2 * 1023);
  });
});
