// PyTorch zip checkpoints: torch.save (≥ 1.6) and TorchScript archives (torch.jit.save, e.g. OpenAI's CLIP .pt files).
// Layout: "<top>/data.pkl" is a pickle whose tensors point (by persistent id) at raw storages "<top>/data/<key>".
import { StoredTensor, type StateDict } from "../tensor.js";
import { allocF32, ByteBudget, DTYPE_SIZE, decodeToF32, isDType, quoted, storedByReader, storedInMemory, type DType, type WeightsLimits } from "./dtypes.js";
import { WeightsError } from "./errors.js";
import { describe, PyDict, PyGlobal, PyObject, PyTuple, STORAGE_DTYPES, StorageRef, TensorRef, unpickle, type PyValue } from "./pickle.js";
import { ZipArchive, type ZipEntry } from "./zip.js";

export type TorchArchiveKind = "torch-zip" | "torchscript";

export interface TorchLoadOptions extends WeightsLimits {
  /** Also CRC-check tensor storages (pickles are always checked). Costs a pass over every byte. */
  verifyChecksums?: boolean;
}

/** Wrapper keys training scripts put around the weights (`{"state_dict": ...}` and similar). */
const WRAPPER_KEYS = ["state_dict", "model_state_dict", "model"];

/** Real module trees are a handful of levels deep; the limit keeps recursion far from the JS stack limit. */
const MAX_MODULE_DEPTH = 200;

function fail(msg: string): never {
  throw new WeightsError(`torch: ${msg}`);
}

function findPickle(zip: ZipArchive): { prefix: string; pkl: string } {
  const found = zip.entries.filter((e) => /^[^/]+\/data\.pkl$/.test(e.name));
  if (found.length === 0) {
    if (zip.entries.some((e) => /(^|\/)model\.json$/.test(e.name))) {
      fail("TorchScript archive in the pre-1.4 model.json format is not supported; re-save it with a newer torch");
    }
    fail("zip archive has no <folder>/data.pkl, so it is not a torch checkpoint");
  }
  if (found.length > 1) fail(`zip archive has several data.pkl files (${found.map((e) => e.name).join(", ")})`);
  const pkl = found[0]!.name;
  return { prefix: pkl.slice(0, pkl.length - "data.pkl".length), pkl };
}

/** torch.serialization's persistent id for storages: ('storage', StorageClass, key, location, numel). */
function storageFromPid(pid: PyValue): StorageRef {
  if (!(pid instanceof PyTuple) || pid.items.length !== 5 || pid.items[0] !== "storage") {
    return fail(`unsupported persistent id ${describe(pid)}; expected ('storage', type, key, location, numel)`);
  }
  const [, type, key, location, numel] = pid.items;
  const dtype = type instanceof PyGlobal ? STORAGE_DTYPES.get(type.qualified) : undefined;
  if (dtype === undefined) return fail(`unsupported storage type ${describe(type)}`);
  if (typeof key !== "string") fail(`storage key must be a string, got ${describe(key)}`);
  if (typeof location !== "string") fail(`storage location must be a string, got ${describe(location)}`);
  if (typeof numel !== "number" || !Number.isSafeInteger(numel) || numel < 0) fail(`storage "${key}" has invalid size ${String(numel)}`);
  return new StorageRef(dtype, key, location, numel);
}

/** Collect (name, tensor) pairs from a pickled TorchScript module tree: each module's state dict holds its tensors and submodules. */
function walkModule(root: PyObject, limit: number): [string, TensorRef][] {
  const out: [string, TensorRef][] = [];
  const path = new Set<PyObject>();
  let steps = 0;
  const visit = (m: PyObject, prefix: string): void => {
    if (path.has(m)) fail(`module ${prefix.slice(0, -1) || "<root>"} contains itself`);
    if (path.size >= MAX_MODULE_DEPTH) fail(`modules nested more than ${MAX_MODULE_DEPTH} deep at ${prefix.slice(0, -1)}`);
    if (!(m.state instanceof PyDict)) return;
    path.add(m);
    for (const [k, v] of m.state.map) {
      // A DAG of shared submodules could otherwise expand exponentially.
      if (++steps > limit) fail(`module tree is larger than its pickle allows (${limit} attributes)`);
      if (typeof k !== "string") continue;
      if (v instanceof TensorRef) out.push([prefix + k, v]);
      else if (v instanceof PyObject && v.cls.module.startsWith("__torch__")) visit(v, `${prefix}${k}.`);
    }
    path.delete(m);
  };
  visit(root, "");
  return out;
}

/** Collect tensors from a torch.save'd dict, unwrapping one level of {"state_dict": {...}}-style nesting. */
function dictTensors(root: PyDict): [string, TensorRef][] {
  let d = root;
  const hasTensor = (x: PyDict): boolean => [...x.map.values()].some((v) => v instanceof TensorRef);
  if (!hasTensor(d)) {
    for (const k of WRAPPER_KEYS) {
      const inner = d.map.get(k);
      if (inner instanceof PyDict) {
        d = inner;
        break;
      }
    }
  }
  const out: [string, TensorRef][] = [];
  for (const [k, v] of d.map) {
    if (typeof k === "string" && v instanceof TensorRef) out.push([k, v]);
  }
  return out;
}

function product(shape: readonly number[], name: string): number {
  let n = 1;
  for (const d of shape) n *= d;
  if (!Number.isSafeInteger(n)) fail(`tensor "${name}" has an impossibly large shape [${shape.join(", ")}]`);
  return n;
}

/** The byte range of a row-major (contiguous) view of a storage, or null for another layout. */
function contiguousRange(t: TensorRef, dtype: DType): { begin: number; length: number } | null {
  let rowMajor = 1;
  for (let i = t.shape.length - 1; i >= 0; i--) {
    if (t.shape[i] !== 1 && t.stride[i] !== rowMajor) return null;
    rowMajor *= t.shape[i]!;
  }
  return { begin: t.offset * DTYPE_SIZE[dtype], length: rowMajor * DTYPE_SIZE[dtype] };
}

/** materialise's bounds check alone (true, or a TorchError). */
function materialiseCheck(name: string, t: TensorRef): boolean {
  let last = t.offset;
  for (let i = 0; i < t.shape.length; i++) last += (t.shape[i]! - 1) * t.stride[i]!;
  if (!Number.isSafeInteger(last) || last >= t.storage.numel) {
    fail(
      `tensor "${name}" (offset ${t.offset}, size [${t.shape.join(", ")}], stride [${t.stride.join(", ")}]) reaches element ${last} of a ${t.storage.numel}-element storage`,
    );
  }
  return true;
}

/** Row-major copy of a (possibly strided) view of a storage. */
function materialise(name: string, t: TensorRef, storage: Uint8Array, dtype: DType): Float32Array {
  const count = product(t.shape, name);
  if (count === 0) return new Float32Array(0);
  let last = t.offset;
  for (let i = 0; i < t.shape.length; i++) last += (t.shape[i]! - 1) * t.stride[i]!;
  if (!Number.isSafeInteger(last) || last >= t.storage.numel) {
    fail(
      `tensor "${name}" (offset ${t.offset}, size [${t.shape.join(", ")}], stride [${t.stride.join(", ")}]) reaches element ${last} of a ${t.storage.numel}-element storage`,
    );
  }
  const size = DTYPE_SIZE[dtype];
  let contiguous = true;
  let rowMajor = 1;
  for (let i = t.shape.length - 1; i >= 0; i--) {
    if (t.shape[i] !== 1 && t.stride[i] !== rowMajor) contiguous = false;
    rowMajor *= t.shape[i]!;
  }
  if (contiguous) return decodeToF32(storage, t.offset * size, count, dtype);
  const span = decodeToF32(storage, t.offset * size, last - t.offset + 1, dtype);
  const out = allocF32(count);
  const rank = t.shape.length;
  const idx = new Array<number>(rank).fill(0);
  let src = 0;
  for (let o = 0; o < count; o++) {
    out[o] = span[src]!;
    // Odometer over the output index, tracking the source offset incrementally.
    for (let d = rank - 1; d >= 0; d--) {
      if (++idx[d]! < t.shape[d]!) {
        src += t.stride[d]!;
        break;
      }
      src -= (t.shape[d]! - 1) * t.stride[d]!;
      idx[d] = 0;
    }
  }
  return out;
}

/** Stored entries are views of the archive; a deflated one is inflated into memory of its declared size, counted first. */
function checkInflated(e: ZipEntry, limits: ByteBudget): ZipEntry {
  if (e.method !== 0) limits.inflate(e.name, e.uncompressedSize);
  return e;
}

/**
 * Load the tensors of a torch zip checkpoint (torch.save or torch.jit.save), widened to f32, under
 * their original names. Non-tensor entries are skipped.
 */
/** scriptClass: a TorchScript archive's root module class, e.g. "__torch__.clip.model.CLIP" (OpenAI's jit files). */
export function loadTorchZip(zip: ZipArchive, opts: TorchLoadOptions = {}): { kind: TorchArchiveKind; stateDict: StateDict; scriptClass?: string } {
  const { prefix, pkl } = findPickle(zip);
  const limits = new ByteBudget(opts);
  const pklEntry = zip.get(pkl)!;
  // The unpickler's work and memory grow with the pickle: refuse a huge one before inflating (or reading) it.
  if (pklEntry.uncompressedSize > limits.maxPickleBytes) {
    fail(`${quoted(pkl)} is ${pklEntry.uncompressedSize} bytes, more than the limit of ${limits.maxPickleBytes} (maxPickleBytes)`);
  }
  const pickleBytes = zip.read(checkInflated(pklEntry, limits));
  const root = unpickle(pickleBytes, { persistentLoad: storageFromPid });

  let kind: TorchArchiveKind;
  let named: [string, TensorRef][];
  let scriptClass: string | undefined;
  if (root instanceof PyObject && root.cls.module.startsWith("__torch__")) {
    kind = "torchscript";
    scriptClass = `${root.cls.module}.${root.cls.name}`;
    named = walkModule(root, pickleBytes.length);
  } else if (root instanceof PyDict) {
    kind = "torch-zip";
    named = dictTensors(root);
  } else {
    return fail(`data.pkl holds a ${describe(root)}, not a state dict or a TorchScript module`);
  }
  if (named.length === 0) fail("checkpoint contains no tensors");
  limits.checkCount(named.length, "torch: checkpoint");

  // Every stored element is at least one byte, so honest files never need more than this; views
  // sharing storage (or stride-0 broadcasts) must not multiply a small file into a huge allocation.
  let budget = 2 * zip.size + (1 << 20);
  // a storage: its bytes in memory, or (an archive read from a file, unverified) where its stored data starts
  const storages = new Map<string, { bytes: Uint8Array | null; start: number; length: number }>();
  const reader = opts.verifyChecksums ? undefined : zip.source.reader;
  const sd: StateDict = new Map();
  for (const [name, t] of named) {
    if (sd.has(name)) fail(`duplicate tensor name "${name}"`);
    const dtype = t.storage.dtype;
    if (!isDType(dtype)) return fail(`tensor "${name}" has unsupported dtype ${dtype}`);
    let storage = storages.get(t.storage.key);
    if (!storage) {
      const entry = `${prefix}data/${t.storage.key}`;
      const e = zip.get(entry);
      if (!e) return fail(`tensor "${name}" refers to storage "${t.storage.key}" but ${entry} is missing`);
      if (reader && e.method === 0) {
        storage = { bytes: null, start: zip.dataStart(e), length: e.uncompressedSize };
      } else {
        const bytes = zip.read(checkInflated(e, limits), opts.verifyChecksums ?? false);
        storage = { bytes, start: 0, length: bytes.length };
      }
      storages.set(t.storage.key, storage);
    }
    const needBytes = t.storage.numel * DTYPE_SIZE[dtype];
    if (storage.length < needBytes) {
      fail(`storage "${t.storage.key}" declares ${t.storage.numel} ${dtype} elements (${needBytes} bytes) but has ${storage.length} bytes`);
    }
    const count = product(t.shape, name);
    budget -= count;
    if (budget < 0) fail(`tensor "${name}" would take the total size beyond what a ${zip.size}-byte file can hold`);
    limits.take(name, count);
    const stored = contiguousRange(t, dtype);
    // a contiguous f32 or f16 tensor stays as stored: a backend reads it into its own memory (see StoredTensor)
    if (stored && (dtype === "F16" || dtype === "F32") && count > 0 && materialiseCheck(name, t)) {
      const { bytes, start } = storage;
      sd.set(name, new StoredTensor(t.shape.slice(), bytes
        ? storedInMemory(bytes, stored.begin, stored.length, dtype)
        : storedByReader(reader!.read, start + stored.begin, stored.length, dtype, reader!.readAsync)));
      continue;
    }
    // another dtype or layout is widened here, from the storage's bytes (read once, if it was left in the file)
    storage.bytes ??= zip.source.bytes(storage.start, storage.length);
    sd.set(name, { data: materialise(name, t, storage.bytes, dtype), shape: t.shape.slice(), dtype });
  }
  return { kind, stateDict: sd, scriptClass };
}
