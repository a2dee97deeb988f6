// safetensors: u64 little-endian header length N, N bytes of JSON header, then the data area.
// Header entries: name → {dtype, shape, data_offsets: [begin, end]} relative to the data area.
import type { StateDict } from "../tensor.js";
import { numel } from "../tensor.js";
import { ByteBudget, DTYPE_SIZE, decodeToF32, f32ToF16Bits, isDType, requireLittleEndian, type DType, type WeightsLimits } from "./dtypes.js";
import { WeightsError } from "./errors.js";

/** The reference implementation refuses headers above 100 MB; so do we, before decoding any of it. */
const MAX_HEADER_BYTES = 100_000_000;

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

export function parseSafetensors(bytes: Uint8Array, limits: WeightsLimits = {}): StateDict {
  const n = safetensorsHeaderLength(bytes);
  if (n === undefined) {
    throw new WeightsError(`safetensors: file of ${bytes.length} bytes is too short or its header length is absurd`);
  }
  if (n > bytes.length - 8) {
    throw new WeightsError(`safetensors: header length ${n} exceeds the ${bytes.length - 8} bytes after the length field`);
  }
  if (n > MAX_HEADER_BYTES) throw new WeightsError(`safetensors: header length ${n} exceeds the ${MAX_HEADER_BYTES}-byte limit`);
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes.subarray(8, 8 + n)));
  } catch (e) {
    throw new WeightsError(`safetensors: header is not valid UTF-8 JSON (${(e as Error).message})`);
  }
  if (!isPlainObject(header)) throw new WeightsError("safetensors: header is not a JSON object");

  const dataStart = 8 + n;
  const dataLen = bytes.length - dataStart;
  const budget = new ByteBudget(limits);
  const ranges: { name: string; begin: number; end: number; dtype: DType; shape: number[] }[] = [];
  for (const [name, entry] of Object.entries(header)) {
    if (name === "__metadata__") continue;
    if (!isPlainObject(entry)) throw new WeightsError(`safetensors: entry "${name}" is not an object`);
    const { dtype, shape, data_offsets: offs } = entry;
    if (!isDType(dtype)) throw new WeightsError(`safetensors: tensor "${name}" has unsupported dtype ${JSON.stringify(dtype)}`);
    if (!Array.isArray(shape) || !shape.every(nonNegInt)) {
      throw new WeightsError(`safetensors: tensor "${name}" has an invalid shape ${JSON.stringify(shape)}`);
    }
    if (!Array.isArray(offs) || offs.length !== 2 || !nonNegInt(offs[0]) || !nonNegInt(offs[1])) {
      throw new WeightsError(`safetensors: tensor "${name}" has invalid data_offsets ${JSON.stringify(offs)}`);
    }
    const [begin, end] = offs as [number, number];
    if (begin > end || end > dataLen) {
      throw new WeightsError(`safetensors: tensor "${name}" data_offsets [${begin}, ${end}] lie outside the ${dataLen}-byte data area`);
    }
    const dims = shape as number[];
    const count = numel(dims);
    const size = DTYPE_SIZE[dtype];
    // count may overflow to a huge float for lying shapes; the comparison still fails as it should.
    if (count * size !== end - begin) {
      throw new WeightsError(
        `safetensors: tensor "${name}" ${dtype}[${dims.join(", ")}] needs ${count * size} bytes but data_offsets span ${end - begin}`,
      );
    }
    budget.take(name, count);
    ranges.push({ name, begin, end, dtype, shape: dims.slice() });
  }
  const sorted = ranges.slice().sort((a, b) => a.begin - b.begin || a.end - b.end);
  for (let i = 1; i < sorted.length; i++) {
    const p = sorted[i - 1]!;
    const c = sorted[i]!;
    if (c.begin < p.end) throw new WeightsError(`safetensors: tensors "${p.name}" and "${c.name}" overlap in the data area`);
  }
  const out: StateDict = new Map();
  for (const r of ranges) {
    out.set(r.name, { data: decodeToF32(bytes, dataStart + r.begin, numel(r.shape), r.dtype), shape: r.shape, dtype: r.dtype });
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
