// .npy files in and out: the parity CLI's exchange format with numpy. The header is read the way numpy's
// format.read_array_header reads it: a dict literal with exactly descr, fortran_order and shape, a numeric
// little-endian dtype, and data that exactly fills the shape; anything else is refused with its cause.
import { numel, shapeString, type Tensor } from "./tensor.js";
import type { TokenTensor } from "./model.js";

export class NpyError extends Error {
  override name = "NpyError";
}

export type NpyData =
  | Int8Array | Uint8Array | Int16Array | Uint16Array | Int32Array | Uint32Array | BigInt64Array | BigUint64Array | Float32Array | Float64Array;

export interface NpyArray {
  /** float16 is widened to Float32Array (exactly); every other dtype is viewed as its own typed array. */
  data: NpyData;
  shape: number[];
  /** numpy's descr without the byte-order character: "f4", "i8", "f2", … */
  dtype: string;
  fortranOrder: boolean;
}

/** Numeric dtypes (numpy's descr without the byte-order character): item size and the array over a copy of the data. */
const DTYPES: Readonly<Record<string, { size: number; array(b: ArrayBuffer): NpyData }>> = {
  i1: { size: 1, array: (b) => new Int8Array(b) },
  u1: { size: 1, array: (b) => new Uint8Array(b) },
  i2: { size: 2, array: (b) => new Int16Array(b) },
  u2: { size: 2, array: (b) => new Uint16Array(b) },
  i4: { size: 4, array: (b) => new Int32Array(b) },
  u4: { size: 4, array: (b) => new Uint32Array(b) },
  i8: { size: 8, array: (b) => new BigInt64Array(b) },
  u8: { size: 8, array: (b) => new BigUint64Array(b) },
  f2: { size: 2, array: (b) => Float32Array.from(new Uint16Array(b), halfToFloat) },
  f4: { size: 4, array: (b) => new Float32Array(b) },
  f8: { size: 8, array: (b) => new Float64Array(b) },
};

/** An IEEE half's value (every half is exactly a float32; NaN payloads are not kept). */
function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1, exp = (h >> 10) & 0x1f, frac = h & 0x3ff;
  if (exp === 0x1f) return frac ? NaN : sign * Infinity;
  return sign * (exp === 0 ? frac * 2 ** -24 : (1024 + frac) * 2 ** (exp - 25));
}

interface Header {
  descr: string;
  fortranOrder: boolean;
  shape: number[];
  dataOffset: number;
}

/** The header dict: `{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }` in any key order and spacing. */
function parseDict(text: string, what: string): Omit<Header, "dataOffset"> {
  const bad = (why: string): never => {
    throw new NpyError(`${what}: ${why} in header ${JSON.stringify(text.length > 120 ? text.slice(0, 120) + "…" : text)}`);
  };
  const body = /^\s*\{(.*)\}\s*$/s.exec(text)?.[1] ?? bad("not a dict literal");
  // numpy writes repr() of the dict: single-quoted keys and strings.
  const entry = /\s*'(\w+)'\s*:\s*('[^']*'|True|False|\([^()]*\))\s*(,|$)/y;
  const found = new Map<string, string>();
  for (let at = 0; at < body.length && body.slice(at).trim() !== ""; ) {
    entry.lastIndex = at;
    const m = entry.exec(body) ?? bad(`unreadable entry at ${JSON.stringify(body.slice(at, at + 30))}`);
    if (found.has(m[1]!)) bad(`key '${m[1]}' repeated`);
    found.set(m[1]!, m[2]!);
    at = entry.lastIndex;
  }
  const keys = [...found.keys()].sort().join(", ");
  if (keys !== "descr, fortran_order, shape") bad(`keys are [${keys}], expected descr, fortran_order, shape`);
  const descrText = found.get("descr")!;
  if (!descrText.startsWith("'")) bad("descr is not a string");
  const descr = descrText.slice(1, -1);
  const order = found.get("fortran_order")!;
  if (order !== "True" && order !== "False") bad("fortran_order is not True or False");
  const dims = found.get("shape")!;
  if (!dims.startsWith("(")) bad("shape is not a tuple");
  const parts = dims.slice(1, -1).split(",").map((s) => s.trim());
  if (parts.length > 1 && parts[parts.length - 1] === "") parts.pop(); // (n,) and (a, b,)
  if (parts.length === 1 && parts[0] === "") parts.pop(); // ()
  const shape = parts.map((p) => (/^\d+$/.test(p) && Number.isSafeInteger(Number(p)) ? Number(p) : bad(`shape entry ${JSON.stringify(p)} is not a non-negative integer`)));
  return { descr, fortranOrder: order === "True", shape };
}

function readHeader(bytes: Uint8Array, what: string): Header {
  const magic = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59];
  if (bytes.length < 10 || !magic.every((v, i) => bytes[i] === v)) throw new NpyError(`${what}: not a .npy file (no \\x93NUMPY magic)`);
  const major = bytes[6]!;
  if (major < 1 || major > 3) throw new NpyError(`${what}: unsupported .npy format version ${major}.${bytes[7]}`);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const lengthAt = major === 1 ? 2 : 4;
  if (bytes.length < 8 + lengthAt) throw new NpyError(`${what}: file of ${bytes.length} bytes ends inside the header length`);
  const headerLen = major === 1 ? dv.getUint16(8, true) : dv.getUint32(8, true);
  const start = 8 + lengthAt;
  if (start + headerLen > bytes.length) throw new NpyError(`${what}: header of ${headerLen} bytes runs past the end of the ${bytes.length}-byte file`);
  let text: string;
  try {
    // Versions 1 and 2 store latin-1 headers, version 3 UTF-8; a valid header is ASCII either way.
    text = new TextDecoder(major === 3 ? "utf-8" : "latin1", { fatal: true }).decode(bytes.subarray(start, start + headerLen));
  } catch {
    throw new NpyError(`${what}: header is not valid UTF-8`);
  }
  return { ...parseDict(text, what), dataOffset: start + headerLen };
}

export function readNpy(bytes: Uint8Array, what = ".npy"): NpyArray {
  const h = readHeader(bytes, what);
  const code = h.descr.slice(1);
  const dtype = Object.hasOwn(DTYPES, code) ? DTYPES[code] : undefined;
  // An object array ('|O') is a pickle: it is refused like every dtype that is not plain numbers.
  if (dtype === undefined || !(h.descr[0] === "<" || (h.descr[0] === "|" && dtype.size === 1))) {
    throw new NpyError(`${what}: unsupported dtype '${h.descr}' (only little-endian integers and floats are read)`);
  }
  const { size } = dtype;
  if (h.fortranOrder && h.shape.length > 1) throw new NpyError(`${what}: Fortran-ordered arrays are not supported; save with np.ascontiguousarray`);
  const n = numel(h.shape);
  const dataBytes = bytes.length - h.dataOffset;
  if (n * size !== dataBytes) {
    throw new NpyError(`${what}: shape ${shapeString(h.shape)} of '${h.descr}' needs ${n * size} data bytes, the file holds ${dataBytes}`);
  }
  // numpy pads the header so that the data is aligned to its items: an unaligned file is not one numpy wrote.
  if (h.dataOffset % size !== 0) throw new NpyError(`${what}: data at offset ${h.dataOffset} is not aligned to its ${size}-byte items`);
  const data = new Uint8Array(dataBytes); // a copy of its own (a Node Buffer's slice() would be a view of a pool)
  data.set(bytes.subarray(h.dataOffset));
  return { data: dtype.array(data.buffer), shape: h.shape, dtype: code, fortranOrder: h.fortranOrder };
}

/** A float32 array (float16 and float64 are converted). */
export function readNpyFloat32(bytes: Uint8Array, what = ".npy"): Tensor {
  const arr = readNpy(bytes, what);
  const d = arr.data;
  if (d instanceof Float32Array) return { data: d, shape: arr.shape };
  if (d instanceof Float64Array) return { data: Float32Array.from(d), shape: arr.shape };
  throw new NpyError(`${what}: expected float32 values, found dtype ${arr.dtype}`);
}

/** Token ids: int32 or int64. */
export function readNpyTokens(bytes: Uint8Array, what = ".npy"): TokenTensor {
  const arr = readNpy(bytes, what);
  if (arr.data instanceof Int32Array || arr.data instanceof BigInt64Array) return { data: arr.data, shape: arr.shape };
  throw new NpyError(`${what}: expected int32 or int64 token ids, found dtype ${arr.dtype}`);
}

/** A version 1.0 .npy file: the header dict, space-padded to a multiple of 8 bytes with its newline, then the data. */
export function writeNpy(t: { data: Float32Array | Int32Array; shape: number[] }): Uint8Array {
  const descr = t.data instanceof Float32Array ? "<f4" : "<i4";
  let dict = `{'descr':'${descr}','fortran_order':False,'shape':(${t.shape.join(",")}${t.shape.length === 1 ? "," : ""})}`;
  dict += " ".repeat(8 - ((10 + dict.length + 1) % 8)) + "\n";
  const out = new Uint8Array(10 + dict.length + t.data.byteLength);
  out.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0, dict.length & 0xff, dict.length >> 8]);
  for (let i = 0; i < dict.length; i++) out[10 + i] = dict.charCodeAt(i);
  out.set(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength), 10 + dict.length);
  return out;
}
