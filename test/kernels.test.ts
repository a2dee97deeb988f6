// The SIMD wasm kernels against the readable TypeScript ones, bit for bit, on random shapes and values; and the
// same cases on 1, 2 and 3 threads (work is split over output units only, so the bits cannot depend on it); and
// the seam between them, generated from assembly/'s signatures.
import { readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import fc from "fast-check";
import TS from "typescript";
import { test } from "@fast-check/vitest";
import { afterAll, beforeAll, describe, expect } from "vitest";
import { ARITY, CONSTANT_NAMES, KERNEL_NAMES } from "../src/backend/kernels.generated.js";
import { TsBackend } from "../src/backend/ts.js";
import { createWasmBackend, type WasmBackend } from "../src/backend/wasm.js";
import { activate, gelu, type Activation } from "../src/kernels/activations.js";
import { conv2dOutputSize } from "../src/kernels/conv2d.js";
import { ERF_CLAMP, ERF_SPLIT, erf } from "../src/kernels/erf.js";
import { EXP_HI, EXP_LO, expf } from "../src/kernels/exp.js";
import { AttentionPool2d, buildModel } from "../src/model.js";
import { Params } from "../src/nn.js";
import { parseSafetensors } from "../src/weights/safetensors.js";
import { npy } from "./helpers/golden.js";
import type { StateDict, Tensor } from "../src/tensor.js";

const ts = new TsBackend();
let wasm: WasmBackend[] = []; // threads 1, 2, 3

beforeAll(async () => {
  wasm = await Promise.all([1, 2, 3].map((threads) => createWasmBackend({ threads, minParallelWork: 0 })));
});
afterAll(() => wasm.forEach((b) => b.dispose()));

/** The bits of each value; NaN canonicalised, as wasm and JS may carry different NaN signs and payloads. */
function bits(a: Float32Array): Uint32Array {
  const u = new Uint32Array(a.length);
  const view = new Uint32Array(a.buffer, a.byteOffset, a.length);
  for (let i = 0; i < a.length; i++) u[i] = Number.isNaN(a[i]) ? 0x7fc00000 : view[i];
  return u;
}

/** Runs op on the TS backend and on every wasm backend; all must agree to the bit. */
function same(op: (b: TsBackend | WasmBackend) => Float32Array | Tensor): void {
  const data = (r: Float32Array | Tensor) => (r instanceof Float32Array ? r : r.data);
  const expected = bits(data(op(ts)));
  for (const b of wasm) expect(bits(data(op(b))), `${b.threads} thread(s)`).toEqual(expected);
}

/** Deterministic values from a seed: mostly uniform in [−2, 2], with exact zeros, −0 and small integers. */
function values(n: number, seed: number): Float32Array {
  let s = seed >>> 0;
  const next = () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = Math.imul(s ^ (s >>> 15), 1 | s);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const r = next();
    out[i] = r < 0.05 ? 0 : r < 0.08 ? -0 : r < 0.12 ? Math.round(next() * 8 - 4) : next() * 4 - 2;
  }
  return out;
}

const t = (shape: number[], seed: number): Tensor => ({ shape, data: values(shape.reduce((a, b) => a * b, 1), seed) });
const seed = fc.integer({ min: 0, max: 0x7fffffff });
const act = fc.constantFrom<Activation>("none", "relu", "quickgelu", "gelu");
const RUNS = { numRuns: 60 };

describe("expf and activations", () => {
  const edges = [
    EXP_HI, Math.fround(EXP_HI * (1 + 2 ** -23)), EXP_LO, Math.fround(EXP_LO * (1 + 2 ** -23)), -87.33654, 88.7,
    Infinity, -Infinity, NaN, 0, -0, 1, -1, 0.5, -0.5, 1e-30, -1e-30, 1e-45, 3.4028234663852886e38, -3.4028234663852886e38,
    Math.LN2, -Math.LN2, 63.5, -63.5, 126 * Math.LN2, -125 * Math.LN2,
    // erf's region split and clamp, and where it reaches 1, an ulp either side; subnormals
    ...[ERF_SPLIT, ERF_CLAMP, 3.9192, Math.SQRT2, ERF_CLAMP * Math.SQRT2].flatMap((v) => [v, -v, v * (1 - 2 ** -24), v * (1 + 2 ** -23)]),
    1e-40, -1e-40, 1.1754942e-38, -1.1754942e-38, 1e-20, 12, -12,
  ].map(Math.fround);

  test("expf on the edge values", () => {
    const x = Float32Array.from(edges);
    same((b) => (b instanceof TsBackend ? x.map(expf) : b.expf(x)));
  });

  test.prop([fc.array(fc.float(), { minLength: 1, maxLength: 67 })], RUNS)("expf on any float", (xs) => {
    const x = Float32Array.from(xs);
    same((b) => (b instanceof TsBackend ? x.map(expf) : b.expf(x)));
  });

  test.prop([fc.array(fc.float({ min: -100, max: 100 }), { minLength: 1, maxLength: 67 })], RUNS)("expf around its range", (xs) => {
    const x = Float32Array.from(xs);
    same((b) => (b instanceof TsBackend ? x.map(expf) : b.expf(x)));
  });

  test.prop([fc.array(fc.float(), { minLength: 1, maxLength: 67 }), act], RUNS)("activations on any float", (xs, a) => {
    const x = Float32Array.from([...xs, ...edges]);
    same((b) => (b instanceof TsBackend ? x.map((v) => activate(v, a)) : b.activate(x, a)));
  });

  test("erf on the edge values", () => {
    const x = Float32Array.from(edges);
    same((b) => (b instanceof TsBackend ? x.map(erf) : b.erf(x)));
  });

  test.prop([fc.array(fc.float(), { minLength: 1, maxLength: 67 })], RUNS)("erf on any float", (xs) => {
    const x = Float32Array.from(xs);
    same((b) => (b instanceof TsBackend ? x.map(erf) : b.erf(x)));
  });

  test.prop([fc.array(fc.float({ min: -12, max: 12 }), { minLength: 1, maxLength: 67 })], RUNS)("erf and gelu around their range", (xs) => {
    const x = Float32Array.from(xs);
    same((b) => (b instanceof TsBackend ? x.map(erf) : b.erf(x)));
    same((b) => (b instanceof TsBackend ? x.map(gelu) : b.activate(x, "gelu")));
  });

  test("erf and gelu on the specials", () => {
    const x = Float32Array.from([0, -0, Infinity, -Infinity, NaN, ERF_CLAMP, -3e38, 1e-45]);
    for (const y of [x.map(erf), wasm[0].erf(x)]) {
      expect([...y.slice(0, 7)]).toEqual([0, -0, 1, -1, NaN, 1, -1]); // toEqual tells −0 from 0
      expect(y[7]).toBe(2 ** -149); // 1.128·2^-149 rounds to 2^-149
    }
    for (const y of [x.map(gelu), wasm[0].activate(x, "gelu")]) {
      // −Inf·0.5·(1 + erf(−Inf)) = −Inf·0 = NaN, as in torch; a finite x far below gives −0
      expect([...y.slice(0, 5)]).toEqual([0, -0, Infinity, NaN, NaN]);
      expect(y[6]).toBe(-0);
    }
  });

  test("relu keeps NaN and −0, as torch.relu does", () => {
    const x = Float32Array.from([NaN, -0, 0, -1e-45, -Infinity, Infinity, 2]);
    same((b) => (b instanceof TsBackend ? x.map((v) => activate(v, "relu")) : b.activate(x, "relu")));
    for (const y of [x.map((v) => activate(v, "relu")), wasm[0].activate(x, "relu")]) {
      expect([...y]).toEqual([NaN, -0, 0, 0, 0, Infinity, 2]);
    }
  });

  test("the edges hit every branch of expf", () => {
    const y = wasm[0].expf(Float32Array.from([EXP_HI * 1.01, EXP_LO * 1.01, 0, NaN]));
    expect([...y.slice(0, 3)]).toEqual([Infinity, 0, 1]);
    expect(y[3]).toBeNaN();
  });
});

describe("linear", () => {
  test.prop(
    [fc.integer({ min: 1, max: 23 }), fc.integer({ min: 1, max: 70 }), fc.integer({ min: 1, max: 37 }), act, fc.boolean(), fc.boolean(), seed],
    RUNS,
  )("x·wᵀ + b + residual, activated", (M, K, N, a, withBias, withResidual, s) => {
    const x = t([M, K], s), w = t([N, K], s + 1), bias = withBias ? t([N], s + 2) : null;
    const res = withResidual ? t([M, N], s + 3) : null;
    same((b) => b.linear(x, b.prepareLinear(w, bias), a, res));
  });

  test("several K and M blocks, a partial last panel, a 3-D input", () => {
    const x = t([2, 101, 600], 1), w = t([37, 600], 2), bias = t([37], 3), res = t([2, 101, 37], 4);
    same((b) => b.linear(x, b.prepareLinear(w, bias), "quickgelu", res));
  });

  test("the same with exact GELU (erf), as a ViT's MLP with nn.GELU would run", () => {
    const x = t([2, 37, 200], 11), w = t([67, 200], 12), bias = t([67], 13);
    for (let i = 0; i < x.data.length; i += 3) x.data[i] *= 4; // reach erf's far region
    same((b) => b.linear(x, b.prepareLinear(w, bias), "gelu"));
  });

  test("non-finite inputs propagate the same way", () => {
    const x = t([5, 9], 7), w = t([11, 9], 8);
    x.data[3] = Infinity;
    x.data[20] = NaN;
    w.data[50] = -Infinity;
    w.data[7] = 3e38;
    same((b) => b.linear(x, b.prepareLinear(w, null), "relu"));
    same((b) => b.linear(x, b.prepareLinear(w, null), "gelu"));
  });

  test("rejects an input of the wrong width", () => {
    const lw = wasm[0].prepareLinear(t([4, 3], 1), null);
    expect(() => wasm[0].linear(t([2, 5], 2), lw)).toThrow(/does not end in 3/);
    expect(() => wasm[0].linear(t([2, 3], 2), lw, "none", t([2, 5], 3))).toThrow(/residual/);
  });
});

describe("conv2d", () => {
  const conv = fc.record({
    N: fc.integer({ min: 1, max: 2 }), C: fc.integer({ min: 1, max: 5 }), H: fc.integer({ min: 1, max: 13 }),
    W: fc.integer({ min: 1, max: 13 }), O: fc.integer({ min: 1, max: 11 }), kh: fc.integer({ min: 1, max: 4 }),
    kw: fc.integer({ min: 1, max: 4 }), stride: fc.integer({ min: 1, max: 3 }), padding: fc.integer({ min: 0, max: 2 }),
  }).filter((s) => s.H + 2 * s.padding >= s.kh && s.W + 2 * s.padding >= s.kw);

  function check(s: { N: number; C: number; H: number; W: number; O: number; kh: number; kw: number; stride: number; padding: number },
    a: Activation, withBias: boolean, withResidual: boolean, sd: number): void {
    const [Ho, Wo] = conv2dOutputSize(s);
    const x = t([s.N, s.C, s.H, s.W], sd), w = t([s.O, s.C, s.kh, s.kw], sd + 1);
    const bias = withBias ? t([s.O], sd + 2) : null, res = withResidual ? t([s.N, s.O, Ho, Wo], sd + 3) : null;
    same((b) => b.conv2d(x, b.prepareConv2d(w, bias, s.stride, s.padding), a, res));
  }

  test.prop([conv, act, fc.boolean(), fc.boolean(), seed], RUNS)("any kernel, stride, padding", (s, a, wb, wr, sd) => check(s, a, wb, wr, sd));

  test.prop([fc.integer({ min: 1, max: 9 }), fc.integer({ min: 1, max: 20 }), fc.integer({ min: 1, max: 12 }), act, seed], RUNS)(
    "1×1 stride 1 (the packing fast path)", (C, HW, O, a, sd) => check({ N: 2, C, H: HW, W: HW + 1, O, kh: 1, kw: 1, stride: 1, padding: 0 }, a, true, true, sd),
  );

  test.prop([fc.integer({ min: 1, max: 8 }), fc.integer({ min: 1, max: 4 }), fc.integer({ min: 1, max: 5 }), seed], { numRuns: 30 })(
    "patch embedding (kernel = stride, no padding, no bias)", (p, g, O, sd) =>
      check({ N: 1, C: 3, H: p * g + (sd % 3), W: p * g, O, kh: p, kw: p, stride: p, padding: 0 }, "none", false, false, sd),
  );

  test.prop([fc.integer({ min: 0, max: 2 }), fc.integer({ min: 1, max: 6 }), fc.integer({ min: 1, max: 19 }), fc.integer({ min: 1, max: 19 }),
    fc.integer({ min: 1, max: 20 }), act, seed], RUNS)(
    "stride 1, 'same' padding (kw = 2·pad + 1: im2col's shifted-vector path), planes down to 1×1",
    (pad, C, H, W, O, a, sd) => check({ N: 1, C, H, W, O, kh: 2 * pad + 1, kw: 2 * pad + 1, stride: 1, padding: pad }, a, true, sd % 2 === 0, sd),
  );

  test("3×3 stride 1 and 2, padding 1, ResNet-like sizes", () => {
    check({ N: 1, C: 16, H: 14, W: 14, O: 24, kh: 3, kw: 3, stride: 1, padding: 1 }, "relu", true, false, 5);
    check({ N: 2, C: 3, H: 17, W: 15, O: 9, kh: 3, kw: 3, stride: 2, padding: 1 }, "relu", true, true, 6);
  });

  test("wide rows: whole-panel copies in im2col, panels and thread shares straddling rows", () => {
    check({ N: 1, C: 3, H: 5, W: 37, O: 5, kh: 3, kw: 3, stride: 1, padding: 1 }, "none", true, false, 7);
    check({ N: 1, C: 2, H: 4, W: 40, O: 6, kh: 3, kw: 5, stride: 1, padding: 2 }, "relu", false, true, 8);
    check({ N: 1, C: 2, H: 9, W: 33, O: 4, kh: 1, kw: 1, stride: 1, padding: 0 }, "quickgelu", true, true, 9);
  });

  test("padding taps are 0·w, so infinite weights give NaN like the TypeScript", () => {
    const x = t([1, 1, 3, 3], 1), w = t([2, 1, 3, 3], 2);
    w.data[0] = Infinity;
    same((b) => b.conv2d(x, b.prepareConv2d(w, null, 1, 1)));
  });
});

describe("attention", () => {
  const shape = fc.record({
    B: fc.integer({ min: 1, max: 3 }), Lq: fc.integer({ min: 1, max: 9 }), Lk: fc.integer({ min: 1, max: 21 }),
    heads: fc.integer({ min: 1, max: 4 }), hd: fc.integer({ min: 1, max: 21 }),
  });

  test.prop([shape, seed], RUNS)("all keys visible", ({ B, Lq, Lk, heads, hd }, s) => {
    const q = t([B, Lq, heads * hd], s), k = t([B, Lk, heads * hd], s + 1), v = t([B, Lk, heads * hd], s + 2);
    same((b) => b.attention(q, k, v, heads));
  });

  test.prop([shape, seed, fc.boolean()], RUNS)("per-row key counts (causal or random, 1 included)", ({ B, Lq, Lk, heads, hd }, s, causal) => {
    const L = causal ? Lk : Lq;
    const q = t([B, L, heads * hd], s), k = t([B, Lk, heads * hd], s + 1), v = t([B, Lk, heads * hd], s + 2);
    const counts = Int32Array.from({ length: B * L }, (_, i) => (causal ? (i % L) + 1 : ((i * 7 + s) % Lk) + 1));
    same((b) => b.attention(q, k, v, heads, counts));
  });

  test("CLIP text shape: 77 tokens, 8 heads of 64, causal", () => {
    const q = t([1, 77, 512], 1), k = t([1, 77, 512], 2), v = t([1, 77, 512], 3);
    same((b) => b.attention(q, k, v, 8, Int32Array.from({ length: 77 }, (_, i) => i + 1)));
  });

  test("rejects key counts out of range", () => {
    const q = t([1, 2, 4], 1);
    expect(() => wasm[0].attention(q, q, q, 2, Int32Array.from([1, 3]))).toThrow(/keyCount\[1\] = 3/);
    expect(() => wasm[0].attention(q, q, q, 3)).toThrow(/heads/);
  });
});

describe("layer norm and average pooling", () => {
  test.prop([fc.integer({ min: 1, max: 12 }), fc.integer({ min: 1, max: 70 }), fc.constantFrom(1e-5, 1e-6, 1e-12, 0.1), seed], RUNS)(
    "layer norm", (rows, D, eps, s) => {
      const x = t([rows, D], s), g = t([D], s + 1), be = t([D], s + 2);
      same((b) => b.layerNorm(x, g, be, eps));
    },
  );

  test("layer norm of a constant row (σ² = 0) and of a 3-D input", () => {
    const x = { shape: [2, 3, 5], data: new Float32Array(30).fill(0.3) };
    same((b) => b.layerNorm(x, t([5], 1), t([5], 2)));
  });

  test.prop([fc.integer({ min: 1, max: 2 }), fc.integer({ min: 1, max: 4 }), fc.integer({ min: 1, max: 13 }), fc.integer({ min: 1, max: 13 }),
    fc.integer({ min: 1, max: 4 }), seed], RUNS)("avgPool2d", (N, C, H, W, k, s) => {
    k = Math.min(k, H, W);
    const x = t([N, C, H, W], s);
    same((b) => b.avgPool2d(x, k));
  });
});

describe("erf and GELU against PyTorch (test/golden/gelu, tools/golden/make_gelu_golden.py)", () => {
  const x = npy("test/golden/gelu/x.npy").data;
  const u32 = new Uint32Array(1), asF32 = new Float32Array(u32.buffer);
  /** The spacing of float32 at |b|: 2^-149 for subnormals. */
  const ulp = (b: number) => {
    asF32[0] = b;
    return 2 ** (Math.max((u32[0] >>> 23) & 0xff, 1) - 150);
  };

  /**
   * Non-finite b must be matched exactly; over the rest, the worst |a − b| / unit(i) where `where(i)`, and
   * max|a − b| / max|b| (the README's relative error) over |x| ≤ 10, as gelu(3e38) would set the scale otherwise.
   */
  function compare(a: Float32Array, b: Float32Array, where: (i: number) => boolean, unit: (i: number) => number) {
    let maxAbs = 0, scale = 0, worst = 0, at = NaN;
    for (let i = 0; i < b.length; i++) {
      if (!Number.isFinite(b[i])) {
        expect(a[i], `x = ${x[i]}`).toBe(b[i]); // NaN matches NaN
        continue;
      }
      const d = Math.abs(a[i] - b[i]);
      if (Math.abs(x[i]) <= 10) [maxAbs, scale] = [Math.max(maxAbs, d), Math.max(scale, Math.abs(b[i]))];
      if (where(i) && !(d / unit(i) <= worst)) [worst, at] = [d / unit(i), x[i]];
    }
    return { maxRel: maxAbs / scale, worst, at, toString: () => `${worst.toFixed(2)} (x = ${at})` };
  }
  const all = () => true, nonNegative = (i: number) => x[i] >= 0, negative = (i: number) => x[i] < 0;

  test("erf: max rel ≤ 1e-6, and within 2 ulp of torch.erf everywhere (subnormals included)", () => {
    const ref = npy("test/golden/gelu/erf.npy").data;
    const mine = x.map(erf);
    expect(bits(wasm[0].erf(x))).toEqual(bits(mine));
    const r = compare(mine, ref, all, (i) => ulp(ref[i]));
    console.log(`erf vs torch.erf, ${x.length} inputs: max rel ${r.maxRel.toExponential(2)}, max ulp ${r}`);
    expect(r.maxRel).toBeLessThanOrEqual(1e-6);
    expect(r.worst).toBeLessThanOrEqual(2);
  });

  // For x < 0, 1 + erf(x/√2) cancels: an absolute error ε in erf (ours: about an ulp, 2^-24, plus the rounding
  // of the sum) becomes |x|/2·ε in GELU however small the result, so there the bound is in units of |x|·2^-24.
  const cancelling = (i: number) => Math.abs(x[i]) * 2 ** -24 + 2 ** -149;

  test("gelu against the exact x·Φ(x): within 2 ulp for x ≥ 0, |x|·2^-23 for x < 0", () => {
    const ref = npy("test/golden/gelu/gelu_exact.npy").data;
    const mine = x.map(gelu);
    expect(bits(wasm[0].activate(x, "gelu"))).toEqual(bits(mine));
    const pos = compare(mine, ref, nonNegative, (i) => ulp(ref[i])), neg = compare(mine, ref, negative, cancelling);
    console.log(`gelu vs exact, ${x.length} inputs: max rel ${pos.maxRel.toExponential(2)}; x ≥ 0: max ulp ${pos}; x < 0: max |a − b| / (|x|·2^-24) ${neg}`);
    expect(pos.maxRel).toBeLessThanOrEqual(1e-6);
    expect(pos.worst).toBeLessThanOrEqual(2);
    expect(neg.worst).toBeLessThanOrEqual(2);
  });

  test("gelu against torch's: max rel ≤ 1e-6; torch's own float GELU (oneDNN's erf) is the looser of the two", () => {
    const ref = npy("test/golden/gelu/gelu.npy").data;
    const mine = x.map(gelu);
    const pos = compare(mine, ref, nonNegative, (i) => ulp(ref[i])), neg = compare(mine, ref, negative, cancelling);
    const big = compare(mine, ref, (i) => Math.abs(ref[i]) >= 0.1, (i) => ulp(ref[i]));
    console.log(`gelu vs torch gelu, ${x.length} inputs: max rel ${pos.maxRel.toExponential(2)}; x ≥ 0: max ulp ${pos}; ` +
      `x < 0: max |a − b| / (|x|·2^-24) ${neg}; max ulp where |gelu| ≥ 0.1: ${big}`);
    expect(pos.maxRel).toBeLessThanOrEqual(1e-6);
    expect(pos.worst).toBeLessThanOrEqual(8);
    expect(neg.worst).toBeLessThanOrEqual(8);
  });
});

describe("hostile input: NaN and ±Inf as in PyTorch, data that is not float32, invalid shapes (both backends alike)", () => {
  type Enc = { shape: number[]; data: (number | string)[] };
  const dec = (e: Enc): Tensor => ({ shape: e.shape, data: Float32Array.from(e.data, (v) => Number(v)) }); // "NaN", "Infinity"
  const golden = JSON.parse(readFileSync("test/golden/nan/ops.json", "utf8")) as {
    cases: ({ op: string; name: string; out: Enc } & Record<string, unknown>)[];
    attnpool: { spacialDim: number; embedDim: number; heads: number; outputDim: number; params: Record<string, Enc>; cases: { name: string; x: Enc; out: Enc }[] };
  };

  /** NaN and ±Inf exactly where PyTorch has them; finite values to rounding (PyTorch sums in other orders). */
  function likeTorch(actual: Float32Array, expected: Float32Array): void {
    expect(actual.length).toBe(expected.length);
    for (let i = 0; i < expected.length; i++) {
      const a = actual[i], e = expected[i];
      if (Number.isNaN(e)) expect(a, `[${i}]`).toBeNaN();
      else if (!Number.isFinite(e)) expect(a, `[${i}]`).toBe(e);
      else expect(Math.abs(a - e), `[${i}]: ${a} vs ${e}`).toBeLessThanOrEqual(2e-6 * Math.max(1, Math.abs(e)));
    }
  }

  const runCase = (b: TsBackend | WasmBackend, c: (typeof golden.cases)[number]): Tensor => {
    if (c.op === "avgPool2d") return b.avgPool2d(dec(c.x as Enc), c.k as number);
    if (c.op === "layerNorm") return b.layerNorm(dec(c.x as Enc), dec(c.weight as Enc), dec(c.bias as Enc), c.eps as number);
    return b.attention(dec(c.q as Enc), dec(c.k as Enc), dec(c.v as Enc), c.heads as number);
  };

  test.each(golden.cases.map((c) => [`${c.op}: ${c.name}`, c] as const))("%s (golden from torch)", (_, c) => {
    same((b) => runCase(b, c));
    likeTorch(runCase(ts, c).data, dec(c.out).data);
  });

  test.each(golden.attnpool.cases.map((c) => [c.name, c] as const))("the ResNet's attention pool, %s (golden from torch)", (_, c) => {
    const { spacialDim, embedDim, heads, outputDim } = golden.attnpool;
    const run = (b: TsBackend | WasmBackend) => {
      const sd: StateDict = new Map(Object.entries(golden.attnpool.params).map(([k, v]) => [`attnpool.${k}`, dec(v)]));
      return new AttentionPool2d(b, new Params(sd), "attnpool", spacialDim, embedDim, heads, outputDim).forward(dec(c.x));
    };
    same(run);
    likeTorch(run(ts).data, dec(c.out).data);
  });

  test("data that is not float32 (a Float64Array of pixels) is rounded to f32 first: the same bits everywhere", () => {
    const f64 = (shape: number[], s: number): Tensor => ({
      shape, data: Float64Array.from(values(shape.reduce((a, b) => a * b, 1), s), (v, i) => v + (i % 7) * 1e-9 + 1e-12) as unknown as Float32Array,
    });
    const asF32 = (t: Tensor): Tensor => ({ shape: t.shape, data: Float32Array.from(t.data) });
    const x = f64([1, 3, 9, 9], 1), w = t([4, 3, 3, 3], 2), r = f64([1, 4, 9, 9], 3);
    expect([...x.data].some((v) => v !== Math.fround(v))).toBe(true);
    const ops: ((b: TsBackend | WasmBackend, x: Tensor, r: Tensor) => Tensor)[] = [
      (b, x, r) => b.conv2d(x, b.prepareConv2d(w, null, 1, 1), "relu", r),
      (b, x, r) => b.linear(x, b.prepareLinear(t([5, 9], 4), t([5], 5)), "none", { shape: [1, 3, 9, 5], data: r.data.subarray(0, 135) }),
      (b, x) => b.layerNorm(x, t([9], 6), t([9], 7)),
      (b, x) => b.avgPool2d(x, 2),
      (b, x) => b.attention({ shape: [3, 9, 9], data: x.data }, { shape: [3, 9, 9], data: x.data }, { shape: [3, 9, 9], data: x.data }, 3),
      (b, _, r) => b.linear(t([2, 3], 8), b.prepareLinear(f64([4, 3], 9), f64([4], 10))),
    ];
    for (const op of ops) {
      const expected = bits(op(ts, asF32(x), asF32(r)).data);
      same((b) => op(b, x, r));
      expect(bits(op(ts, x, r).data)).toEqual(expected);
    }
  });

  test("a model's encodeImage on Float64Array pixels: the bits of their f32 rounding, on both backends", async () => {
    const sd = parseSafetensors(readFileSync("test/golden/models/rn/weights.safetensors"));
    const pixels = npy("test/golden/models/rn/pixels.npy");
    const f64 = { shape: pixels.shape, data: Float64Array.from(pixels.data, (v, i) => v + ((i % 5) - 2) * 1e-10) as unknown as Float32Array };
    const rounded = { shape: pixels.shape, data: Float32Array.from(f64.data) };
    expect(bits(rounded.data)).not.toEqual(bits(pixels.data)); // the offsets survive the rounding somewhere
    const expected = bits(buildModel(sd, ts).encodeImage(rounded).data);
    expect(bits(buildModel(sd, ts).encodeImage(f64).data)).toEqual(expected);
    const model = buildModel(sd, await createWasmBackend({ threads: 2, minParallelWork: 0 }));
    expect(bits(model.encodeImage(f64).data)).toEqual(expected);
    model.dispose();
  });

  test("invalid shapes and arguments: both backends refuse with the same one-line message", () => {
    const x4 = t([1, 2, 4, 4], 1), q = t([1, 2, 4], 2), kv = t([1, 3, 4], 3);
    const bad: [RegExp, (b: TsBackend | WasmBackend) => unknown][] = [
      [/linear: residual \[2, 4\] does not match the output \[2, 5\]/, (b) => b.linear(t([2, 3], 1), b.prepareLinear(t([5, 3], 2), null), "none", t([2, 4], 3))],
      [/linear: input \[2, 4\] does not end in 3/, (b) => b.linear(t([2, 4], 1), b.prepareLinear(t([5, 3], 2), null))],
      [/linear: input: 5 values for shape \[2, 3\]/, (b) => b.linear({ shape: [2, 3], data: new Float32Array(5) }, b.prepareLinear(t([5, 3], 2), null))],
      [/linear: input: shape \[2, -3\] is not made of integers/, (b) => b.linear({ shape: [2, -3], data: new Float32Array(0) }, b.prepareLinear(t([5, 3], 2), null))],
      [/prepareLinear: bias \[4\] for 5 outputs/, (b) => b.prepareLinear(t([5, 3], 2), t([4], 1))],
      [/prepareLinear: weight: 14 values for shape \[5, 3\]/, (b) => b.prepareLinear({ shape: [5, 3], data: new Float32Array(14) }, null)],
      [/prepareConv2d: stride 0/, (b) => b.prepareConv2d(t([3, 2, 3, 3], 1), null, 0, 1)],
      [/conv2d: input \[1, 2, 4, 4\] is not \[N, 3, H, W\]/, (b) => b.conv2d(x4, b.prepareConv2d(t([4, 3, 3, 3], 1), null, 1, 1))],
      [/conv2d: residual \[1, 4, 4, 3\] does not match the output \[1, 4, 4, 4\]/, (b) => b.conv2d(x4, b.prepareConv2d(t([4, 2, 3, 3], 1), null, 1, 1), "relu", t([1, 4, 4, 3], 2))],
      [/conv2d: input: 31 values for shape \[1, 2, 4, 4\]/, (b) => b.conv2d({ shape: [1, 2, 4, 4], data: new Float32Array(31) }, b.prepareConv2d(t([4, 2, 3, 3], 1), null, 1, 1))],
      [/conv2d: input \[1, 2, 2, 2\] is smaller than the 3×3 kernel/, (b) => b.conv2d(t([1, 2, 2, 2], 1), b.prepareConv2d(t([4, 2, 3, 3], 1), null, 1, 0))],
      [/linear: unknown activation "gelu2"/, (b) => b.linear(t([2, 3], 1), b.prepareLinear(t([5, 3], 2), null), "gelu2" as Activation)],
      [/attention: keyCount has 3 entries, expected 2/, (b) => b.attention(q, kv, kv, 2, Int32Array.from([1, 2, 3]))],
      [/attention: keyCount has 1 entries, expected 2/, (b) => b.attention(q, kv, kv, 2, Int32Array.from([1]))],
      [/attention: keyCount\[1\] = 4 not in \[1, 3\]/, (b) => b.attention(q, kv, kv, 2, Int32Array.from([3, 4]))],
      [/attention: keyCount\[0\] = 0 not in \[1, 3\]/, (b) => b.attention(q, kv, kv, 2, Int32Array.from([0, 1]))],
      [/attention: keyCount\[1\] = -1 not in \[1, 3\]/, (b) => b.attention(q, kv, kv, 2, Int32Array.from([1, -1]))],
      [/attention: 3 heads do not divide 4/, (b) => b.attention(q, kv, kv, 3)],
      [/attention: 0 heads do not divide 4/, (b) => b.attention(q, kv, kv, 0)],
      [/attention: 1.5 heads do not divide 4/, (b) => b.attention(q, kv, kv, 1.5)],
      [/attention: q \[1, 2, 4\], k \[1, 3, 4\], v \[1, 2, 4\] do not match/, (b) => b.attention(q, kv, q, 2)],
      [/attention: k: 11 values for shape \[1, 3, 4\]/, (b) => b.attention(q, { shape: [1, 3, 4], data: new Float32Array(11) }, kv, 2)],
      [/attention: no keys/, (b) => b.attention(q, t([1, 0, 4], 1), t([1, 0, 4], 1), 2)],
      [/avgPool2d: kernel 0 must be a positive integer/, (b) => b.avgPool2d(x4, 0)],
      [/avgPool2d: kernel -2 must be a positive integer/, (b) => b.avgPool2d(x4, -2)],
      [/avgPool2d: kernel 1.5 must be a positive integer/, (b) => b.avgPool2d(x4, 1.5)],
      [/avgPool2d: kernel 5 is larger than the 4×4 input/, (b) => b.avgPool2d(x4, 5)],
      [/avgPool2d: input: 33 values for shape \[1, 2, 4, 4\]/, (b) => b.avgPool2d({ shape: [1, 2, 4, 4], data: new Float32Array(33) }, 2)],
      [/layerNorm: weight \[3\] \/ bias \[4\] for rows of 4/, (b) => b.layerNorm(q, t([3], 1), t([4], 2))],
      [/layerNorm: weight \[4\] \/ bias \[5\] for rows of 4/, (b) => b.layerNorm(q, t([4], 1), t([5], 2))],
      [/layerNorm: eps NaN must be finite and ≥ 0/, (b) => b.layerNorm(q, t([4], 1), t([4], 2), NaN)],
      [/layerNorm: input: 7 values for shape \[2, 4\]/, (b) => b.layerNorm({ shape: [2, 4], data: new Float32Array(7) }, t([4], 1), t([4], 2))],
    ];
    const message = (f: () => unknown): string => {
      try {
        f();
      } catch (e) {
        return (e as Error).message;
      }
      return "(no error)";
    };
    for (const [re, call] of bad) {
      const expected = message(() => call(ts));
      expect(expected).toMatch(re);
      expect(expected).not.toContain("\n");
      for (const b of wasm) expect(message(() => call(b)), `${b.threads} thread(s)`).toBe(expected);
    }
  });
});

describe("the seam: src/backend/kernels.generated.ts, the typed binding of assembly/'s kernels", () => {
  type Generate = (read?: (file: string) => string) => string;
  const load = async () => {
    const url = pathToFileURL(join(process.cwd(), "scripts/gen-kernels.mjs")).href;
    return ((await import(url)) as { generateKernels: Generate }).generateKernels;
  };
  const assembly = (file: string) => readFileSync(`assembly/${file}`, "utf8");
  const GENERATED = "src/backend/kernels.generated.ts";

  test("is what scripts/gen-kernels.mjs writes from assembly/ now (npm run build:wasm regenerates it)", async () => {
    expect(readFileSync(GENERATED, "utf8")).toBe((await load())(assembly));
  });

  test("names every export of both builds, each kernel with its arguments then (tid, u0, u1)", () => {
    for (const [file, shared] of [["build/clip.wasm", false], ["build/clip-threads.wasm", true]] as const) {
      const memory = new WebAssembly.Memory({ initial: 1, maximum: shared ? 65536 : undefined, shared });
      const exports = new WebAssembly.Instance(new WebAssembly.Module(readFileSync(file)), { env: { memory } }).exports;
      const names = Object.keys(exports).filter((n) => n !== "memory").sort();
      expect(names, file).toEqual([...KERNEL_NAMES, ...CONSTANT_NAMES].sort());
      for (const k of KERNEL_NAMES) expect((exports[k] as (...a: number[]) => void).length, `${file} ${k}`).toBe(ARITY[k]);
      for (const c of CONSTANT_NAMES) expect(exports[c], `${file} ${c}`).toBeInstanceOf(WebAssembly.Global);
    }
  });

  test("renaming a kernel's parameter in assembly/ breaks the build of src/backend/wasm.ts", async () => {
    const generate = await load();
    const renamed = (file: string) => file === "linear.ts"
      ? assembly(file).replace(/(export function linear\([^)]*)\bresidual: usize/, "$1res: usize")
      : assembly(file);
    expect(renamed("linear.ts")).not.toBe(assembly("linear.ts"));
    const typeErrors = (generated: string, old?: TS.Program) => {
      const options: TS.CompilerOptions = {
        target: TS.ScriptTarget.ES2022, module: TS.ModuleKind.NodeNext, moduleResolution: TS.ModuleResolutionKind.NodeNext,
        lib: ["lib.es2022.d.ts", "lib.dom.d.ts"], strict: true, noEmit: true, skipLibCheck: true, types: ["node"],
      };
      const host = TS.createCompilerHost(options);
      const readFile = host.readFile.bind(host), getSourceFile = host.getSourceFile.bind(host);
      const target = resolve(GENERATED).replaceAll("\\", "/");
      host.readFile = (f) => (resolve(f).replaceAll("\\", "/") === target ? generated : readFile(f));
      host.getSourceFile = (f, v, onError, create) => resolve(f).replaceAll("\\", "/") === target
        ? TS.createSourceFile(f, generated, v) : getSourceFile(f, v, onError, create);
      const program = TS.createProgram(["src/backend/wasm.ts"], options, host, old);
      return { program, errors: TS.getPreEmitDiagnostics(program).map((d) => TS.flattenDiagnosticMessageText(d.messageText, "\n")) };
    };
    const before = typeErrors(generate(assembly));
    expect(before.errors).toEqual([]);
    const after = typeErrors(generate(renamed), before.program);
    expect(after.errors.join("\n")).toMatch(/'residual' does not exist in type .*res: number/);
  });
});
