// .npy files in and out (the parity CLI's exchange format with numpy), via the npyjs package, with the checks
// it leaves to us: a typed error, C order, and data that fills the shape.
import { dump, parse, type NpyArray } from "npyjs";
import { numel, shapeString, type Tensor } from "./tensor.js";
import type { TokenTensor } from "./model.js";

export class NpyError extends Error {
  override name = "NpyError";
}

export function readNpy(bytes: Uint8Array, what = ".npy"): NpyArray {
  let arr: NpyArray;
  try {
    arr = parse(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer);
  } catch (e) {
    throw new NpyError(`${what}: not a readable .npy file (${(e as Error).message})`);
  }
  if (!arr || !Array.isArray(arr.shape) || !arr.data) throw new NpyError(`${what}: not a readable .npy file`);
  if (arr.fortranOrder && arr.shape.length > 1) throw new NpyError(`${what}: Fortran-ordered arrays are not supported; save with np.ascontiguousarray`);
  const n = numel(arr.shape);
  if ((arr.data as unknown as ArrayLike<unknown>).length !== n) {
    throw new NpyError(`${what}: shape ${shapeString(arr.shape)} needs ${n} values, the file holds ${(arr.data as unknown as ArrayLike<unknown>).length}`);
  }
  return arr;
}

/** A float32 array (float16 and float64 are converted). */
export function readNpyFloat32(bytes: Uint8Array, what = ".npy"): Tensor {
  const arr = readNpy(bytes, what);
  const d = arr.data;
  if (d instanceof Float32Array) return { data: d, shape: arr.shape };
  if (d instanceof Float64Array || d instanceof Uint16Array && arr.dtype === "f2") return { data: Float32Array.from(d as Float64Array), shape: arr.shape };
  throw new NpyError(`${what}: expected float32 values, found dtype ${arr.dtype}`);
}

/** Token ids: int32 or int64. */
export function readNpyTokens(bytes: Uint8Array, what = ".npy"): TokenTensor {
  const arr = readNpy(bytes, what);
  if (arr.data instanceof Int32Array || arr.data instanceof BigInt64Array) return { data: arr.data, shape: arr.shape };
  throw new NpyError(`${what}: expected int32 or int64 token ids, found dtype ${arr.dtype}`);
}

export function writeNpy(t: { data: Float32Array | Int32Array; shape: number[] }): Uint8Array {
  return new Uint8Array(dump(t.data, t.shape));
}
