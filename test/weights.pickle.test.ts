// The pickle reader: Python's own pickles of plain data (protocols 2–5), refused globals, malformed streams.
import { readFileSync } from "node:fs";
import fc from "fast-check";
import { describe, expect, test } from "vitest";
import { WeightsError } from "../src/weights/errors.js";
import { PyDict, PyGlobal, PyObject, PySet, PyTuple, StorageRef, TensorRef, unpickle, type PyValue } from "../src/weights/pickle.js";
import { ZipArchive } from "../src/weights/zip.js";

type Tagged = unknown;
const expected = JSON.parse(readFileSync("test/fixtures/weights/expected.json", "utf8")) as {
  pickles: { protocol: number; hex: string; value: Tagged }[];
};

function fromHex(hex: string): Uint8Array {
  return Uint8Array.from(hex.match(/../g) ?? [], (h) => parseInt(h, 16));
}

/** The JSON form make_weight_fixtures.py's tag() gives Python values. */
function tag(v: PyValue): Tagged {
  if (v === null || typeof v === "boolean" || typeof v === "string") return v;
  // Ints beyond 2^53 arrive as bigint, so a number that is not a safe integer was a Python float.
  if (typeof v === "number") return Number.isSafeInteger(v) ? v : { float: Number.isFinite(v) ? pyRepr(v) : v > 0 ? "inf" : "-inf" };
  if (typeof v === "bigint") return { int: v.toString() };
  if (v instanceof Uint8Array) return { bytes: Array.from(v, (b) => b.toString(16).padStart(2, "0")).join("") };
  if (v instanceof PyTuple) return { tuple: v.items.map(tag) };
  if (Array.isArray(v)) return v.map(tag);
  if (v instanceof PyDict) return { dict: [...v.map].map(([k, x]) => [tag(k), tag(x)]) };
  if (v instanceof PySet) return { set: v.items.map(tag).sort((a, b) => (JSON.stringify(a) < JSON.stringify(b) ? -1 : 1)) };
  throw new Error(`unexpected ${String(v)}`);
}

/** Python's repr of the floats used in the fixture (0.5, -1e+300). */
function pyRepr(x: number): string {
  const s = String(x);
  return s.replace(/e\+?(-?)(\d+)$/, (_, sign: string, d: string) => `e${sign || "+"}${d}`);
}

/** Pickle bytes from opcodes and literal strings (latin1). */
function pk(...parts: (number | string | Uint8Array)[]): Uint8Array {
  const out: number[] = [];
  for (const p of parts) {
    if (typeof p === "number") out.push(p);
    else if (p instanceof Uint8Array) out.push(...p);
    else for (const c of p) out.push(c.charCodeAt(0));
  }
  return Uint8Array.from(out);
}

function throwsWeights(f: () => unknown, msg: RegExp): void {
  let err: unknown;
  try {
    f();
  } catch (e) {
    err = e;
  }
  expect(err, "expected a WeightsError").toBeInstanceOf(WeightsError);
  expect((err as Error).message).toMatch(msg);
}

describe("Python's pickles of plain data", () => {
  for (const c of expected.pickles) {
    test(`protocol ${c.protocol}`, () => {
      const v = unpickle(fromHex(c.hex));
      expect(tag(v)).toEqual(c.value);
      // The memo keeps shared references shared.
      const nested = ((v as PyDict).map.get("nested") as PyDict).map.get("a") as PyDict;
      const pair = nested.map.get("b") as PyValue[];
      expect(pair[0]).toBe(pair[1]);
    });
  }
});

describe("torch records", () => {
  test("_rebuild_tensor_v2 over a persistent storage id", () => {
    // Shaped like a torch.save data.pkl entry: REDUCE(_rebuild_tensor_v2, (storage, 2, (2, 3), (3, 1), False, OrderedDict())).
    const bytes = pk(
      0x80, 2,
      "ctorch._utils\n_rebuild_tensor_v2\n",
      "(", "(", "X", 7, 0, 0, 0, "storage", "ctorch\nHalfStorage\n", "X", 1, 0, 0, 0, "0", "X", 3, 0, 0, 0, "cpu", "K", 10, "t", "Q",
      "K", 2, "K", 2, "K", 3, 0x86, "K", 3, "K", 1, 0x86, 0x89, "ccollections\nOrderedDict\n", ")", "R", "t", "R", ".",
    );
    let seen: PyValue = null;
    const v = unpickle(bytes, {
      persistentLoad: (pid) => {
        seen = pid;
        return new StorageRef("F16", "0", "cpu", 10);
      },
    });
    expect(v).toBeInstanceOf(TensorRef);
    const t = v as TensorRef;
    expect([t.offset, t.shape, t.stride, t.storage.dtype]).toEqual([2, [2, 3], [3, 1], "F16"]);
    const pid = seen as unknown as PyTuple;
    expect(pid.items[0]).toBe("storage");
    expect((pid.items[1] as PyGlobal).qualified).toBe("torch.HalfStorage");
  });

  describe("other tensor rebuilders", () => {
    const storage = pk("(", "X", 7, 0, 0, 0, "storage", "ctorch\nFloatStorage\n", "X", 1, 0, 0, 0, "0", "X", 3, 0, 0, 0, "cpu", "K", 4, "t", "Q");
    const args = pk(storage, "K", 1, "K", 3, 0x85, "K", 1, 0x85);
    const opts = { persistentLoad: () => new StorageRef("F32", "0", "cpu", 4) };

    test("_rebuild_tensor (v1) and _rebuild_parameter_with_state", () => {
      const v1 = unpickle(pk(pk(0x80, 2, "ctorch._utils\n_rebuild_tensor\n("), args, pk("tR.")), opts);
      expect(v1).toEqual(new TensorRef(new StorageRef("F32", "0", "cpu", 4), 1, [3], [1]));
      const inner = pk(pk("ctorch._utils\n_rebuild_tensor_v2\n("), args, pk(0x89, "}", "tR"));
      const param = unpickle(pk(pk(0x80, 2, "ctorch._utils\n_rebuild_parameter_with_state\n("), inner, pk(0x88, "}", "}", "tR.")), opts);
      expect(param).toBeInstanceOf(TensorRef);
      expect((param as TensorRef).offset).toBe(1);
    });

    test("_rebuild_from_type_v2 accepts torch.Tensor and Parameter only", () => {
      const wrapped = (type: string) =>
        pk(pk(0x80, 2, "ctorch._tensor\n_rebuild_from_type_v2\n(", "ctorch._utils\n_rebuild_tensor_v2\n", type, "("), args, pk(0x89, "}", "t", "}", "tR."));
      expect(unpickle(wrapped("ctorch\nTensor\n"), opts)).toBeInstanceOf(TensorRef);
      expect(unpickle(wrapped("ctorch.nn.parameter\nParameter\n"), opts)).toBeInstanceOf(TensorRef);
      throwsWeights(() => unpickle(wrapped("c__torch__\nMyTensor\n"), opts), /unsupported tensor type global __torch__\.MyTensor/);
    });

    test("torch.device is an inert record", () => {
      const d = unpickle(pk(0x80, 2, "ctorch\ndevice\n", "X", 4, 0, 0, 0, "cuda", "K", 0, 0x86, "R."));
      expect(d).toBeInstanceOf(PyObject);
      expect((d as PyObject).args).toEqual(["cuda", 0]);
    });
  });

  test("TorchScript classes become inert records carrying their BUILD state", () => {
    const v = unpickle(pk(0x80, 2, "c__torch__.m.___torch_mangle_3\nBlock\n", ")", 0x81, "}", "X", 1, 0, 0, 0, "k", "K", 9, "s", "b", "."));
    expect(v).toBeInstanceOf(PyObject);
    expect((v as PyObject).cls.qualified).toBe("__torch__.m.___torch_mangle_3.Block");
    expect(((v as PyObject).state as PyDict).map.get("k")).toBe(9);
  });

  test("torch.jit._pickle list builders return their list; torch.Size is a tuple", () => {
    const v = unpickle(pk(0x80, 2, "ctorch.jit._pickle\nbuild_intlist\n", "]", "(", "K", 1, "K", 2, "e", 0x85, "R", "."));
    expect(v).toEqual([1, 2]);
    const s = unpickle(pk(0x80, 2, "ctorch\nSize\n", "K", 4, "K", 5, 0x86, 0x85, "R", "."));
    expect(s).toEqual(new PyTuple([4, 5]));
  });
});

describe("refused and malformed pickles", () => {
  test("globals outside the allowlist are refused by name, before anything is called", () => {
    throwsWeights(() => unpickle(pk(0x80, 2, "cos\nsystem\n", "X", 2, 0, 0, 0, "ls", 0x85, "R", ".")), /^pickle: global os\.system is not allowed$/);
    throwsWeights(
      () => unpickle(pk(0x80, 4, 0x8c, 8, "builtins", 0x94, 0x8c, 4, "eval", 0x94, 0x93, 0x8c, 1, "1", 0x85, "R", ".")),
      /global builtins\.eval is not allowed/,
    );
    throwsWeights(() => unpickle(pk(0x80, 2, "cposix\nsystem\n", ".")), /global posix\.system is not allowed/);
    throwsWeights(() => unpickle(pk(0x80, 2, "c__builtin__\ngetattr\n", ".")), /global __builtin__\.getattr is not allowed/);
  });

  test("allowed globals are only used the way torch uses them", () => {
    throwsWeights(() => unpickle(pk(0x80, 2, "ctorch\nFloatStorage\n", ")", "R", ".")), /torch\.FloatStorage cannot be called/);
    throwsWeights(() => unpickle(pk(0x80, 2, "ctorch._utils\n_rebuild_tensor_v2\n", ")", 0x81, ".")), /NEWOBJ cannot instantiate torch\._utils\._rebuild_tensor_v2/);
    throwsWeights(() => unpickle(pk(0x80, 2, "ctorch._utils\n_rebuild_tensor_v2\n", "(", "K", 1, "K", 2, "K", 3, "K", 4, "t", "R", ".")), /first argument must be a storage/);
    throwsWeights(() => unpickle(pk(0x80, 2, "K", 1, ")", "R", ".")), /cannot call int/);
    throwsWeights(() => unpickle(pk(0x80, 2, "]", "K", 1, "b", ".")), /BUILD at offset 5 on list/);
  });

  test("unknown and unsupported opcodes name themselves", () => {
    throwsWeights(() => unpickle(pk(0x80, 2, 0xff)), /unsupported opcode 0xff at offset 2/);
    throwsWeights(() => unpickle(pk(0x80, 2, "P1\n.")), /unsupported opcode 0x50 \('P'\) at offset 2/);
    throwsWeights(() => unpickle(pk(0x80, 2, "ios\nsystem\n.")), /unsupported opcode 0x69 \('i'\)/);
    throwsWeights(() => unpickle(pk(0x80, 5, 0x97, ".")), /unsupported opcode 0x97/);
    throwsWeights(() => unpickle(pk(0x80, 6, "N.")), /unsupported pickle protocol 6/);
  });

  test("stack, mark and memo misuse", () => {
    throwsWeights(() => unpickle(pk(0x80, 2, 0x86, ".")), /stack underflow in TUPLE2/);
    throwsWeights(() => unpickle(pk(0x80, 2, "t.")), /TUPLE at offset 2 without a mark/);
    throwsWeights(() => unpickle(pk(0x80, 2, "h", 5, ".")), /memo key 5 used before being set/);
    throwsWeights(() => unpickle(pk(0x80, 2, ".")), /stack underflow in STOP/);
    throwsWeights(() => unpickle(pk(0x80, 2, "}", "]", "K", 1, "s", ".")), /unsupported dict key type list/);
    throwsWeights(() => unpickle(pk(0x80, 2, "}", "(", "K", 1, "u", ".")), /odd number of items/);
    throwsWeights(() => unpickle(pk(0x80, 2, "(", "K", 1, "Q", ".")), /no loader/);
  });

  test("lengths beyond the data, oversized integers and frames", () => {
    throwsWeights(() => unpickle(pk(0x80, 2, "X", 0xff, 0xff, 0xff, 0x7f, "abc")), /truncated: BINUNICODE needs 2147483647 bytes/);
    throwsWeights(() => unpickle(pk(0x80, 4, 0x8d, 0, 0, 0, 0, 0, 0, 0x20, 0)), /BINUNICODE8 length at offset 3 is too large/);
    throwsWeights(() => unpickle(pk(0x80, 2, 0x8b, 0, 0, 0, 0x10, ".")), /integer of 268435456 bytes/);
    throwsWeights(() => unpickle(pk(0x80, 2, 0x8b, 0xff, 0xff, 0xff, 0xff, ".")), /negative length/);
    throwsWeights(() => unpickle(pk(0x80, 4, 0x95, 100, 0, 0, 0, 0, 0, 0, 0, "N.")), /FRAME at offset 2 is longer/);
    throwsWeights(() => unpickle(pk(0x80, 2, "cos\nsys")), /GLOBAL name at offset \d+ has no newline/);
    throwsWeights(() => unpickle(pk(0x80, 2, "N")), /no STOP opcode/);
  });

  test("every truncation of a real TorchScript data.pkl fails cleanly", () => {
    const zip = new ZipArchive(new Uint8Array(readFileSync("test/fixtures/weights/torchscript_tree.pt")));
    const pkl = zip.read("torchscript_tree/data.pkl");
    const load = (pid: PyValue): PyValue => {
      if (!(pid instanceof PyTuple)) throw new WeightsError("pid");
      return new StorageRef("F32", String(pid.items[2]), "cpu", 100);
    };
    expect(unpickle(pkl, { persistentLoad: load })).toBeInstanceOf(PyObject);
    for (let cut = 0; cut < pkl.length; cut++) {
      expect(() => unpickle(pkl.subarray(0, cut), { persistentLoad: load }), `cut at ${cut}`).toThrow(WeightsError);
    }
  });

  test("random and mutated streams never escape as anything but WeightsError", () => {
    const zip = new ZipArchive(new Uint8Array(readFileSync("test/fixtures/weights/torchscript_tree.pt")));
    const pkl = zip.read("torchscript_tree/data.pkl");
    const load = (): PyValue => new StorageRef("F32", "0", "cpu", 100);
    const check = (bytes: Uint8Array): void => {
      try {
        unpickle(bytes, { persistentLoad: load });
      } catch (e) {
        if (!(e instanceof WeightsError)) throw e;
      }
    };
    fc.assert(fc.property(fc.uint8Array({ maxLength: 200 }), (b) => check(b)), { numRuns: 200 });
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.nat(pkl.length - 1), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 }), (edits) => {
        const b = pkl.slice();
        for (const [i, v] of edits) b[i] = v;
        check(b);
      }),
      { numRuns: 200 },
    );
  });
});
