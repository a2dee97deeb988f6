import { readFileSync } from "node:fs";
import { expect } from "vitest";
import { readNpyFloat32, readNpyTokens } from "../../src/npy.js";
import type { TokenTensor } from "../../src/model.js";
import type { Tensor } from "../../src/tensor.js";

export const goldenDir = (name: string) => `test/golden/models/${name}`;

export function npy(path: string): Tensor {
  return readNpyFloat32(readFileSync(path), path);
}
export function npyTokens(path: string): TokenTensor {
  return readNpyTokens(readFileSync(path), path);
}

/** [L, N, D] → [N, L, D]: the reference's transformer layout to ours. */
export function lndToNld(t: Tensor): Tensor {
  const [L, N, D] = t.shape;
  const out = new Float32Array(t.data.length);
  for (let l = 0; l < L; l++) for (let n = 0; n < N; n++) out.set(t.data.subarray((l * N + n) * D, (l * N + n + 1) * D), (n * L + l) * D);
  return { data: out, shape: [N, L, D] };
}

export interface Agreement {
  maxAbs: number;
  maxRel: number; // max |a − b| / max |b|
  ok: boolean; // |a − b| ≤ rtol·max|b| + atol everywhere
}

/** The project's parity criterion: |a − b| ≤ 1e-5·max|b| + 1e-6 elementwise. */
export function agreement(actual: Tensor, expected: Tensor, rtol = 1e-5, atol = 1e-6): Agreement {
  if (actual.shape.join() !== expected.shape.join()) throw new Error(`shape [${actual.shape}] vs expected [${expected.shape}]`);
  let maxAbs = 0, scale = 0;
  for (let i = 0; i < expected.data.length; i++) {
    scale = Math.max(scale, Math.abs(expected.data[i]));
    const d = Math.abs(actual.data[i] - expected.data[i]);
    maxAbs = Number.isNaN(d) ? Infinity : Math.max(maxAbs, d);
  }
  return { maxAbs, maxRel: maxAbs / scale, ok: maxAbs <= rtol * scale + atol };
}

/**
 * Expects the same float32 bit patterns; a failure names how many differ and the first one, index and both
 * values (bits in hex), where `expect(bitsEqual(…)).toBe(true)` could only say "expected false to be true".
 */
export function expectBits(actual: Float32Array, expected: Float32Array, what = "float32 bits"): void {
  expect(actual.length, `${what}: length`).toBe(expected.length);
  const a = new Uint32Array(actual.buffer, actual.byteOffset, actual.length);
  const e = new Uint32Array(expected.buffer, expected.byteOffset, expected.length);
  let first = -1, count = 0;
  for (let i = 0; i < a.length; i++) {
    if (a[i] !== e[i]) {
      if (first < 0) first = i;
      count++;
    }
  }
  if (first < 0) return;
  const show = (x: Float32Array, bits: Uint32Array) => `[${first}] ${x[first]} (0x${bits[first]!.toString(16).padStart(8, "0")})`;
  expect(show(actual, a), `${what}: ${count} of ${a.length} differ; the first`).toBe(show(expected, e));
}

/** Whether a and b hold the same bits (expectBits says where they differ). */
export function bitsEqual(a: Float32Array, b: Float32Array): boolean {
  if (a.length !== b.length) return false;
  const x = new Uint32Array(a.buffer, a.byteOffset, a.length), y = new Uint32Array(b.buffer, b.byteOffset, b.length);
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false;
  return true;
}
