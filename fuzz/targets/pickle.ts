// Pickle streams (torch's data.pkl): edits at the opcode level — lying length prefixes, memo indices and integers
// (tensor sizes, strides, offsets, storage sizes), dropped, repeated and moved opcodes, unknown opcodes, disallowed
// globals, renamed storages and dtypes. The pickle target unpickles directly; the torch target reuses mutatePickle
// inside whole archives.
import { StorageRef, unpickle, PyTuple, type PyValue } from "../../src/weights/pickle.js";
import { WeightsError } from "../../src/weights/index.js";
import { ARGS, binint, op, parseOps, serialiseOps, shortUnicode, stringOf, type Op } from "../formats/pickle.js";
import { readZip } from "../formats/zip.js";
import type { FuzzTarget } from "../harness.js";
import { concat, getUint, havoc, interestingInt, setUint, utf8 } from "../mutate.js";
import type { Rng } from "../rng.js";
import { pickSeed, seedFiles } from "../seeds.js";

const DISALLOWED = [
  ["os", "system"],
  ["posix", "system"],
  ["builtins", "eval"],
  ["builtins", "getattr"],
  ["__builtin__", "exec"],
  ["subprocess", "Popen"],
  ["torch", "load"],
  ["torch._utils", "_rebuild_qtensor"],
  ["torch._utils", "_rebuild_sparse_tensor"],
  ["numpy.core.multiarray", "_reconstruct"],
  ["torch", "UntypedStorage"],
  ["collections", "defaultdict"],
];
const ALLOWED = [
  ["collections", "OrderedDict"],
  ["torch._utils", "_rebuild_tensor_v2"],
  ["torch._utils", "_rebuild_tensor"],
  ["torch._utils", "_rebuild_parameter"],
  ["torch._tensor", "_rebuild_from_type_v2"],
  ["torch", "FloatStorage"],
  ["torch", "Size"],
  ["torch", "device"],
  ["torch.jit._pickle", "build_intlist"],
  ["__torch__.fuzz", "Module"],
];
const STRINGS = [
  "FloatStorage",
  "HalfStorage",
  "LongStorage",
  "BoolStorage",
  "BFloat16Storage",
  "DoubleStorage",
  "QInt8Storage",
  "ComplexFloatStorage",
  "UntypedStorage",
  "storage",
  "module",
  "cpu",
  "cuda:0",
  "0",
  "1",
  "99999",
  "../data.pkl",
  "",
  "state_dict",
  "_rebuild_tensor_v2",
  "_rebuild_parameter",
  "_rebuild_qtensor",
  "OrderedDict",
  "torch",
  "torch._utils",
  "os",
  "__torch__",
  "__torch__.torch.nn.modules.linear.Linear",
];

const LEN_PREFIX: Record<string, 1 | 4 | 8> = { u8len: 1, u32len: 4, u64len: 8 };

function unicodeOp(s: string): Op {
  const b = utf8(s);
  if (b.length < 256) return shortUnicode(s);
  const len = new Uint8Array(4);
  setUint(len, 0, 4, b.length);
  return op(0x58, concat(len, b));
}

function globalOp(module: string, name: string, stack: boolean): Op[] {
  return stack ? [shortUnicode(module), shortUnicode(name), op(0x93)] : [op("c", utf8(`${module}\n${name}\n`))];
}

function insertion(rng: Rng): { ops: Op[]; how: string } {
  switch (rng.int(10)) {
    case 9: {
      // Memoised values handed to builders over and over: the quadratic-work pattern.
      const k = rng.pick([100, 10_000]);
      const call = [op(0x68, Uint8Array.of(rng.int(8))), op(0x68, Uint8Array.of(rng.int(8))), op("R"), op("0")];
      const ops: Op[] = [];
      for (let i = 0; i < k; i++) ops.push(...call);
      return { ops, how: `${k} × memo → REDUCE` };
    }
    case 0: {
      const c = rng.int(256);
      return { ops: [op(c)], how: `opcode 0x${c.toString(16)} without argument` };
    }
    case 1: {
      const [m, n] = rng.pick(DISALLOWED);
      return { ops: globalOp(m!, n!, rng.chance(0.5)), how: `global ${m}.${n}` };
    }
    case 2: {
      const [m, n] = rng.pick(ALLOWED);
      return { ops: globalOp(m!, n!, rng.chance(0.5)), how: `global ${m}.${n}` };
    }
    case 3: {
      const c = rng.pick([..."RbQ(tld)]}eusa012.".split("").map((ch) => ch.charCodeAt(0)), 0x81, 0x92, 0x93, 0x85, 0x86, 0x87, 0x90, 0x91, 0x94]);
      return { ops: [op(c)], how: `opcode 0x${c.toString(16)}` };
    }
    case 4: {
      const k = rng.pick([100, 10_000, 100_000]);
      const unit = rng.pick(["(", "]", "}", ")", "N", "2"]);
      return { ops: new Array<Op>(k).fill(op(unit)), how: `${k} × '${unit}'` };
    }
    case 5: {
      const c = rng.pick([0x58, 0x42, 0x54, 0x8b, 0x8d, 0x8e, 0x96]);
      const width = c === 0x8d || c === 0x8e || c === 0x96 ? 8 : 4;
      const a = new Uint8Array(width);
      setUint(a, 0, width, interestingInt(rng, width === 8 ? 64 : 32, 16));
      return { ops: [op(c, concat(a, rng.bytes(rng.smallInt(16))))], how: `opcode 0x${c.toString(16)} with length ${getUint(a, 0, width)}` };
    }
    case 6: {
      const c = rng.pick([0x95, 0x80, 0x8a, 0x71, 0x72, 0x68, 0x6a, 0x82]);
      const kind = ARGS.get(c);
      const width = typeof kind === "number" ? kind : 1;
      const a = new Uint8Array(width);
      setUint(a, 0, width as 1 | 2 | 4 | 8, interestingInt(rng, (width * 8) as 8 | 16 | 32 | 64, 0));
      return { ops: [op(c, a)], how: `opcode 0x${c.toString(16)} arg ${getUint(a, 0, width as 1)}` };
    }
    case 7:
      return { ops: [binint(rng.pick([-1, -(2 ** 31), 2 ** 31 - 1, 0, 1 << 30]))], how: "BININT" };
    default: {
      const line = rng.pick(["I01\n", "I-1\n", "L99999999999999999999L\n", "F1e309\n", "S'x'\n", "Vx\n", "p0\n", "g0\n", "P0\n", "I\n"]);
      return { ops: [op(line.charCodeAt(0), utf8(line.slice(1)))], how: `text opcode ${JSON.stringify(line)}` };
    }
  }
}

/** One to three opcode-level edits of a (valid) pickle. */
export function mutatePickle(rng: Rng, pkl: Uint8Array): { bytes: Uint8Array; how: string } {
  let ops: Op[];
  try {
    ops = parseOps(pkl);
  } catch {
    return havoc(rng, pkl);
  }
  const hows: string[] = [];
  const k = rng.range(1, 3);
  for (let e = 0; e < k && ops.length > 0; e++) {
    const i = rng.int(ops.length);
    const r = rng.int(9);
    if (r === 0) {
      // Lie about a length prefix (or the fixed argument), leaving the payload as it was.
      const candidates = ops.filter((x) => typeof ARGS.get(x.code) === "string" && ARGS.get(x.code) !== "line" && ARGS.get(x.code) !== "line2");
      if (candidates.length === 0) continue;
      const t = rng.pick(candidates);
      const width = LEN_PREFIX[ARGS.get(t.code) as string]!;
      const arg = t.arg.slice();
      setUint(arg, 0, width, interestingInt(rng, (width * 8) as 8 | 32 | 64, getUint(arg, 0, width)));
      ops[ops.indexOf(t)] = { code: t.code, arg };
      hows.push(`length of 0x${t.code.toString(16)} → ${getUint(arg, 0, width)}`);
    } else if (r === 1) {
      // Memo indices and small integers: storage sizes, tensor sizes, strides, offsets.
      const numeric = ops.filter((x) => [0x4b, 0x4d, 0x4a, 0x71, 0x72, 0x68, 0x6a].includes(x.code));
      if (numeric.length === 0) continue;
      const t = rng.pick(numeric);
      const arg = t.arg.slice();
      const width = arg.length as 1 | 2 | 4;
      setUint(arg, 0, width, interestingInt(rng, (width * 8) as 8 | 16 | 32, getUint(arg, 0, width)));
      ops[ops.indexOf(t)] = { code: t.code, arg };
      hows.push(`arg of 0x${t.code.toString(16)} → ${getUint(arg, 0, width)}`);
    } else if (r === 2) {
      const n = rng.range(1, 3);
      ops.splice(i, n);
      hows.push(`drop ${n} ops at ${i}`);
    } else if (r === 3) {
      const n = rng.range(1, 8);
      ops.splice(i, 0, ...ops.slice(i, i + n));
      hows.push(`repeat ${n} ops at ${i}`);
    } else if (r === 4) {
      const j = rng.int(ops.length);
      [ops[i], ops[j]] = [ops[j]!, ops[i]!];
      hows.push(`swap ops ${i} and ${j}`);
    } else if (r === 5 || r === 6) {
      const ins = insertion(rng);
      ops = [...ops.slice(0, i), ...ins.ops, ...ops.slice(i)]; // not splice: 100000 arguments overflow the stack
      hows.push(`insert ${ins.how} at ${i}`);
    } else if (r === 7) {
      const strings = ops.filter((x) => stringOf(x) !== undefined);
      if (strings.length === 0) continue;
      const t = rng.pick(strings);
      const s = rng.chance(0.8) ? rng.pick(STRINGS) : "x".repeat(rng.pick([1000, 100_000]));
      ops[ops.indexOf(t)] = unicodeOp(s);
      hows.push(`string ${JSON.stringify(stringOf(t))} → ${JSON.stringify(s.slice(0, 30))}`);
    } else {
      // An integer replaced by a big LONG1 / negative BININT (shape or numel no tensor can have).
      const ints = ops.filter((x) => x.code === 0x4b || x.code === 0x4d || x.code === 0x4a);
      if (ints.length === 0) continue;
      const t = rng.pick(ints);
      const repl = rng.chance(0.5)
        ? binint(rng.pick([-1, -7, -(2 ** 31)]))
        : op(0x8a, Uint8Array.of(8, ...rng.pick([[0, 0, 0, 0, 0, 0, 0x20, 0], [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x1f, 0], [1, 0, 0, 0, 0, 0, 0, 0x80]])));
      ops[ops.indexOf(t)] = repl;
      hows.push(`int → ${repl.code === 0x4a ? "negative" : "huge"}`);
    }
  }
  return { bytes: serialiseOps(ops), how: hows.join("; ") || "no-op" };
}

/** data.pkl of every seed archive (and the bare pickle stream of a legacy torch.save). */
export function pickleSeeds(): { name: string; bytes: Uint8Array }[] {
  const archives = [...seedFiles("test/fixtures/weights", /\.pt$/), ...seedFiles("test/golden/models/vit", /\.pt$/)];
  const out: { name: string; bytes: Uint8Array }[] = [];
  for (const a of archives) {
    if (a.bytes[0] !== 0x50) {
      out.push(a);
      continue;
    }
    for (const item of readZip(a.bytes)) {
      if (item.name.endsWith("/data.pkl") || item.name.endsWith("/constants.pkl")) out.push({ name: `${a.name}:${item.name}`, bytes: item.data });
    }
  }
  return out;
}

/** Storages as torch's loader would resolve them, but without any archive: the pickle alone is under test. */
function persistentLoad(pid: PyValue): PyValue {
  if (!(pid instanceof PyTuple) || pid.items.length !== 5) throw new WeightsError("fuzz: unexpected persistent id");
  const numel = pid.items[4];
  return new StorageRef("F32", String(pid.items[2]), String(pid.items[3]), typeof numel === "number" ? numel : 0);
}

export function pickleTarget(): FuzzTarget<Uint8Array> {
  const seeds = pickleSeeds();
  return {
    name: "pickle",
    errorName: "WeightsError",
    isTyped: (e) => e instanceof WeightsError,
    run: (bytes) => unpickle(bytes, { persistentLoad }),
    files: (bytes) => ({ "case.pkl": bytes }),
    generate(rng) {
      const seed = pickSeed(rng, seeds);
      const r = rng.chance(0.75) ? mutatePickle(rng, seed.bytes) : havoc(rng, seed.bytes);
      return { input: r.bytes, how: `${seed.name}: ${r.how}` };
    },
  };
}
