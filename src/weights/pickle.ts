// A pickle reader that builds inert values and never runs anything from the file.
// Opcode semantics follow CPython's Lib/pickletools.py documentation (protocols 0–5, binary subset).
// Globals resolve only through ALLOWED_GLOBALS; each maps to a pure constructor of a record.
import { MAX_RANK, validateLimits } from "./dtypes.js";
import { WeightsError } from "./errors.js";

export class PyTuple {
  constructor(readonly items: PyValue[]) {}
}

export type PyKey = string | number | bigint | boolean | null;

/** dict and collections.OrderedDict; keys limited to hashable scalars. */
export class PyDict {
  private entries: Map<PyKey, PyValue> | undefined;
  /** Made on first use: a flood of EMPTY_DICT opcodes then costs a small object each, not a hash table. */
  get map(): Map<PyKey, PyValue> {
    return (this.entries ??= new Map());
  }
}

export class PySet {
  constructor(readonly items: PyValue[]) {}
}

/** A resolved, allowed global (class or function); only ever compared by name, never called. */
export class PyGlobal {
  constructor(
    readonly module: string,
    readonly name: string,
  ) {}
  get qualified(): string {
    return `${this.module}.${this.name}`;
  }
}

/**
 * An instance of an allowed class that we do not model: TorchScript modules (`__torch__.*`),
 * torch.device. It only records what the pickle gave it.
 */
export class PyObject {
  state: PyValue | undefined = undefined;
  constructor(
    readonly cls: PyGlobal,
    readonly args: PyValue[],
  ) {}
}

/** A persistent id resolved by the caller (torch: a storage in the archive). */
export class StorageRef {
  constructor(
    readonly dtype: string,
    readonly key: string,
    readonly location: string,
    readonly numel: number,
  ) {}
}

/** torch._utils._rebuild_tensor(_v2): a strided view of a storage. */
export class TensorRef {
  constructor(
    readonly storage: StorageRef,
    readonly offset: number,
    readonly shape: number[],
    readonly stride: number[],
  ) {}
}

export type PyValue =
  | null
  | boolean
  | number
  | bigint
  | string
  | Uint8Array
  | PyValue[]
  | PyTuple
  | PyDict
  | PySet
  | PyGlobal
  | PyObject
  | StorageRef
  | TensorRef;

/** torch storage classes → element dtype (safetensors spelling). */
export const STORAGE_DTYPES: ReadonlyMap<string, string> = new Map([
  ["torch.DoubleStorage", "F64"],
  ["torch.FloatStorage", "F32"],
  ["torch.HalfStorage", "F16"],
  ["torch.BFloat16Storage", "BF16"],
  ["torch.LongStorage", "I64"],
  ["torch.IntStorage", "I32"],
  ["torch.ShortStorage", "I16"],
  ["torch.CharStorage", "I8"],
  ["torch.ByteStorage", "U8"],
  ["torch.BoolStorage", "BOOL"],
]);

type Builder = (args: PyValue[], g: PyGlobal) => PyValue;

function fail(msg: string): never {
  throw new WeightsError(`pickle: ${msg}`);
}

export function describe(v: PyValue | undefined): string {
  if (v === undefined) return "nothing";
  if (v === null) return "None";
  if (Array.isArray(v)) return "list";
  if (v instanceof Uint8Array) return "bytes";
  if (v instanceof PyTuple) return "tuple";
  if (v instanceof PyDict) return "dict";
  if (v instanceof PySet) return "set";
  if (v instanceof PyGlobal) return `global ${v.qualified}`;
  if (v instanceof PyObject) return `${v.cls.qualified} object`;
  if (v instanceof StorageRef) return "storage";
  if (v instanceof TensorRef) return "tensor";
  return typeof v === "number" ? (Number.isInteger(v) ? "int" : "float") : typeof v;
}

function intArg(v: PyValue | undefined, what: string): number {
  if (typeof v === "number" && Number.isSafeInteger(v) && v >= 0) return v;
  return fail(`${what} must be a non-negative int, got ${describe(v)} ${typeof v === "number" ? v : ""}`.trimEnd());
}

function intTuple(v: PyValue | undefined, what: string): number[] {
  const items = v instanceof PyTuple ? v.items : Array.isArray(v) ? v : fail(`${what} must be a tuple, got ${describe(v)}`);
  return items.map((x, i) => intArg(x, `${what}[${i}]`));
}

function rebuildTensor(args: PyValue[], g: PyGlobal): TensorRef {
  if (args.length < 4) fail(`${g.qualified} expects at least 4 arguments, got ${args.length}`);
  const storage = args[0];
  if (!(storage instanceof StorageRef)) return fail(`${g.qualified}: first argument must be a storage, got ${describe(storage)}`);
  const rank = args[2] instanceof PyTuple ? args[2].items.length : Array.isArray(args[2]) ? args[2].length : 0;
  if (rank > MAX_RANK) fail(`tensor has ${rank} dimensions, more than ${MAX_RANK}`);
  const shape = intTuple(args[2], "tensor size");
  const stride = intTuple(args[3], "tensor stride");
  if (shape.length !== stride.length) fail(`tensor has ${shape.length} sizes but ${stride.length} strides`);
  return new TensorRef(storage, intArg(args[1], "storage offset"), shape, stride);
}

function parameter(args: PyValue[], g: PyGlobal): PyValue {
  if (!(args[0] instanceof TensorRef)) fail(`${g.qualified}: first argument must be a tensor, got ${describe(args[0])}`);
  return args[0];
}

function orderedDict(args: PyValue[], g: PyGlobal): PyDict {
  const d = new PyDict();
  if (args.length === 0) return d;
  const items = args[0] instanceof PyTuple ? args[0].items : Array.isArray(args[0]) ? args[0] : fail(`${g.qualified} expects a list of pairs`);
  for (const pair of items) {
    if (!(pair instanceof PyTuple) || pair.items.length !== 2) fail(`${g.qualified} expects (key, value) pairs`);
    d.map.set(hashKey(pair.items[0]!), pair.items[1]!);
  }
  return d;
}

function firstArg(args: PyValue[], g: PyGlobal): PyValue {
  if (args.length < 1) fail(`${g.qualified} expects an argument`);
  return args[0]!;
}

function record(args: PyValue[], g: PyGlobal): PyObject {
  return new PyObject(g, args);
}

/** torch._tensor._rebuild_from_type_v2(func, type, args, state): used for tensors carrying Python attributes. */
function rebuildFromType(args: PyValue[], g: PyGlobal): PyValue {
  const [func, type, inner] = args;
  if (!(func instanceof PyGlobal) || !TENSOR_BUILDERS.has(func.qualified)) fail(`${g.qualified}: unsupported rebuild function ${describe(func)}`);
  if (!(type instanceof PyGlobal) || !TENSOR_TYPES.has(type.qualified)) fail(`${g.qualified}: unsupported tensor type ${describe(type)}`);
  if (!(inner instanceof PyTuple)) return fail(`${g.qualified}: arguments must be a tuple`);
  return ALLOWED_GLOBALS.get(func.qualified)!(inner.items, func);
}

const TENSOR_BUILDERS = new Set(["torch._utils._rebuild_tensor", "torch._utils._rebuild_tensor_v2"]);
const TENSOR_TYPES = new Set(["torch.Tensor", "torch.nn.parameter.Parameter"]);

function notCallable(_args: PyValue[], g: PyGlobal): never {
  return fail(`${g.qualified} cannot be called`);
}

/**
 * Everything a torch checkpoint legitimately references. Anything else is refused by name
 * at the GLOBAL opcode, before it could be used.
 */
const ALLOWED_GLOBALS: ReadonlyMap<string, Builder> = new Map<string, Builder>([
  ["torch._utils._rebuild_tensor", rebuildTensor],
  ["torch._utils._rebuild_tensor_v2", rebuildTensor],
  ["torch._utils._rebuild_parameter", parameter],
  ["torch._utils._rebuild_parameter_with_state", parameter],
  ["torch._tensor._rebuild_from_type_v2", rebuildFromType],
  ["torch.Tensor", notCallable],
  ["torch.nn.parameter.Parameter", notCallable],
  ["collections.OrderedDict", orderedDict],
  ["torch.Size", (args, g) => new PyTuple(intTuple(firstArg(args, g), "torch.Size"))],
  ["torch.device", record],
  // TorchScript wraps typed containers in these (torch/jit/_pickle.py); they return their argument.
  ["torch.jit._pickle.build_intlist", firstArg],
  ["torch.jit._pickle.build_doublelist", firstArg],
  ["torch.jit._pickle.build_boollist", firstArg],
  ["torch.jit._pickle.build_tensorlist", firstArg],
  ["torch.jit._pickle.restore_type_tag", firstArg],
  ...[...STORAGE_DTYPES.keys()].map((k): [string, Builder] => [k, notCallable]),
]);

/** TorchScript module classes: `__torch__.<qualified python name>`, possibly with `___torch_mangle_N` parts. */
function isTorchScriptClass(qualified: string): boolean {
  return qualified.startsWith("__torch__.");
}

function resolveGlobal(module: string, name: string): PyGlobal {
  const q = `${module}.${name}`;
  if (!ALLOWED_GLOBALS.has(q) && !isTorchScriptClass(q)) fail(`global ${q} is not allowed`);
  return new PyGlobal(module, name);
}

function hashKey(k: PyValue): PyKey {
  if (k === null || typeof k === "string" || typeof k === "number" || typeof k === "bigint" || typeof k === "boolean") return k;
  return fail(`unsupported dict key type ${describe(k)}`);
}

export interface UnpickleOptions {
  /** Resolves BINPERSID ids; without it a persistent id is an error. */
  persistentLoad?: (pid: PyValue) => PyValue;
  /** Most opcodes run plus elements builders copy (default DEFAULT_MAX_PICKLE_OPS). */
  maxOps?: number;
}

/**
 * Every opcode makes at most one value (or mark, or memo entry) and builders copy the elements they are charged
 * for, so this bounds the stack, the marks, the memo and every container, and with them time and memory: the
 * costliest flood measured (empty tuples, in a 60 MiB data.pkl) peaks at 189 MB of process memory, 1.1 s of CPU.
 * ViT-bigG-14's pickles run about 40 000 opcodes.
 */
export const DEFAULT_MAX_PICKLE_OPS = 1 << 19;

const MAX_LONG_BYTES = 64;
/**
 * Builders walk their arguments (two levels down at most), and a 2-byte memo reference can hand them a huge list
 * again and again: without a cap, a few hundred KB of pickle keep a CPU busy for hours. Honest pickles build
 * every argument from its own bytes, so the work stays a small multiple of their length.
 */
const WORK_PER_BYTE = 8;
const WORK_SLACK = 1 << 16;

const utf8 = new TextDecoder("utf-8");
const latin1 = new TextDecoder("latin1");

/** Decode a pickle stream into inert values. Throws WeightsError for anything malformed or not allowed. */
export function unpickle(bytes: Uint8Array, opts: UnpickleOptions = {}): PyValue {
  validateLimits(opts, ["maxOps"]);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = bytes.length;
  let pos = 0;
  // MARK saves the current stack and starts an empty one; ops that consume "to the mark" take it whole.
  let stack: PyValue[] = [];
  const marks: PyValue[][] = [];
  const memo = new Map<number, PyValue>();
  let work = 0;
  const maxWork = WORK_PER_BYTE * n + WORK_SLACK;
  let ops = 0;
  const maxOps = opts.maxOps ?? DEFAULT_MAX_PICKLE_OPS;
  const tooMany = (at: number): never =>
    fail(`more than ${maxOps} opcodes and copied elements by offset ${at}; a CLIP checkpoint's pickle needs under 100 000`);

  const need = (len: number, what: string): number => {
    if (len < 0 || pos + len > n) fail(`truncated: ${what} needs ${len} bytes at offset ${pos}, ${n - pos} left`);
    const p = pos;
    pos += len;
    return p;
  };
  const pop = (op: string): PyValue => {
    if (stack.length === 0) return fail(`stack underflow in ${op} at offset ${pos - 1}`);
    return stack.pop()!;
  };
  const top = (op: string): PyValue => {
    if (stack.length === 0) return fail(`${op} at offset ${pos - 1} needs a value on the stack`);
    return stack[stack.length - 1]!;
  };
  const popMark = (op: string): PyValue[] => {
    const prev = marks.pop();
    if (!prev) return fail(`${op} at offset ${pos - 1} without a mark`);
    const items = stack;
    stack = prev;
    return items;
  };
  const line = (what: string): string => {
    const end = bytes.indexOf(0x0a, pos);
    if (end < 0) fail(`truncated: ${what} at offset ${pos} has no newline`);
    const s = latin1.decode(bytes.subarray(pos, end));
    pos = end + 1;
    return s;
  };
  const u64 = (what: string): number => {
    const p = need(8, what);
    const hi = dv.getUint32(p + 4, true);
    if (hi >= 0x200000) fail(`${what} length at offset ${p} is too large`);
    return hi * 4294967296 + dv.getUint32(p, true);
  };
  const str = (len: number, what: string): string => {
    const p = need(len, what);
    return utf8.decode(bytes.subarray(p, p + len));
  };
  const blob = (len: number, what: string): Uint8Array => {
    const p = need(len, what);
    return bytes.slice(p, p + len);
  };
  const long = (len: number): number | bigint => {
    // No tensor size needs more; longer ones would only cost time.
    if (len > MAX_LONG_BYTES) fail(`integer of ${len} bytes at offset ${pos} is too large`);
    const p = need(len, "long");
    if (len === 0) return 0;
    let hex = "";
    for (let i = len - 1; i >= 0; i--) hex += bytes[p + i]!.toString(16).padStart(2, "0");
    let v = BigInt("0x" + hex);
    if (bytes[p + len - 1]! & 0x80) v -= 1n << BigInt(8 * len);
    return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
  };
  /** Charges for the elements a builder may iterate; stops as soon as the pickle's allowance is spent. */
  const spend = (items: PyValue[], depth: number, op: string, at: number): void => {
    work += items.length;
    if (work > maxWork) fail(`${op} at offset ${at}: the pickle asks for more work than its ${n} bytes allow`);
    ops += items.length;
    if (ops > maxOps) tooMany(at);
    if (depth > 0) for (const x of items) if (x instanceof PyTuple || Array.isArray(x)) spend(x instanceof PyTuple ? x.items : x, depth - 1, op, at);
  };
  const memoGet = (i: number): PyValue => {
    if (!memo.has(i)) fail(`memo key ${i} used before being set (offset ${pos})`);
    return memo.get(i)!;
  };
  const construct = (cls: PyValue, args: PyValue[], op: string): PyValue => {
    if (!(cls instanceof PyGlobal)) return fail(`${op} on ${describe(cls)}`);
    if (isTorchScriptClass(cls.qualified)) return new PyObject(cls, args);
    if (cls.qualified === "collections.OrderedDict") return orderedDict(args, cls);
    return fail(`${op} cannot instantiate ${cls.qualified}`);
  };
  const setItems = (target: PyValue, items: PyValue[], op: string): void => {
    if (!(target instanceof PyDict)) fail(`${op} on ${describe(target)}`);
    if (items.length % 2 !== 0) fail(`${op} with an odd number of items`);
    for (let i = 0; i < items.length; i += 2) target.map.set(hashKey(items[i]!), items[i + 1]!);
  };
  const appendItems = (target: PyValue, items: PyValue[], op: string): void => {
    if (!Array.isArray(target)) fail(`${op} on ${describe(target)}`);
    for (const x of items) target.push(x);
  };

  for (;;) {
    if (pos >= n) fail(`truncated: no STOP opcode before the end (${n} bytes)`);
    const at = pos;
    if (++ops > maxOps) tooMany(at);
    const op = bytes[pos++]!;
    switch (op) {
      case 0x80: {
        // PROTO
        const v = bytes[need(1, "PROTO")]!;
        if (v > 5) fail(`unsupported pickle protocol ${v}`);
        break;
      }
      case 0x95: // FRAME: framing only groups opcodes; its length just has to be plausible.
        if (u64("FRAME") > n - pos) fail(`FRAME at offset ${at} is longer than the rest of the data`);
        break;
      case 0x2e: // STOP
        return pop("STOP");
      case 0x28: // MARK
        marks.push(stack);
        stack = [];
        break;
      case 0x29: // EMPTY_TUPLE
        stack.push(new PyTuple([]));
        break;
      case 0x5d: // EMPTY_LIST
        stack.push([]);
        break;
      case 0x7d: // EMPTY_DICT
        stack.push(new PyDict());
        break;
      case 0x8f: // EMPTY_SET
        stack.push(new PySet([]));
        break;
      case 0x4e: // NONE
        stack.push(null);
        break;
      case 0x88: // NEWTRUE
        stack.push(true);
        break;
      case 0x89: // NEWFALSE
        stack.push(false);
        break;
      case 0x4b: // BININT1
        stack.push(bytes[need(1, "BININT1")]!);
        break;
      case 0x4d: // BININT2
        stack.push(dv.getUint16(need(2, "BININT2"), true));
        break;
      case 0x4a: // BININT
        stack.push(dv.getInt32(need(4, "BININT"), true));
        break;
      case 0x8a: // LONG1
        stack.push(long(bytes[need(1, "LONG1")]!));
        break;
      case 0x8b: {
        // LONG4
        const len = dv.getInt32(need(4, "LONG4"), true);
        if (len < 0) fail(`LONG4 at offset ${at} has negative length`);
        stack.push(long(len));
        break;
      }
      case 0x47: // BINFLOAT (big-endian double)
        stack.push(dv.getFloat64(need(8, "BINFLOAT"), false));
        break;
      case 0x58: // BINUNICODE
        stack.push(str(dv.getUint32(need(4, "BINUNICODE"), true), "BINUNICODE"));
        break;
      case 0x8c: // SHORT_BINUNICODE
        stack.push(str(bytes[need(1, "SHORT_BINUNICODE")]!, "SHORT_BINUNICODE"));
        break;
      case 0x8d: // BINUNICODE8
        stack.push(str(u64("BINUNICODE8"), "BINUNICODE8"));
        break;
      case 0x42: // BINBYTES
        stack.push(blob(dv.getUint32(need(4, "BINBYTES"), true), "BINBYTES"));
        break;
      case 0x43: // SHORT_BINBYTES
        stack.push(blob(bytes[need(1, "SHORT_BINBYTES")]!, "SHORT_BINBYTES"));
        break;
      case 0x8e: // BINBYTES8
        stack.push(blob(u64("BINBYTES8"), "BINBYTES8"));
        break;
      case 0x96: // BYTEARRAY8
        stack.push(blob(u64("BYTEARRAY8"), "BYTEARRAY8"));
        break;
      case 0x54: // BINSTRING (protocol 1 str, Python 2)
        stack.push(latin1.decode(blob(dv.getInt32(need(4, "BINSTRING"), true), "BINSTRING")));
        break;
      case 0x55: // SHORT_BINSTRING
        stack.push(latin1.decode(blob(bytes[need(1, "SHORT_BINSTRING")]!, "SHORT_BINSTRING")));
        break;
      case 0x85: // TUPLE1
        stack.push(new PyTuple([pop("TUPLE1")]));
        break;
      case 0x86: {
        // TUPLE2
        const b = pop("TUPLE2");
        const a = pop("TUPLE2");
        stack.push(new PyTuple([a, b]));
        break;
      }
      case 0x87: {
        // TUPLE3
        const c = pop("TUPLE3");
        const b = pop("TUPLE3");
        const a = pop("TUPLE3");
        stack.push(new PyTuple([a, b, c]));
        break;
      }
      // popMark replaces `stack`, so it must run before `stack.push` is looked up.
      case 0x74: {
        // TUPLE
        const t = new PyTuple(popMark("TUPLE"));
        stack.push(t);
        break;
      }
      case 0x6c: {
        // LIST
        const l = popMark("LIST");
        stack.push(l);
        break;
      }
      case 0x64: {
        // DICT
        const d = new PyDict();
        setItems(d, popMark("DICT"), "DICT");
        stack.push(d);
        break;
      }
      case 0x91: {
        // FROZENSET
        const s = new PySet(popMark("FROZENSET"));
        stack.push(s);
        break;
      }
      case 0x90: {
        // ADDITEMS
        const items = popMark("ADDITEMS");
        const s = top("ADDITEMS");
        if (!(s instanceof PySet)) fail(`ADDITEMS on ${describe(s)}`);
        for (const x of items) s.items.push(x);
        break;
      }
      case 0x61: {
        // APPEND
        const v = pop("APPEND");
        appendItems(top("APPEND"), [v], "APPEND");
        break;
      }
      case 0x65: {
        // APPENDS
        const items = popMark("APPENDS");
        appendItems(top("APPENDS"), items, "APPENDS");
        break;
      }
      case 0x73: {
        // SETITEM
        const v = pop("SETITEM");
        const k = pop("SETITEM");
        setItems(top("SETITEM"), [k, v], "SETITEM");
        break;
      }
      case 0x75: {
        // SETITEMS
        const items = popMark("SETITEMS");
        setItems(top("SETITEMS"), items, "SETITEMS");
        break;
      }
      case 0x30: // POP
        if (stack.length > 0) stack.pop();
        else popMark("POP");
        break;
      case 0x31: // POP_MARK
        popMark("POP_MARK");
        break;
      case 0x32: // DUP
        stack.push(top("DUP"));
        break;
      case 0x71: // BINPUT
        memo.set(bytes[need(1, "BINPUT")]!, top("BINPUT"));
        break;
      case 0x72: // LONG_BINPUT
        memo.set(dv.getUint32(need(4, "LONG_BINPUT"), true), top("LONG_BINPUT"));
        break;
      case 0x94: // MEMOIZE
        memo.set(memo.size, top("MEMOIZE"));
        break;
      case 0x68: // BINGET
        stack.push(memoGet(bytes[need(1, "BINGET")]!));
        break;
      case 0x6a: // LONG_BINGET
        stack.push(memoGet(dv.getUint32(need(4, "LONG_BINGET"), true)));
        break;
      case 0x63: {
        // GLOBAL "module\nname\n"
        const module = line("GLOBAL module");
        const name = line("GLOBAL name");
        stack.push(resolveGlobal(module, name));
        break;
      }
      case 0x93: {
        // STACK_GLOBAL
        const name = pop("STACK_GLOBAL");
        const module = pop("STACK_GLOBAL");
        if (typeof module !== "string" || typeof name !== "string") fail(`STACK_GLOBAL at offset ${at} needs two strings`);
        stack.push(resolveGlobal(module, name));
        break;
      }
      case 0x52: {
        // REDUCE
        const args = pop("REDUCE");
        const fn = pop("REDUCE");
        if (!(args instanceof PyTuple)) fail(`REDUCE at offset ${at}: arguments are ${describe(args)}, not a tuple`);
        if (!(fn instanceof PyGlobal)) fail(`REDUCE at offset ${at}: cannot call ${describe(fn)}`);
        spend(args.items, 2, "REDUCE", at);
        const builder = ALLOWED_GLOBALS.get(fn.qualified);
        stack.push(builder ? builder(args.items, fn) : construct(fn, args.items, "REDUCE"));
        break;
      }
      case 0x81: {
        // NEWOBJ
        const args = pop("NEWOBJ");
        const cls = pop("NEWOBJ");
        if (!(args instanceof PyTuple)) fail(`NEWOBJ at offset ${at}: arguments are ${describe(args)}, not a tuple`);
        spend(args.items, 2, "NEWOBJ", at);
        stack.push(construct(cls, args.items, "NEWOBJ"));
        break;
      }
      case 0x92: {
        // NEWOBJ_EX
        const kwargs = pop("NEWOBJ_EX");
        const args = pop("NEWOBJ_EX");
        const cls = pop("NEWOBJ_EX");
        if (!(args instanceof PyTuple)) fail(`NEWOBJ_EX at offset ${at}: arguments are ${describe(args)}, not a tuple`);
        if (!(kwargs instanceof PyDict) || kwargs.map.size !== 0) fail(`NEWOBJ_EX at offset ${at}: keyword arguments are not supported`);
        spend(args.items, 2, "NEWOBJ_EX", at);
        stack.push(construct(cls, args.items, "NEWOBJ_EX"));
        break;
      }
      case 0x62: {
        // BUILD
        const state = pop("BUILD");
        const obj = top("BUILD");
        if (obj instanceof PyObject) obj.state = state;
        else if (!(obj instanceof PyDict || obj instanceof TensorRef)) fail(`BUILD at offset ${at} on ${describe(obj)}`);
        // Attributes set on an OrderedDict (state_dict's _metadata) or a tensor carry no weights.
        break;
      }
      case 0x51: {
        // BINPERSID
        const pid = pop("BINPERSID");
        if (!opts.persistentLoad) fail(`persistent id at offset ${at} but no loader for it`);
        stack.push(opts.persistentLoad(pid));
        break;
      }
      default:
        fail(`unsupported opcode 0x${op.toString(16).padStart(2, "0")}${op >= 0x20 && op < 0x7f ? ` ('${String.fromCharCode(op)}')` : ""} at offset ${at}`);
    }
  }
}
