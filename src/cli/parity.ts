// `clip-ts parity`: runs the model on the inputs of a PyTorch activation dump (tools/parity/dump_activations.py,
// format in tools/parity/README.md) and compares every module's output, in forward order, to find the first
// module where clip-ts and PyTorch part ways.
import { existsSync, readdirSync, statSync } from "node:fs";
import { join, resolve } from "node:path";
import type { CLIP, TokenTensor } from "../model.js";
import { readNpyFloat32, readNpyTokens } from "../npy.js";
import { shapeString, tensor, type Tensor } from "../tensor.js";
import { readZip } from "../weights/zip.js";
import { CliError, number, parse, required } from "./args.js";
import { MODEL_HELP, MODEL_OPTIONS, openModel, readInput, wrap, type Command, type Io } from "./common.js";

/** How a dumped array is laid out; LND is what PyTorch's transformer blocks output ([L, N, D]). */
export type Layout = "NCHW" | "NLD" | "LND" | "ND";

export interface DumpEntry {
  name: string;
  layout: Layout;
  /** As stored in the dump (before any transpose). */
  tensor: Tensor;
}

export interface Dump {
  pixels?: Tensor;
  tokens?: TokenTensor;
  /** Module outputs, in the dump's order (forward order when it has a manifest). */
  modules: DumpEntry[];
  /** encode_image, encode_text, logits_per_image, logits_per_text: whichever the dump has. */
  outputs: DumpEntry[];
  /** Whether the module order came from a manifest (otherwise the model's own forward order is used). */
  ordered: boolean;
  torchVersion?: string;
}

const OUTPUTS = ["encode_image", "encode_text", "logits_per_image", "logits_per_text"] as const;
const LAYOUTS: readonly Layout[] = ["NCHW", "NLD", "LND", "ND"];

/** Files of a dump: a directory or a zip (.npz); names use "/" and stay inside the dump. */
interface DumpFiles {
  names(): string[];
  read(name: string): Uint8Array | undefined;
}

function directoryFiles(io: Io, dir: string): DumpFiles {
  const root = resolve(io.cwd, dir);
  return {
    names() {
      const out: string[] = [];
      for (const name of readdirSync(root)) {
        if (statSync(join(root, name)).isDirectory()) {
          for (const sub of readdirSync(join(root, name))) out.push(`${name}/${sub}`);
        } else {
          out.push(name);
        }
      }
      return out.sort();
    },
    read(name) {
      const p = join(root, ...name.split("/"));
      return existsSync(p) ? readInput(io, join(dir, name), "--activations") : undefined;
    },
  };
}

function zipFiles(io: Io, path: string): DumpFiles {
  const zip = wrap(`--activations "${path}"`, () => readZip(readInput(io, path, "--activations")));
  return {
    names: () => zip.entries.map((e) => e.name),
    read: (name) => (zip.get(name) ? wrap(`--activations "${path}"`, () => zip.read(name)) : undefined),
  };
}

/** The layout PyTorch's hooks give each module of the reference, by name and rank. */
export function conventionalLayout(name: string, rank: number): Layout {
  if (/(^|\.)transformer\.resblocks\.\d+$/.test(name)) return "LND";
  return rank === 4 ? "NCHW" : rank === 3 ? "NLD" : "ND";
}

function safeName(name: unknown, what: string): string {
  if (typeof name !== "string" || name === "" || name.startsWith("/") || name.split(/[/\\]/).includes("..")) {
    throw new CliError(`${what}: bad file name ${JSON.stringify(name)} (must be a relative path inside the dump)`);
  }
  return name;
}

export function readDump(io: Io, path: string): Dump {
  const full = resolve(io.cwd, path);
  if (!existsSync(full)) throw new CliError(`--activations: no such file or directory "${path}"`);
  const files = statSync(full).isDirectory() ? directoryFiles(io, path) : zipFiles(io, path);
  const what = `--activations "${path}"`;
  const array = (name: string) => {
    const bytes = files.read(name);
    if (!bytes) throw new CliError(`${what}: "${name}" is missing`);
    return wrap(null, () => readNpyFloat32(bytes, `${what}: ${name}`));
  };
  const manifestBytes = files.read("manifest.json");
  const manifest = manifestBytes ? wrap(`${what}: manifest.json`, () => JSON.parse(new TextDecoder().decode(manifestBytes)) as Record<string, unknown>) : undefined;
  if (manifest !== undefined && (typeof manifest !== "object" || manifest === null || Array.isArray(manifest))) {
    throw new CliError(`${what}: manifest.json is not a JSON object`);
  }
  const inputs = (manifest?.inputs ?? {}) as Record<string, { path?: unknown } | undefined>;
  const pixelsName = inputs.pixels?.path !== undefined ? safeName(inputs.pixels.path, what) : "pixels.npy";
  const tokensName = inputs.tokens?.path !== undefined ? safeName(inputs.tokens.path, what) : "tokens.npy";
  const dump: Dump = { modules: [], outputs: [], ordered: manifest !== undefined, torchVersion: typeof manifest?.torch_version === "string" ? manifest.torch_version : undefined };
  const pixelBytes = files.read(pixelsName);
  if (pixelBytes) dump.pixels = wrap(null, () => readNpyFloat32(pixelBytes, `${what}: ${pixelsName}`));
  const tokenBytes = files.read(tokensName);
  if (tokenBytes) dump.tokens = wrap(null, () => readNpyTokens(tokenBytes, `${what}: ${tokensName}`));
  if (!dump.pixels && !dump.tokens) throw new CliError(`${what}: no inputs (neither ${pixelsName} nor ${tokensName})`);

  const outputNames = new Map<string, string>(OUTPUTS.map((o) => [`${o}.npy`, o]));
  if (manifest) {
    const mods = manifest.modules;
    if (!Array.isArray(mods)) throw new CliError(`${what}: manifest.json has no "modules" list`);
    for (const m of mods as Record<string, unknown>[]) {
      if (typeof m?.name !== "string") throw new CliError(`${what}: a manifest module has no name`);
      const t = array(safeName(m.path, what));
      const layout = m.layout === undefined ? conventionalLayout(m.name, t.shape.length) : m.layout as Layout;
      if (!LAYOUTS.includes(layout)) throw new CliError(`${what}: module "${m.name}" has unknown layout ${JSON.stringify(m.layout)}`);
      dump.modules.push({ name: m.name, layout, tensor: t });
    }
    if (Array.isArray(manifest.outputs)) {
      outputNames.clear();
      for (const o of manifest.outputs as Record<string, unknown>[]) {
        if (typeof o?.name !== "string") throw new CliError(`${what}: a manifest output has no name`);
        outputNames.set(safeName(o.path, what), o.name);
      }
    }
  } else {
    const inputsAndOutputs = new Set([pixelsName, tokensName, ...outputNames.keys()]);
    for (const name of files.names()) {
      if (!name.endsWith(".npy") || inputsAndOutputs.has(name)) continue;
      const module = name.replace(/^act\//, "").slice(0, -4);
      const t = array(name);
      dump.modules.push({ name: module, layout: conventionalLayout(module, t.shape.length), tensor: t });
    }
  }
  for (const [file, name] of outputNames) {
    if (files.read(file) !== undefined) dump.outputs.push({ name, layout: "ND", tensor: array(file) });
  }
  return dump;
}

/** [L, N, D] → [N, L, D]. */
export function lndToNld(t: Tensor): Tensor {
  const [L, N, D] = t.shape;
  const out = tensor([N, L, D]);
  for (let l = 0; l < L; l++) for (let n = 0; n < N; n++) out.data.set(t.data.subarray((l * N + n) * D, (l * N + n + 1) * D), (n * L + l) * D);
  return out;
}

export interface Comparison {
  name: string;
  tower: "image" | "text" | "logits";
  shape: number[];
  maxAbs: number;
  /** max |a − b| / max |b| */
  maxRel: number;
  cosine: number;
  /** The project's criterion, |a − b| ≤ 1e-5·max|b| + 1e-6 everywhere. */
  ok: boolean;
  /** Set on the first module of its tower where the error jumps. */
  jump: boolean;
  note?: string;
}

export function compare(name: string, actual: Tensor, expected: Tensor): Omit<Comparison, "tower" | "jump"> {
  if (shapeString(actual.shape) !== shapeString(expected.shape)) {
    return { name, shape: expected.shape, maxAbs: Infinity, maxRel: Infinity, cosine: NaN, ok: false, note: `shape ${shapeString(actual.shape)}, PyTorch ${shapeString(expected.shape)}` };
  }
  let maxAbs = 0, scale = 0, dot = 0, na = 0, nb = 0;
  for (let i = 0; i < expected.data.length; i++) {
    const a = actual.data[i], b = expected.data[i];
    const d = Math.abs(a - b);
    maxAbs = Number.isNaN(d) ? Infinity : Math.max(maxAbs, d);
    scale = Math.max(scale, Math.abs(b));
    dot += a * b;
    na += a * a;
    nb += b * b;
  }
  const maxRel = maxAbs === 0 ? 0 : maxAbs / scale;
  const cosine = na === 0 && nb === 0 ? 1 : dot / Math.sqrt(na * nb);
  return { name, shape: expected.shape, maxAbs, maxRel, cosine, ok: maxAbs <= 1e-5 * scale + 1e-6 };
}

function towerOf(name: string): Comparison["tower"] {
  if (name.startsWith("logits")) return "logits";
  return name.startsWith("visual") || name === "encode_image" ? "image" : "text";
}

export interface JumpRule {
  /** The error must exceed this many times the previous module's max rel … */
  factor: number;
  /** … and this absolute max rel. */
  min: number;
}

/** Runs the model on the dump's inputs and compares every module and output, in forward order. */
export function runParity(model: CLIP, dump: Dump, rule: JumpRule = { factor: 10, min: 1e-4 }): Comparison[] {
  const acts = new Map<string, Tensor>();
  const hook = (name: string, t: Tensor) => acts.set(name, t);
  const produced = new Map<string, Tensor>();
  if (dump.pixels) produced.set("encode_image", wrap("dump pixels", () => model.encodeImage(dump.pixels!, hook)));
  if (dump.tokens) produced.set("encode_text", wrap("dump tokens", () => model.encodeText(dump.tokens!, hook)));
  const img = produced.get("encode_image"), txt = produced.get("encode_text");
  if (img && txt) {
    const { logitsPerImage, logitsPerText } = model.logits(img, txt);
    produced.set("logits_per_image", logitsPerImage);
    produced.set("logits_per_text", logitsPerText);
  }

  const order = [...acts.keys()];
  const modules = dump.ordered ? dump.modules
    : [...dump.modules].sort((a, b) => rank(order, a.name) - rank(order, b.name));
  const rows: Comparison[] = [];
  for (const m of [...modules, ...dump.outputs]) {
    const actual = acts.get(m.name) ?? produced.get(m.name);
    const tower = towerOf(m.name);
    if (!actual) {
      rows.push({ name: m.name, tower, shape: m.tensor.shape, maxAbs: NaN, maxRel: NaN, cosine: NaN, ok: false, jump: false, note: "not produced by clip-ts" });
      continue;
    }
    let expected = m.tensor;
    if (m.layout === "LND") {
      if (expected.shape.length !== 3) {
        rows.push({ name: m.name, tower, shape: expected.shape, maxAbs: Infinity, maxRel: Infinity, cosine: NaN, ok: false, jump: false, note: "layout LND needs 3 dimensions" });
        continue;
      }
      expected = lndToNld(expected);
    }
    rows.push({ ...compare(m.name, actual, expected), tower, jump: false });
  }
  markJumps(rows, rule);
  return rows;
}

function rank(order: string[], name: string): number {
  const i = order.indexOf(name);
  return i < 0 ? order.length : i;
}

/** The first module per tower whose max rel exceeds factor× the previous module's (of that tower) and min. */
export function markJumps(rows: Comparison[], rule: JumpRule): void {
  const prev = { image: 0, text: 0, logits: 0 };
  const found = { image: false, text: false, logits: false };
  for (const r of rows) {
    if (Number.isNaN(r.maxRel)) continue;
    const before = r.tower === "logits" ? Math.max(prev.image, prev.text) : prev[r.tower];
    if (!found[r.tower] && r.maxRel > rule.min && r.maxRel > rule.factor * before) {
      r.jump = true;
      found[r.tower] = true;
    }
    prev[r.tower] = r.maxRel;
  }
}

const sci = (x: number) => (Number.isNaN(x) ? "–" : x === Infinity ? "inf" : x.toExponential(2));

export function renderParity(rows: Comparison[], rule: JumpRule): string {
  const table = rows.map((r) => [
    r.name, shapeString(r.shape), sci(r.maxAbs), sci(r.maxRel), Number.isNaN(r.cosine) ? "–" : r.cosine.toFixed(9),
    Number.isNaN(r.maxRel) ? "" : r.ok ? "ok" : "FAIL",
    [r.note, r.jump ? `<- first jump (${r.tower === "logits" ? "logits" : `${r.tower} tower`})` : undefined].filter(Boolean).join("; "),
  ]);
  const header = ["module", "shape", "max abs", "max rel", "cosine", "within tol", ""];
  const w = header.map((h, i) => Math.max(h.length, ...table.map((t) => t[i].length)));
  const line = (t: string[]) => t.map((c, i) => (i >= 2 && i <= 4 ? c.padStart(w[i]) : c.padEnd(w[i]))).join("  ").trimEnd();
  const jumps = rows.filter((r) => r.jump);
  const verdict = jumps.length
    ? jumps.map((r) => `first jump in the ${r.tower === "logits" ? "logits" : `${r.tower} tower`}: ${r.name} (max rel ${sci(r.maxRel)})`)
    : [`no jump: no module's max rel exceeds ${rule.factor}× the previous module's and ${rule.min}`];
  const failed = rows.filter((r) => !r.ok).length;
  return [
    line(header), ...table.map(line), "",
    `${rows.length - failed}/${rows.length} within |a − b| ≤ 1e-5·max|b| + 1e-6 (max rel = max|a − b| / max|b|; cosine over the whole tensor)`,
    ...verdict, "",
  ].join("\n");
}

export const parity: Command = {
  name: "parity",
  summary: "compare every module's output with a PyTorch activation dump",
  help: `Usage:
  clip-ts parity --activations DUMP [--model FILE] [--jump-factor X] [--jump-min Y] [--fail-on-jump]

Runs the model on the inputs stored in a PyTorch activation dump (made by tools/parity/dump_activations.py:
a directory with manifest.json, or the same files zipped as an .npz) and prints, for each module in forward
order, the max abs and max rel error (max|a − b| / max|b|) and the cosine similarity with PyTorch's output.
PyTorch's [L, N, D] transformer outputs are transposed to clip-ts's [N, L, D]. The first module of each tower
whose max rel exceeds X times the previous module's and Y is marked as the jump: where the two part ways.

Options:
  --activations DUMP  a dump directory or .npz
  --jump-factor X     default 10
  --jump-min Y        default 1e-4
  --fail-on-jump      exit with status 1 when a jump is found
${MODEL_HELP}`,

  async run(argv, io) {
    const { values } = parse(argv, {
      ...MODEL_OPTIONS, activations: { type: "string" }, "jump-factor": { type: "string" }, "jump-min": { type: "string" },
      "fail-on-jump": { type: "boolean" },
    }, false);
    if (values.help) return io.stdout.write(`${this.help}\n`);
    const dumpPath = required(values.activations, "--activations");
    const rule: JumpRule = { factor: number(values["jump-factor"], "--jump-factor") ?? 10, min: number(values["jump-min"], "--jump-min") ?? 1e-4 };
    const dump = readDump(io, dumpPath);
    const { model, path } = await openModel(io, values);
    let rows: Comparison[];
    try {
      rows = runParity(model, dump, rule);
    } finally {
      model.dispose();
    }
    const plural = (n: number, what: string) => `${n} ${what}${n === 1 ? "" : "s"}`;
    const counts = [dump.pixels && plural(dump.pixels.shape[0], "image"), dump.tokens && plural(dump.tokens.shape[0], "text")].filter(Boolean).join(", ");
    io.stdout.write(`clip-ts ${path} against PyTorch${dump.torchVersion ? ` ${dump.torchVersion}` : ""} (${dumpPath}: ${counts})\n\n`);
    io.stdout.write(renderParity(rows, rule));
    const jump = rows.find((r) => r.jump);
    if (values["fail-on-jump"] && jump) throw new CliError(`the outputs part ways at ${jump.name} (--fail-on-jump)`);
  },
};
