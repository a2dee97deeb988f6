// The int8 linear (src/kernels/linear_int8.ts) and its SIMD twin (assembly/linear_int8.ts): the same bits on 1, 2
// and 3 threads, on random shapes and values; the integer sums exact; the rounding and the edge values as stated.
import fc from "fast-check";
import { test } from "@fast-check/vitest";
import { afterAll, beforeAll, describe, expect } from "vitest";
import { TsBackend } from "../src/backend/ts.js";
import { createWasmBackend, type WasmBackend } from "../src/backend/wasm.js";
import type { Activation } from "../src/kernels/activations.js";
import { linear } from "../src/kernels/linear.js";
import { linearInt8, packLinearWeightsInt8Js, quantize, quantizeLinearWeights, quantizeRow } from "../src/kernels/linear_int8.js";
import { StoredTensor, storedOf } from "../src/tensor.js";
import { storedInMemory } from "../src/weights/dtypes.js";
import type { Tensor } from "../src/tensor.js";
import { expectBits } from "./helpers/golden.js";

const ts = new TsBackend();
let wasm: WasmBackend[] = [];

beforeAll(async () => {
  wasm = await Promise.all([1, 2, 3].map((threads) => createWasmBackend({ threads, minParallelWork: 0 })));
});
afterAll(() => wasm.forEach((b) => b.dispose()));

/** NaN canonicalised: wasm and JS may give NaNs of other signs and payloads. */
function canon(a: Float32Array): Float32Array {
  return a.map((v) => (Number.isNaN(v) ? NaN : v));
}

/** The ts backend's int8 result, and every wasm backend's, bit for bit. */
function same(x: Tensor, w: Tensor, b: Tensor | null, act: Activation, res: Tensor | null): Float32Array {
  const expected = canon(ts.linear(x, ts.prepareLinear(w, b, "int8"), act, res).data);
  for (const be of wasm) expectBits(canon(be.linear(x, be.prepareLinear(w, b, "int8"), act, res).data), expected, `${be.threads} thread(s)`);
  return expected;
}

function random(n: number, seed: number, spread = 2): Float32Array {
  let s = seed >>> 0;
  const next = () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 4294967296;
  };
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const r = next();
    // zeros, ties of the quantizer (integers and halves), and a few large values per row
    out[i] = r < 0.05 ? 0 : r < 0.1 ? Math.round(next() * 16 - 8) / 2 : r < 0.12 ? (next() - 0.5) * 40 * spread : (next() * 2 - 1) * spread;
  }
  return out;
}
const t = (shape: number[], seed: number): Tensor => ({ shape, data: random(shape.reduce((a, b) => a * b, 1), seed) });
const seed = fc.integer({ min: 0, max: 0x7fffffff });
const act = fc.constantFrom<Activation>("none", "relu", "quickgelu", "gelu");

describe("quantize", () => {
  test("rounds half to even, clamps to ±127 and sends NaN to 0", () => {
    const cases: [number, number][] = [
      [0.5, 0], [1.5, 2], [2.5, 2], [-0.5, -0], [-1.5, -2], [-2.5, -2], [126.5, 126], [127.49, 127], [1e9, 127],
      [-1e9, -127], [Infinity, 127], [-Infinity, -127], [NaN, 0], [0.49999997, 0], [3.7, 4], [-3.7, -4],
    ];
    for (const [v, q] of cases) expect(quantize(v), `${v}`).toBe(q);
  });

  test("a row: scale max|v|/127, the largest value to ±127; a zero row has scale 0; NaN gives a NaN scale", () => {
    const q = new Int8Array(4);
    expect(quantizeRow(Float32Array.from([0.5, -2, 1, 0]), 0, 4, q, 0)).toBe(Math.fround(2 / 127));
    expect([...q]).toEqual([32, -127, 64, 0]); // 0.5·63.5 = 31.75 → 32; 1·63.5 = 63.5 → 64 (a tie, to even)
    expect(quantizeRow(new Float32Array(4), 0, 4, q, 0)).toBe(0);
    expect([...q]).toEqual([0, 0, 0, 0]);
    expect(quantizeRow(Float32Array.from([1, NaN, 2]), 0, 3, q, 0)).toBeNaN();
  });

  test("weights per output channel", () => {
    const { q, scale } = quantizeLinearWeights(Float32Array.from([1, -0.5, 0, 254, 127, -127]), 2, 3);
    expect([...scale]).toEqual([Math.fround(1 / 127), 2]);
    expect([...q]).toEqual([127, -64, 0, 127, 64, -64]); // −0.5·127 = −63.5 → −64; 127/2 = 63.5 → 64
  });
});

describe("linearInt8", () => {
  test.prop([fc.integer({ min: 1, max: 9 }), fc.integer({ min: 1, max: 70 }), fc.integer({ min: 1, max: 40 }), act, fc.boolean(), fc.boolean(), seed], { numRuns: 60 })(
    "ts = wasm on 1–3 threads, any M, K (odd too), N (partial panels too), bias, residual and activation",
    (M, K, N, a, withBias, withRes, s) => {
      same(t([M, K], s), t([N, K], s + 1), withBias ? t([N], s + 2) : null, a, withRes ? t([M, N], s + 3) : null);
    },
  );

  test.prop([fc.integer({ min: 190, max: 400 }), fc.integer({ min: 60, max: 200 }), seed], { numRuns: 4 })(
    "ts = wasm past one M block (192 rows), batched [B, L, K] input",
    (M, K, s) => {
      same({ shape: [2, M, K], data: random(2 * M * K, s) }, t([33, K], s + 1), t([33], s + 2), "gelu", null);
    },
  );

  test("the k-sum is exact: integer operands whose rows reach ±127 give the integer dot products", () => {
    const M = 3, K = 1001, N = 20; // |sum| up to 1001·127² > 2²⁴: the f32 conversion of the int32 rounds, as stated
    const ints = (n: number, s: number) => random(n, s, 1).map((v) => Math.max(-127, Math.min(127, Math.round(v * 60))));
    const x = ints(M * K, 1), w = ints(N * K, 2);
    for (let r = 0; r < M; r++) x[r * K] = 127;
    for (let r = 0; r < N; r++) w[r * K + 1] = -127;
    const y = same({ shape: [M, K], data: x }, { shape: [N, K], data: w }, null, "none", null);
    for (let m = 0; m < M; m++) {
      for (let n = 0; n < N; n++) {
        let exact = 0;
        for (let k = 0; k < K; k++) exact += x[m * K + k] * w[n * K + k];
        expect(y[m * N + n]).toBe(Math.fround(exact));
      }
    }
  });

  test("close to the f32 linear: |int8 − f32| ≤ 2% of max|f32| at K = 768", () => {
    const M = 8, K = 768, N = 64;
    const clip = (a: Float32Array, c: number) => a.map((v) => Math.max(-c, Math.min(c, v))); // without the outliers
    const x = clip(random(M * K, 5, 1), 1), w = clip(random(N * K, 6, 0.05), 0.05);
    const { q, scale } = quantizeLinearWeights(w, N, K);
    const y8 = new Float32Array(M * N), y32 = new Float32Array(M * N);
    linearInt8(x, q, scale, null, y8, M, K, N);
    linear(x, w, null, y32, M, K, N);
    const top = y32.reduce((a, v) => Math.max(a, Math.abs(v)), 0);
    const err = y8.reduce((a, v, i) => Math.max(a, Math.abs(v - y32[i])), 0);
    expect(err / top).toBeLessThan(0.02);
    expect(err).toBeGreaterThan(0); // it is quantized
  });

  test("zero rows, infinite and NaN inputs: the same bits; a NaN in a row makes that row NaN", () => {
    const K = 9, N = 5;
    const x = t([4, K], 3);
    x.data.fill(0, 0, K); // a zero row: bias only
    x.data[K + 2] = NaN;
    x.data[2 * K + 4] = Infinity;
    const b = t([N], 4);
    const y = same(x, t([N, K], 7), b, "none", null);
    expect([...y.subarray(0, N)]).toEqual([...b.data]);
    expect(y.subarray(N, 2 * N).every(Number.isNaN)).toBe(true);
  });

  test("M = 0 gives an empty output; an unknown precision is refused", () => {
    for (const be of [ts, ...wasm]) {
      expect(be.linear({ shape: [0, 4], data: new Float32Array(0) }, be.prepareLinear(t([3, 4], 1), null, "int8")).shape).toEqual([0, 3]);
      expect(() => be.prepareLinear(t([3, 4], 1), null, "int4" as "int8")).toThrow(/^prepareLinear: unknown precision "int4"/);
    }
  });
});

describe("packLinearWeightsInt8", () => {
  /** The panels and scales a wasm backend packed for w, as bytes of its memory. */
  function packed(be: WasmBackend, w: Tensor): { panels: Int16Array; scales: Float32Array } {
    const [N, K] = w.shape, nr = 16, count = Math.ceil(N / nr), pairs = (K + 1) >> 1;
    const p = be.prepareLinear(w, null, "int8") as unknown as { ptr: number; scales: number };
    const { buffer } = (be as unknown as { memory: WebAssembly.Memory }).memory;
    return { panels: new Int16Array(buffer, p.ptr, count * pairs * nr * 2).slice(), scales: new Float32Array(buffer, p.scales, count * nr).slice() };
  }

  test.prop([fc.integer({ min: 1, max: 45 }), fc.integer({ min: 1, max: 40 }), fc.boolean(), seed], { numRuns: 60 })(
    "the wasm quantize + pack gives the JS one's bytes and scales: odd K, partial panels, NaN, ±Inf and zero rows, f32 and f16 stored, 1 and 3 threads",
    (K, N, half, s) => {
      const data = random(N * K, s, 3);
      if (N > 1) data.fill(0, K, 2 * K); // a zero row
      if (N > 2) data[2 * K + (s % K)] = NaN;
      if (N > 3) data[3 * K + ((s >> 3) % K)] = -Infinity;
      if (N > 4) data[4 * K] = 1e-45; // a subnormal max: 127 / max is infinite
      if (N > 4) data.fill(0, 4 * K + 1, 5 * K);
      let w: Tensor;
      if (half) {
        const bits = new Uint16Array(N * K);
        const f = new Float32Array(1), u = new Uint32Array(f.buffer);
        for (let i = 0; i < bits.length; i++) {
          f[0] = data[i]; // truncated to f16 (not rounded): any half will do
          const x = u[0], sign = (x >>> 16) & 0x8000, e = ((x >>> 23) & 0xff) - 112;
          bits[i] = data[i] !== data[i] ? 0x7e00 : e >= 31 ? sign | 0x7c00 : e <= 0 ? sign : sign | (e << 10) | ((x >>> 13) & 0x3ff);
        }
        const bytes = new Uint8Array(bits.buffer);
        w = new StoredTensor([N, K], storedInMemory(bytes, 0, bytes.byteLength, "F16"));
      } else {
        const bytes = new Uint8Array(data.buffer);
        w = new StoredTensor([N, K], storedInMemory(bytes, 0, bytes.byteLength, "F32"));
      }
      const { q, scale } = quantizeLinearWeights(new StoredTensor([N, K], storedOf(w)!).data, N, K);
      const expected = packLinearWeightsInt8Js(q, scale, N, K, 16);
      for (const be of [wasm[0], wasm[2]]) {
        const got = packed(be, w);
        expect(got.panels, `${be.threads} thread(s)`).toEqual(expected.panels);
        expectBits(canon(got.scales), canon(expected.scales), `${be.threads} thread(s)`);
      }
      // a plain tensor (no stored bytes) too
      const plain = packed(wasm[2], { shape: [N, K], data: new StoredTensor([N, K], storedOf(w)!).data });
      expect(plain.panels).toEqual(expected.panels);
    },
  );

  test("the panel width read from the module is the JS twin's 16", () => {
    expect((wasm[0] as unknown as { exports: { QNR: { value: number } } }).exports.QNR.value).toBe(16);
  });
});
