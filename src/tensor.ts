// The one tensor type: row-major float32 data and its shape. No strides, no views, no autograd.

export interface Tensor {
  data: Float32Array;
  shape: number[];
}

/** A checkpoint after loading: parameter name → tensor (always widened to f32), with the dtype it was stored in. */
export type StateDict = Map<string, Tensor & { dtype?: string }>;

export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function tensor(shape: number[], data?: Float32Array): Tensor {
  const n = numel(shape);
  if (data === undefined) return { data: new Float32Array(n), shape };
  if (data.length !== n) throw new Error(`tensor: ${data.length} values do not fill shape [${shape.join(", ")}]`);
  return { data, shape };
}

export function shapeString(shape: readonly number[]): string {
  return `[${shape.join(", ")}]`;
}
