// safetensors: u64 little-endian header length N, N bytes of JSON header, then the data area.
// Header entries: name → {dtype, shape, data_offsets: [begin, end]} relative to the data area.
import type { StateDict } from "../tensor.js";
import { numel, StoredTensor } from "../tensor.js";
import { ByteBudget, DEFAULT_MAX_HEADER_BYTES, DTYPE_SIZE, decodeToF32, storedByReader, storedInMemory, f32ToF16Bits, isDType, MAX_RANK, quoted, requireLittleEndian, type DType, type WeightsLimits } from "./dtypes.js";
import { WeightsError } from "./errors.js";

/** JSON values (counted as commas) allowed per allowed tensor: an honest entry has under 10. */
const VALUES_PER_TENSOR = 16;

/** Header length as a number, or undefined when the first 8 bytes cannot be one. */
export function safetensorsHeaderLength(bytes: Uint8Array): number | undefined {
  if (bytes.length < 8) return undefined;
  const dv = new DataView(bytes.buffer, bytes.byteOffset, 8);
  const hi = dv.getUint32(4, true);
  if (hi >= 0x200000) return undefined;
  return hi * 4294967296 + dv.getUint32(0, true);
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function nonNegInt(v: unknown): v is number {
  return typeof v === "number" && Number.isSafeInteger(v) && v >= 0;
}

/** JSON for an error message, cut short: a hostile header may hold megabytes in one value. */
function brief(v: unknown): string {
  if (typeof v === "string") return quoted(v);
  const s = JSON.stringify(v) ?? String(v);
  return s.length > 80 ? `${s.slice(0, 80)}…` : s;
}

/**
 * Top-level entries and all commas of a JSON object text, outside strings, in one pass over the bytes: enough to
 * refuse a header of millions of entries (or values) before JSON.parse builds them. Malformed JSON is left to
 * JSON.parse.
 */
function countJson(bytes: Uint8Array, start: number, end: number): { entries: number; commas: number } {
  let depth = 0;
  let entries = 0;
  let commas = 0;
  let inString = false;
  let empty = true;
  for (let i = start; i < end; i++) {
    const c = bytes[i]!;
    if (inString) {
      if (c === 0x5c) i++; // backslash: skip the escaped character
      else if (c === 0x22) inString = false;
      continue;
    }
    if (c === 0x22) {
      inString = true;
      if (depth === 1 && empty) (entries = 1), (empty = false);
    } else if (c === 0x7b || c === 0x5b) depth++;
    else if (c === 0x7d || c === 0x5d) depth--;
    else if (c === 0x2c) {
      commas++;
      if (depth === 1) entries++;
    }
  }
  return { entries, commas };
}

export function parseSafetensors(bytes: Uint8Array, limits: WeightsLimits = {}): StateDict {
  const { dataStart, ranges } = safetensorsLayout(bytes, bytes.length, limits);
  const out: StateDict = new Map();
  for (const r of ranges) {
    const at = dataStart + r.begin;
    out.set(r.name, r.dtype === "F16" || r.dtype === "F32"
      ? new StoredTensor(r.shape, storedInMemory(bytes, at, r.end - r.begin, r.dtype))
      : { data: decodeToF32(bytes, at, numel(r.shape), r.dtype), shape: r.shape, dtype: r.dtype });
  }
  return out;
}

/** Where the tensors of a safetensors file lie: its header checked, with every range inside the file's length. */
export interface SafetensorsLayout {
  dataStart: number;
  ranges: { name: string; begin: number; end: number; dtype: DType; shape: number[] }[];
}

/**
 * Parses and checks the header of a safetensors file of `fileLength` bytes whose first bytes are `head` (at least
 * the length field and the header it gives, when the file has them).
 */
export function safetensorsLayout(head: Uint8Array, fileLength: number, limits: WeightsLimits = {}): SafetensorsLayout {
  const budget = new ByteBudget(limits);
  const n = safetensorsHeaderLength(head);
  if (n === undefined) {
    throw new WeightsError(`safetensors: file of ${fileLength} bytes is too short or its header length is absurd`);
  }
  if (n > fileLength - 8) {
    throw new WeightsError(`safetensors: header length ${n} exceeds the ${fileLength - 8} bytes after the length field`);
  }
  const bytes = head;
  if (n > budget.maxHeaderBytes) {
    throw new WeightsError(`safetensors: header of ${n} bytes, more than the limit of ${budget.maxHeaderBytes} (maxHeaderBytes)`);
  }
  // JSON.parse needs time and memory in proportion to the values it builds: count them first.
  const counted = countJson(bytes, 8, 8 + n);
  budget.checkCount(counted.entries - 1, "safetensors: header", true); // one entry may be __metadata__
  const maxCommas = VALUES_PER_TENSOR * (budget.maxTensors + 1);
  if (counted.commas > maxCommas) {
    throw new WeightsError(`safetensors: header holds ${counted.commas + 1} JSON values, more than ${VALUES_PER_TENSOR} per allowed tensor (maxTensors ${budget.maxTensors})`);
  }
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes.subarray(8, 8 + n)));
  } catch (e) {
    throw new WeightsError(`safetensors: header is not valid UTF-8 JSON (${(e as Error).message})`);
  }
  if (!isPlainObject(header)) throw new WeightsError("safetensors: header is not a JSON object");

  const dataStart = 8 + n;
  const dataLen = fileLength - dataStart;
  budget.checkCount(Object.keys(header).length - (Object.prototype.hasOwnProperty.call(header, "__metadata__") ? 1 : 0), "safetensors: header");
  const ranges: { name: string; begin: number; end: number; dtype: DType; shape: number[] }[] = [];
  for (const [name, entry] of Object.entries(header)) {
    if (name === "__metadata__") continue;
    if (!isPlainObject(entry)) throw new WeightsError(`safetensors: entry ${quoted(name)} is not an object`);
    const { dtype, shape, data_offsets: offs } = entry;
    if (!isDType(dtype)) throw new WeightsError(`safetensors: tensor ${quoted(name)} has unsupported dtype ${brief(dtype)}`);
    if (Array.isArray(shape) && shape.length > MAX_RANK) {
      throw new WeightsError(`safetensors: tensor ${quoted(name)} has ${shape.length} dimensions, more than ${MAX_RANK}`);
    }
    if (!Array.isArray(shape) || !shape.every(nonNegInt)) {
      throw new WeightsError(`safetensors: tensor ${quoted(name)} has an invalid shape ${brief(shape)}`);
    }
    if (!Array.isArray(offs) || offs.length !== 2 || !nonNegInt(offs[0]) || !nonNegInt(offs[1])) {
      throw new WeightsError(`safetensors: tensor ${quoted(name)} has invalid data_offsets ${brief(offs)}`);
    }
    const [begin, end] = offs as [number, number];
    if (begin > end || end > dataLen) {
      throw new WeightsError(`safetensors: tensor ${quoted(name)} data_offsets [${begin}, ${end}] lie outside the ${dataLen}-byte data area`);
    }
    const dims = shape as number[];
    const count = numel(dims);
    const size = DTYPE_SIZE[dtype];
    // count may overflow to a huge float for lying shapes; the comparison still fails as it should.
    if (count * size !== end - begin) {
      throw new WeightsError(
        `safetensors: tensor ${quoted(name)} ${dtype}[${dims.join(", ")}] needs ${count * size} bytes but data_offsets span ${end - begin}`,
      );
    }
    budget.take(name, count);
    ranges.push({ name, begin, end, dtype, shape: dims.slice() });
  }
  const sorted = ranges.slice().sort((a, b) => a.begin - b.begin || a.end - b.end);
  for (let i = 1; i < sorted.length; i++) {
    const p = sorted[i - 1]!;
    const c = sorted[i]!;
    if (c.begin < p.end) throw new WeightsError(`safetensors: tensors ${quoted(p.name)} and ${quoted(c.name)} overlap in the data area`);
  }
  return { dataStart, ranges };
}

/**
 * A safetensors file read through `read(dst, position)` (which fills dst from the file or throws): only the header
 * is read here; each f32 or f16 tensor is a StoredTensor reading its range when asked, other dtypes are widened now.
 */
export function openSafetensors(
  read: (dst: Uint8Array, position: number) => void, fileLength: number, limits: WeightsLimits = {},
  readAsync?: (dst: Uint8Array, position: number) => Promise<void>,
): StateDict {
  const first = new Uint8Array(Math.min(8, fileLength));
  read(first, 0);
  const n = safetensorsHeaderLength(first);
  const maxHeader = limits.maxHeaderBytes ?? DEFAULT_MAX_HEADER_BYTES;
  // the checks of safetensorsLayout that come before the header is needed, so that an absurd length reads nothing
  const headLength = n === undefined || n > fileLength - 8 || n > maxHeader ? first.length : 8 + n;
  const head = new Uint8Array(headLength);
  read(head, 0);
  const { dataStart, ranges } = safetensorsLayout(head, fileLength, limits);
  const out: StateDict = new Map();
  for (const r of ranges) {
    const at = dataStart + r.begin, len = r.end - r.begin;
    if (r.dtype === "F16" || r.dtype === "F32") {
      out.set(r.name, new StoredTensor(r.shape, storedByReader(read, at, len, r.dtype, readAsync)));
    } else {
      const bytes = new Uint8Array(len);
      read(bytes, at);
      out.set(r.name, { data: decodeToF32(bytes, 0, numel(r.shape), r.dtype), shape: r.shape, dtype: r.dtype });
    }
  }
  return out;
}

/**
 * Serialise a state dict as safetensors, storing every tensor as `dtype`
 * (F16 rounds to nearest-even, like torch's .half()). Tensors keep the map's order.
 */
export function writeSafetensors(sd: StateDict, dtype: "F32" | "F16", metadata?: Record<string, string>): Uint8Array {
  const size = DTYPE_SIZE[dtype];
  const header: Record<string, unknown> = {};
  if (metadata) header.__metadata__ = metadata;
  let offset = 0;
  for (const [name, t] of sd) {
    if (name === "__metadata__") throw new WeightsError(`safetensors: "__metadata__" cannot be a tensor name`);
    if (!t.shape.every(nonNegInt) || numel(t.shape) !== t.data.length) {
      throw new WeightsError(`safetensors: tensor "${name}" has ${t.data.length} values for shape [${t.shape.join(", ")}]`);
    }
    const len = t.data.length * size;
    header[name] = { dtype, shape: t.shape, data_offsets: [offset, offset + len] };
    offset += len;
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  // Pad with spaces so the data area starts 8-byte aligned, as the reference writer does.
  const headerLen = Math.ceil(json.length / 8) * 8;
  const out = new Uint8Array(8 + headerLen + offset);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, headerLen % 4294967296, true);
  dv.setUint32(4, Math.floor(headerLen / 4294967296), true);
  out.set(json, 8);
  out.fill(0x20, 8 + json.length, 8 + headerLen);
  // The data area starts 8-aligned and every tensor spans whole elements, so typed views line up.
  requireLittleEndian();
  let pos = 8 + headerLen;
  for (const t of sd.values()) {
    if (dtype === "F32") {
      new Float32Array(out.buffer, pos, t.data.length).set(t.data);
    } else {
      const dst = new Uint16Array(out.buffer, pos, t.data.length);
      for (let i = 0; i < t.data.length; i++) dst[i] = f32ToF16Bits(t.data[i]!);
    }
    pos += t.data.length * size;
  }
  return out;
}
