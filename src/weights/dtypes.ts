// Element types of stored tensors (safetensors spellings, also used for torch storages) and their widening to f32.
import type { StoredBytes } from "../tensor.js";
import { WeightsError } from "./errors.js";

export type DType = "F64" | "F32" | "F16" | "BF16" | "I64" | "I32" | "I16" | "I8" | "U8" | "BOOL";

export const DTYPE_SIZE: Readonly<Record<DType, number>> = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U8: 1,
  BOOL: 1,
};

export function isDType(s: unknown): s is DType {
  return typeof s === "string" && Object.prototype.hasOwnProperty.call(DTYPE_SIZE, s);
}

/** Caps on what loading may allocate and parse, whatever the file declares (each tensor is widened to float32). */
export interface WeightsLimits {
  /** Largest single tensor, in bytes of float32 data (default 4 GiB). */
  maxTensorBytes?: number;
  /**
   * Largest total of the bytes a load allocates (default 16 GiB): every tensor's float32 data plus every deflated
   * archive entry it inflates (data.pkl and storages), counted before each is allocated.
   */
  maxTotalBytes?: number;
  /** Most tensors in a checkpoint (default 100 000; OpenCLIP's largest model, ViT-bigG-14, has 974). */
  maxTensors?: number;
  /** Largest safetensors JSON header (default 100 000 000 bytes, the reference implementation's limit). */
  maxHeaderBytes?: number;
  /** Largest torch data.pkl, inflated (default 64 MiB; ViT-bigG-14's torch.save pickle is 175 KB). */
  maxPickleBytes?: number;
}

export const DEFAULT_MAX_TENSOR_BYTES = 4 * 2 ** 30;
export const DEFAULT_MAX_TOTAL_BYTES = 16 * 2 ** 30;
export const DEFAULT_MAX_TENSORS = 100_000;
export const DEFAULT_MAX_HEADER_BYTES = 100_000_000;
export const DEFAULT_MAX_PICKLE_BYTES = 64 * 2 ** 20;

/** Most dimensions a stored tensor may have: no CLIP weight has more than 4, and it bounds work and messages. */
export const MAX_RANK = 64;

export const LIMIT_NAMES: readonly (keyof WeightsLimits)[] = ["maxTensorBytes", "maxTotalBytes", "maxTensors", "maxHeaderBytes", "maxPickleBytes"];

/** A name for an error message, cut short: a hostile file may hold megabytes in one name. */
export function quoted(name: string): string {
  return JSON.stringify(name.length > 80 ? `${name.slice(0, 80)}…` : name);
}

function shown(v: unknown): string {
  if (typeof v === "number") return String(v);
  if (typeof v === "string") return JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v);
  return v === null ? "null" : Array.isArray(v) ? "an array" : `a ${typeof v}`;
}

/**
 * Throws unless every option in `names` is undefined (its default) or a number >= 0; Infinity means no limit.
 * NaN, negative numbers and non-numbers would otherwise switch a limit off silently (every comparison with NaN is
 * false). The error (a WeightsError unless `makeError` says otherwise) is one line naming the option.
 */
export function validateLimits(
  options: object,
  names: readonly string[],
  makeError: (message: string) => Error = (m) => new WeightsError(m),
): void {
  for (const name of names) {
    const v: unknown = (options as Record<string, unknown>)[name];
    if (v === undefined || (typeof v === "number" && v >= 0)) continue;
    throw makeError(`invalid option ${name}: ${shown(v)} (expected a number >= 0, or Infinity for no limit)`);
  }
}

/** Counts what a load will allocate, refusing a tensor or an inflated entry over the limits before it is allocated. */
export class ByteBudget {
  readonly maxTensorBytes: number;
  readonly maxTotalBytes: number;
  readonly maxTensors: number;
  readonly maxHeaderBytes: number;
  readonly maxPickleBytes: number;
  /** Float32 bytes of the tensors taken, and bytes of the entries inflated. */
  private floats = 0;
  private inflated = 0;

  constructor(limits: WeightsLimits = {}) {
    validateLimits(limits, LIMIT_NAMES);
    this.maxTensorBytes = limits.maxTensorBytes ?? DEFAULT_MAX_TENSOR_BYTES;
    this.maxTotalBytes = limits.maxTotalBytes ?? DEFAULT_MAX_TOTAL_BYTES;
    this.maxTensors = limits.maxTensors ?? DEFAULT_MAX_TENSORS;
    this.maxHeaderBytes = limits.maxHeaderBytes ?? DEFAULT_MAX_HEADER_BYTES;
    this.maxPickleBytes = limits.maxPickleBytes ?? DEFAULT_MAX_PICKLE_BYTES;
  }

  /** Throws when a file declares more tensors than maxTensors (`atLeast`: the count is a lower bound). */
  checkCount(count: number, what: string, atLeast = false): void {
    if (count > this.maxTensors) {
      throw new WeightsError(`${what} has ${atLeast ? "at least " : ""}${count} tensors, more than the limit of ${this.maxTensors} (maxTensors)`);
    }
  }

  take(name: string, count: number): void {
    const bytes = count * 4;
    if (bytes > this.maxTensorBytes) {
      throw new WeightsError(`tensor ${quoted(name)} needs ${bytes} bytes as float32, more than the limit of ${this.maxTensorBytes} (maxTensorBytes)`);
    }
    this.floats += bytes;
    if (this.floats + this.inflated > this.maxTotalBytes) {
      const also = this.inflated > 0 ? ` (${this.floats + this.inflated} with the ${this.inflated} bytes of inflated entries)` : "";
      throw new WeightsError(`tensors up to ${quoted(name)} need ${this.floats} bytes as float32${also}, more than the limit of ${this.maxTotalBytes} (maxTotalBytes)`);
    }
  }

  /** An archive entry about to be inflated to `bytes` bytes: counted with everything allocated so far. */
  inflate(entry: string, bytes: number): void {
    if (bytes > this.maxTotalBytes) {
      throw new WeightsError(`entry ${quoted(entry)} inflates to ${bytes} bytes, more than the limit of ${this.maxTotalBytes} (maxTotalBytes)`);
    }
    this.inflated += bytes;
    const total = this.floats + this.inflated;
    if (total > this.maxTotalBytes) {
      throw new WeightsError(
        `entry ${quoted(entry)} inflates to ${bytes} bytes, taking the load to ${total} bytes, more than the limit of ${this.maxTotalBytes} (maxTotalBytes)`,
      );
    }
  }
}

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** Stored tensors are little-endian and typed arrays use the platform's order (little-endian wherever wasm runs). */
export function requireLittleEndian(): void {
  if (!LITTLE_ENDIAN) throw new WeightsError("big-endian platforms are not supported");
}

let f16Table: Float32Array | undefined;

/** All 65536 half-precision values, so widening is one table lookup per element. */
function halfTable(): Float32Array {
  if (f16Table) return f16Table;
  const t = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) t[h] = f16BitsToF32(h);
  f16Table = t;
  return t;
}

export function f16BitsToF32(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >>> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 0x1f) return mant === 0 ? sign * Infinity : NaN;
  return sign * (1024 + mant) * 2 ** (exp - 25);
}

const cvtF32 = new Float32Array(1);
const cvtU32 = new Uint32Array(cvtF32.buffer);

/** IEEE binary16 bits of x, rounded to nearest, ties to even (as torch's .half()). */
export function f32ToF16Bits(x: number): number {
  cvtF32[0] = x;
  const u = cvtU32[0]!;
  const sign = (u >>> 16) & 0x8000;
  const exp = (u >>> 23) & 0xff;
  const mant = u & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant !== 0 ? 0x200 | (mant >>> 13) : 0);
  const e = exp - 127 + 15;
  if (e <= 0) {
    // Result is subnormal or zero: the value counts units of 2^-24.
    if (e < -10) return sign;
    const m = mant | 0x800000;
    const shift = 14 - e;
    let half = m >>> shift;
    const rem = m & ((1 << shift) - 1);
    const halfway = 1 << (shift - 1);
    if (rem > halfway || (rem === halfway && (half & 1) !== 0)) half++;
    return sign | half;
  }
  let half = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (half & 1) !== 0)) half++;
  if (half >= 0x7c00) return sign | 0x7c00;
  return sign | half;
}

/**
 * A typed view of `count` elements starting at `byteOffset`, copying only when the
 * position is misaligned for the element size (typed arrays require alignment).
 */
function aligned(bytes: Uint8Array, byteOffset: number, byteLength: number, elemSize: number): ArrayBuffer | { buffer: ArrayBufferLike; offset: number } {
  const abs = bytes.byteOffset + byteOffset;
  if (abs % elemSize === 0) return { buffer: bytes.buffer, offset: abs };
  return bytes.slice(byteOffset, byteOffset + byteLength).buffer;
}

function view<T>(bytes: Uint8Array, byteOffset: number, count: number, elemSize: number, make: (b: ArrayBufferLike, o: number, n: number) => T): T {
  const a = aligned(bytes, byteOffset, count * elemSize, elemSize);
  return a instanceof ArrayBuffer ? make(a, 0, count) : make(a.buffer, a.offset, count);
}

/** A zeroed Float32Array, or a WeightsError when the engine cannot provide one that large. */
export function allocF32(count: number): Float32Array {
  try {
    return new Float32Array(count);
  } catch (e) {
    throw new WeightsError(`cannot allocate ${count} float32 values (${(e as Error).message})`);
  }
}

/**
 * Widen `count` contiguous little-endian elements of `dtype` at `byteOffset` into a Float32Array. F32 data at a
 * 4-aligned position is returned as a view of `bytes`, not a copy: a checkpoint is then held once in memory, not
 * twice, while a backend takes its weights (whoever keeps a tensor longer copies it; see Params.own in nn.ts).
 * The caller has checked that the range lies inside `bytes`.
 */
export function decodeToF32(bytes: Uint8Array, byteOffset: number, count: number, dtype: DType): Float32Array {
  const size = DTYPE_SIZE[dtype];
  if (!Number.isSafeInteger(count) || count < 0 || byteOffset < 0 || byteOffset + count * size > bytes.length) {
    throw new WeightsError(`decode: ${count} ${dtype} elements at byte ${byteOffset} do not fit in ${bytes.length} bytes`);
  }
  if (dtype === "F32" && count > 0 && (bytes.byteOffset + byteOffset) % 4 === 0) {
    requireLittleEndian();
    return new Float32Array(bytes.buffer, bytes.byteOffset + byteOffset, count);
  }
  const out = allocF32(count);
  if (count === 0) return out;
  requireLittleEndian();
  switch (dtype) {
    case "F32": // misaligned (aligned data returned a view above): the bytes as they are, one copy
      new Uint8Array(out.buffer).set(bytes.subarray(byteOffset, byteOffset + count * 4));
      break;
    case "F64":
      out.set(view(bytes, byteOffset, count, 8, (b, o, n) => new Float64Array(b, o, n)));
      break;
    case "F16": {
      const src = view(bytes, byteOffset, count, 2, (b, o, n) => new Uint16Array(b, o, n));
      const t = halfTable();
      for (let i = 0; i < count; i++) out[i] = t[src[i]!]!;
      break;
    }
    case "BF16": {
      // bfloat16 is the top half of an f32.
      const src = view(bytes, byteOffset, count, 2, (b, o, n) => new Uint16Array(b, o, n));
      const dst = new Uint32Array(out.buffer);
      for (let i = 0; i < count; i++) dst[i] = src[i]! << 16;
      break;
    }
    case "I64": {
      const src = view(bytes, byteOffset, count * 2, 4, (b, o, n) => new Uint32Array(b, o, n));
      for (let i = 0; i < count; i++) out[i] = (src[2 * i + 1]! | 0) * 4294967296 + src[2 * i]!;
      break;
    }
    case "I32":
      out.set(view(bytes, byteOffset, count, 4, (b, o, n) => new Int32Array(b, o, n)));
      break;
    case "I16":
      out.set(view(bytes, byteOffset, count, 2, (b, o, n) => new Int16Array(b, o, n)));
      break;
    case "I8":
      out.set(new Int8Array(bytes.buffer, bytes.byteOffset + byteOffset, count));
      break;
    case "U8":
      out.set(bytes.subarray(byteOffset, byteOffset + count));
      break;
    case "BOOL":
      for (let i = 0; i < count; i++) out[i] = bytes[byteOffset + i]! !== 0 ? 1 : 0;
      break;
  }
  return out;
}

/** A tensor's stored bytes in memory (a view of the checkpoint's bytes, checked to lie inside them). */
export function storedInMemory(bytes: Uint8Array, byteOffset: number, byteLength: number, dtype: "F32" | "F16"): StoredBytes {
  const size = DTYPE_SIZE[dtype];
  return {
    dtype,
    byteLength,
    copyTo(dst, from = 0) {
      dst.set(bytes.subarray(byteOffset + from, byteOffset + from + dst.length));
    },
    slice: (begin, end) => storedInMemory(bytes, byteOffset + begin, end - begin, dtype),
    widen(own = false) {
      const out = decodeToF32(bytes, byteOffset, byteLength / size, dtype);
      return own && out.buffer === bytes.buffer ? out.slice() : out;
    },
  };
}

/** Bytes read from a stored tensor at a time when it is widened in chunks. */
const WIDEN_CHUNK = 1 << 20;

/**
 * A tensor's stored bytes read on demand by `read(dst, position)` (a range of a file): widening reads them in
 * chunks into one small buffer, so the only large allocation is the f32 result.
 */
export function storedByReader(
  read: (dst: Uint8Array, position: number) => void, position: number, byteLength: number, dtype: "F32" | "F16",
  readAsync?: (dst: Uint8Array, position: number) => Promise<void>,
): StoredBytes {
  return {
    dtype,
    byteLength,
    copyTo(dst, from = 0) {
      read(dst, position + from);
    },
    ...(readAsync && { readAsync: (dst: Uint8Array) => readAsync(dst, position) }),
    slice: (begin, end) => storedByReader(read, position + begin, end - begin, dtype, readAsync),
    widen() {
      const out = allocF32(byteLength / DTYPE_SIZE[dtype]);
      const bytes = new Uint8Array(out.buffer);
      if (dtype === "F32") {
        read(bytes, position);
        return out;
      }
      requireLittleEndian();
      const chunk = new Uint16Array(Math.min(WIDEN_CHUNK, byteLength) / 2);
      const t = halfTable();
      for (let done = 0; done < byteLength; done += chunk.byteLength) {
        const n = Math.min(chunk.length, (byteLength - done) / 2);
        read(new Uint8Array(chunk.buffer, 0, n * 2), position + done);
        for (let i = 0, o = done / 2; i < n; i++) out[o + i] = t[chunk[i]!]!;
      }
      return out;
    },
  };
}
