import { readFileSync } from "node:fs";
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

export function bitsEqual(a: Float32Array, b: Float32Array): boolean {
  if (a.length !== b.length) return false;
  const x = new Uint32Array(a.buffer, a.byteOffset, a.length), y = new Uint32Array(b.buffer, b.byteOffset, b.length);
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false;
  return true;
}
