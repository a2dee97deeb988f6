import { expf } from "./exp.js";
import { f } from "./f32.js";

export interface AttentionShape {
  B: number; // batch
  Lq: number; // queries per batch item
  Lk: number; // keys (and values) per batch item
  heads: number;
  headDim: number;
}

/**
 * Multi-head scaled dot-product attention on already-projected q [B, Lq, H·d], k and v [B, Lk, H·d] → out [B, Lq, H·d].
 * For each (b, head, i): s_j = (Σ_t q_t·k_jt)·d^-½ over the visible keys j < keyCount[b·Lq + i] (all when null:
 * this is the additive −inf causal mask of the reference, since exp(−inf) adds exactly 0), then softmax
 * p_j = exp(s_j − max s) / Σ exp(s − max s), and out = Σ_j p_j·v_j. Every sum in ascending order from +0.
 */
export function attention(
  q: Float32Array, k: Float32Array, v: Float32Array, out: Float32Array, s: AttentionShape,
  keyCount: Int32Array | null = null,
): void {
  const { B, Lq, Lk, heads, headDim } = s;
  const D = heads * headDim;
  const scale = f(1 / Math.sqrt(headDim));
  const scores = new Float32Array(Lk);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < heads; h++) {
      for (let i = 0; i < Lq; i++) {
        const n = keyCount ? keyCount[b * Lq + i] : Lk;
        const qo = (b * Lq + i) * D + h * headDim;
        let max = -Infinity;
        for (let j = 0; j < n; j++) {
          const ko = (b * Lk + j) * D + h * headDim;
          let dot = 0;
          for (let t = 0; t < headDim; t++) dot = f(dot + f(q[qo + t] * k[ko + t]));
          scores[j] = f(dot * scale);
          if (scores[j] > max) max = scores[j];
        }
        let sum = 0;
        for (let j = 0; j < n; j++) {
          scores[j] = expf(f(scores[j] - max));
          sum = f(sum + scores[j]);
        }
        for (let j = 0; j < n; j++) scores[j] = f(scores[j] / sum);
        for (let t = 0; t < headDim; t++) {
          let acc = 0;
          for (let j = 0; j < n; j++) acc = f(acc + f(scores[j] * v[(b * Lk + j) * D + h * headDim + t]));
          out[qo + t] = acc;
        }
      }
    }
  }
}
