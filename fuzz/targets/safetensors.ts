// safetensors: lies in the JSON header (data_offsets, shapes, dtypes, names) and in the u64 header length, data
// areas cut or extended, and raw byte edits. Parsed through loadStateDict, key normalisation included.
import { numel } from "../../src/tensor.js";
import { loadStateDict, WeightsError, type WeightsLimits } from "../../src/weights/index.js";
import type { FuzzTarget } from "../harness.js";
import { concat, getUint, havoc, interestingInt, setUint, utf8 } from "../mutate.js";
import type { Rng } from "../rng.js";
import { pickSeed, seedFiles } from "../seeds.js";

/** A weights file, sometimes loaded under small limits so that the limit checks are reached too. */
export interface WeightsCase {
  bytes: Uint8Array;
  limits?: WeightsLimits;
}

export function weightsCase(rng: Rng, bytes: Uint8Array): { input: WeightsCase; how: string } {
  if (!rng.chance(0.1)) return { input: { bytes }, how: "" };
  const limits = { maxTensorBytes: rng.pick([0, 4, 4096, undefined]), maxTotalBytes: rng.pick([0, 64, 1 << 20, undefined]) };
  return { input: { bytes, limits }, how: ` (limits ${JSON.stringify(limits)})` };
}

/** loadStateDict, and a check that what it returns is what it promises: f32 data filling each shape. */
export function runWeights(c: WeightsCase): unknown {
  const sd = loadStateDict(c.bytes, c.limits);
  for (const [name, t] of sd) {
    if (!(t.data instanceof Float32Array) || !t.shape.every((d) => Number.isSafeInteger(d) && d >= 0) || t.data.length !== numel(t.shape)) {
      throw new Error(`oracle: tensor "${name}" has ${t.data.length} values for shape [${t.shape.join(", ")}]`);
    }
  }
  return sd;
}

interface Parsed {
  name: string;
  bytes: Uint8Array;
  header: Record<string, unknown>;
  data: Uint8Array;
}

const HOSTILE_NAMES = [
  "",
  "__proto__",
  "constructor",
  "__metadata__",
  "module.visual.proj",
  "visual.proj",
  "text_projection.weight",
  "visual_projection.weight",
  "text_model.encoder.layers.0.self_attn.q_proj.weight",
  "text_model.encoder.layers.0.self_attn.k_proj.weight",
  "vision_model.encoder.layers.0.mlp.fc1.weight",
  "vision_model.embeddings.position_ids",
  "text_model.bogus",
  "input_resolution",
  "\u0000",
  "é".repeat(300),
];
const HOSTILE_DTYPES: unknown[] = ["F8_E4M3", "F8_E5M2", "f32", "F32 ", "", "toString", "__proto__", "U64", "U16", "C64", 4, null, ["F32"], "BF16", "BOOL", "I64", "F64", "U8"];
const BIG = [2 ** 31, 2 ** 32, 2 ** 53 - 1, 2 ** 53, 2 ** 64, 1e308, Number.MAX_SAFE_INTEGER];

function numberLie(rng: Rng, near: number): unknown {
  switch (rng.int(6)) {
    case 0:
      return near + rng.range(-8, 8);
    case 1:
      return rng.pick(BIG);
    case 2:
      return -rng.range(1, 10);
    case 3:
      return near + 0.5;
    case 4:
      return rng.pick([String(near), null, true, [near], {}]);
    default:
      return interestingInt(rng, 32, near);
  }
}

type Entry = { dtype?: unknown; shape?: unknown; data_offsets?: unknown };

function editHeader(rng: Rng, p: Parsed): { header: Record<string, unknown>; how: string } {
  const header: Record<string, unknown> = structuredClone(p.header);
  const names = Object.keys(header).filter((k) => k !== "__metadata__");
  const pickEntry = (): [string, Entry] => {
    const n = rng.pick(names);
    const e = header[n];
    return [n, (typeof e === "object" && e !== null ? e : {}) as Entry];
  };
  const hows: string[] = [];
  const k = rng.range(1, 3);
  for (let i = 0; i < k && names.length > 0; i++) {
    const [name, e] = pickEntry();
    const offs = Array.isArray(e.data_offsets) ? (e.data_offsets as number[]) : [0, 0];
    switch (rng.int(10)) {
      case 0: {
        const which = rng.int(2);
        const v = numberLie(rng, offs[which] ?? 0);
        e.data_offsets = which === 0 ? [v, offs[1]] : [offs[0], v];
        hows.push(`${name}.data_offsets[${which}] = ${JSON.stringify(v)}`);
        break;
      }
      case 1: {
        // Alias or overlap another tensor's bytes.
        const other = header[rng.pick(names)] as Entry;
        const o = (other?.data_offsets as number[]) ?? [0, 0];
        e.data_offsets = rng.chance(0.5) ? [...o] : [o[0]! + rng.range(0, 4), offs[1]];
        hows.push(`${name}.data_offsets aliased: ${JSON.stringify(e.data_offsets)}`);
        break;
      }
      case 2: {
        e.data_offsets = rng.pick([[offs[1], offs[0]], [offs[0]], [offs[0], offs[1], 0], null, "0,4", [0, p.data.length], [p.data.length, p.data.length]]);
        hows.push(`${name}.data_offsets = ${JSON.stringify(e.data_offsets)}`);
        break;
      }
      case 3: {
        const shape = Array.isArray(e.shape) ? [...(e.shape as unknown[])] : [];
        const r = rng.int(6);
        if (r === 0 && shape.length > 0) shape[rng.int(shape.length)] = numberLie(rng, Number(shape[0]) || 1);
        else if (r === 1) shape.push(rng.pick([0, 1, 2 ** 26, 2 ** 53 - 1, -1]));
        else if (r === 2) shape.splice(0, 1);
        else if (r === 3) e.shape = new Array(rng.pick([64, 1000, 100_000])).fill(1);
        else if (r === 4) e.shape = [0, ...BIG.slice(0, rng.range(1, 4))];
        else e.shape = rng.pick([null, "[2]", {}, [[2]], [2 ** 26, 2 ** 26, 2 ** 26]]);
        if (r < 3) e.shape = shape;
        hows.push(`${name}.shape = ${JSON.stringify(e.shape).slice(0, 60)}`);
        break;
      }
      case 4: {
        e.dtype = rng.pick(HOSTILE_DTYPES);
        hows.push(`${name}.dtype = ${JSON.stringify(e.dtype)}`);
        break;
      }
      case 5: {
        const to = rng.chance(0.3) ? rng.pick(names) : rng.pick(HOSTILE_NAMES);
        const v = header[name];
        delete header[name];
        Object.defineProperty(header, to, { value: v, enumerable: true, writable: true, configurable: true });
        hows.push(`rename ${name} → ${JSON.stringify(to).slice(0, 40)}`);
        break;
      }
      case 6: {
        header[name] = rng.pick([null, 5, "x", [], { dtype: "F32" }, { shape: [1], data_offsets: [0, 4] }]);
        hows.push(`${name} = ${JSON.stringify(header[name])}`);
        break;
      }
      case 7: {
        delete header[name];
        hows.push(`drop ${name}`);
        break;
      }
      case 8: {
        header["__metadata__"] = rng.pick([null, 7, { format: "pt" }, { a: { b: { c: [] } } }, "x".repeat(1000)]);
        hows.push(`__metadata__ replaced`);
        break;
      }
      default: {
        const to = rng.pick(HOSTILE_NAMES);
        const begin = rng.int(p.data.length + 1);
        const end = begin + 4 * rng.smallInt(64);
        Object.defineProperty(header, to, {
          value: { dtype: rng.pick(["F32", "F16", "U8", "I64", "BF16"]), shape: [(end - begin) / 4], data_offsets: [begin, end] },
          enumerable: true,
          writable: true,
          configurable: true,
        });
        hows.push(`add ${JSON.stringify(to).slice(0, 40)} at [${begin}, ${end}]`);
      }
    }
  }
  return { header, how: hows.join("; ") };
}

/** Header text (sometimes made hostile) and the u64 length in front of it (sometimes a lie). */
function assemble(rng: Rng, headerText: Uint8Array, data: Uint8Array): { bytes: Uint8Array; how: string } {
  let n = headerText.length;
  let how = "";
  if (rng.chance(0.25)) {
    n = interestingInt(rng, 64, n);
    how = `; header length ${n}`;
  }
  const len = new Uint8Array(8);
  setUint(len, 0, 8, n);
  return { bytes: concat(len, headerText, data), how };
}

export function safetensorsTarget(): FuzzTarget<WeightsCase> {
  const seeds: Parsed[] = [
    ...seedFiles("test/fixtures/weights", /\.safetensors$/),
    ...seedFiles("test/golden/models/vit", /^weights\.safetensors$/),
  ].map((s) => {
    const n = getUint(s.bytes, 0, 8);
    return {
      name: s.name,
      bytes: s.bytes,
      header: JSON.parse(new TextDecoder().decode(s.bytes.subarray(8, 8 + n))) as Record<string, unknown>,
      data: s.bytes.subarray(8 + n),
    };
  });
  return {
    name: "safetensors",
    errorName: "WeightsError",
    isTyped: (e) => e instanceof WeightsError,
    run: runWeights,
    files: (c) => ({ "case.safetensors": c.bytes, ...(c.limits ? { "limits.json": utf8(JSON.stringify(c.limits)) } : {}) }),
    generate(rng) {
      const r = generate(rng);
      const w = weightsCase(rng, r.input);
      return { input: w.input, how: r.how + w.how };
    },
  };

  function generate(rng: Rng): { input: Uint8Array; how: string } {
      const seed = pickSeed(rng, seeds);
      const mode = rng.weighted([40, 10, 15, 35]);
      if (mode === 0) {
        const { header, how } = editHeader(rng, seed);
        let text = JSON.stringify(header);
        if (rng.chance(0.1)) text = rng.pick(["\ufeff", " ", "[".repeat(100_000)]) + text;
        const r = assemble(rng, utf8(text), seed.data);
        return { input: r.bytes, how: `${seed.name}: ${how}${r.how}` };
      }
      if (mode === 1) {
        const r = assemble(rng, utf8(JSON.stringify(seed.header)), seed.data);
        const b = r.bytes;
        setUint(b, 0, 8, interestingInt(rng, 64, getUint(b, 0, 8)));
        return { input: b, how: `${seed.name}: header length ${getUint(b, 0, 8)}` };
      }
      if (mode === 2) {
        const headerLen = seed.bytes.length - seed.data.length;
        const cut = rng.chance(0.5);
        const k = rng.smallInt(4096) + 1;
        const bytes = cut ? seed.bytes.subarray(0, Math.max(headerLen, seed.bytes.length - k)) : concat(seed.bytes, rng.bytes(k));
        return { input: bytes, how: `${seed.name}: data area ${cut ? "cut" : "extended"} by ${k}` };
      }
      const hot = [0, 4, 8, seed.bytes.length - seed.data.length, seed.bytes.length];
      const r = havoc(rng, seed.bytes, hot);
      return { input: r.bytes, how: `${seed.name}: ${r.how}` };
  }
}
