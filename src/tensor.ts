// The one tensor type: row-major float32 data and its shape. No strides, no views, no autograd.

export interface Tensor {
  data: Float32Array;
  shape: number[];
}

/** A checkpoint after loading: parameter name → tensor (read as f32), with the dtype it was stored in. */
export type StateDict = Map<string, Tensor & { dtype?: string }>;

/**
 * A tensor's bytes as the checkpoint stores them (little-endian f32 or f16), where they are: a view of the file's
 * bytes or a range of the file itself. A backend that repacks weights reads them straight into its own memory
 * and widens there, so that loading never makes a widened copy of the checkpoint.
 */
export interface StoredBytes {
  readonly dtype: "F32" | "F16";
  readonly byteLength: number;
  /** Copies bytes [from, from + dst.length) of the tensor into dst. */
  copyTo(dst: Uint8Array, from?: number): void;
  /** Where the bytes are a range of a file (Node): all of them read into dst on another thread. */
  readAsync?(dst: Uint8Array): Promise<void>;
  /** The bytes [begin, end) as a tensor's of their own (whole elements). */
  slice(begin: number, end: number): StoredBytes;
  /** Widened to f32: a view where the bytes are aligned f32 in memory (unless `own`), else a new array. */
  widen(own?: boolean): Float32Array;
}

/**
 * A tensor whose f32 data is made only when read (then kept): the readable path reads `data` as from any tensor,
 * the wasm backend reads `stored` and never makes the f32 copy.
 */
export class StoredTensor implements Tensor {
  private widened: Float32Array | null = null;
  private replaced = false;
  constructor(readonly shape: number[], readonly stored: StoredBytes, readonly dtype: string = stored.dtype) {}
  get data(): Float32Array {
    return (this.widened ??= this.stored.widen());
  }
  set data(d: Float32Array) {
    this.widened = d;
    this.replaced = true;
  }
  /** The stored bytes, unless data was replaced. */
  get bytes(): StoredBytes | null {
    return this.replaced ? null : this.stored;
  }
  /** Rows [r0, r1) of the first dimension, still as stored. */
  rows(r0: number, r1: number): StoredTensor {
    const row = this.stored.byteLength / (this.shape[0] || 1);
    return new StoredTensor([r1 - r0, ...this.shape.slice(1)], this.stored.slice(r0 * row, r1 * row), this.dtype);
  }
}

/** The stored bytes of a tensor that has them and whose f32 data has not been replaced. */
export function storedOf(t: Tensor): StoredBytes | null {
  return t instanceof StoredTensor ? t.bytes : null;
}

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

/** Rows [r0, r1) of t's first dimension: a view of its data, or of its stored bytes if it has them. */
export function rowsOf(t: Tensor, r0: number, r1: number): Tensor {
  if (t instanceof StoredTensor && t.bytes) return t.rows(r0, r1);
  const row = t.shape.slice(1).reduce((a, b) => a * b, 1);
  return { data: t.data.subarray(r0 * row, r1 * row), shape: [r1 - r0, ...t.shape.slice(1)] };
}
