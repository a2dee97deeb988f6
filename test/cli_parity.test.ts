// `clip-ts parity` and `clip-ts summary` against the PyTorch dumps committed in test/golden/parity/ (made by
// tools/parity/make_test_dumps.sh from the golden models; CI has no torch).
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { zipSync } from "fflate";
import { afterAll, describe, expect, test } from "vitest";
import { TsBackend } from "../src/backend/ts.js";
import { memoryIo, runCli } from "../src/cli/cli.js";
import { conventionalLayout, lndToNld, markJumps, readDump, runParity, type Comparison } from "../src/cli/parity.js";
import { hookedShapes, moduleTree, parameterCount, subtreeFlops, walk } from "../src/cli/summary.js";
import type { CLIPConfig } from "../src/config.js";
import { buildModel, inferConfig } from "../src/model.js";
import type { StateDict } from "../src/tensor.js";
import { loadStateDict, writeSafetensors } from "../src/weights/index.js";
import { readZip } from "../src/weights/zip.js";
import { goldenDir } from "./helpers/golden.js";

const DUMPS = "test/golden/parity";
const tmp = mkdtempSync(join(tmpdir(), "clip-ts-parity-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

async function run(...argv: string[]) {
  const io = memoryIo();
  const code = await runCli(argv, io);
  return { code, stdout: io.out(), stderr: io.err() };
}

const weights = (name: string) => `${goldenDir(name)}/weights.safetensors`;

/** The golden checkpoint with one element of one tensor changed. */
function perturbed(name: string, key: string, delta: number): string {
  const sd = loadStateDict(readFileSync(weights(name)));
  const t = sd.get(key)!;
  const data = t.data.slice();
  data[0] += delta;
  sd.set(key, { ...t, data });
  const dir = join(tmp, `${name}_${key}`);
  mkdirSync(dir, { recursive: true });
  copyFileSync(`${goldenDir(name)}/config.json`, join(dir, "config.json")); // what the weights cannot tell
  const path = join(dir, "weights.safetensors");
  writeFileSync(path, writeSafetensors(sd, "F32"));
  return path;
}

/** The report's table rows: module name → the rest of its line. */
function reportRows(stdout: string): Map<string, string> {
  const rows = new Map<string, string>();
  for (const line of stdout.split("\n")) {
    const m = /^(\S+)\s+\[[\d, ]+\]\s+(.*)$/.exec(line);
    if (m) rows.set(m[1], m[2]);
  }
  return rows;
}

describe("parity on unperturbed checkpoints: every module within tolerance, no jump", () => {
  for (const [model, dump, modules] of [["vit", `${DUMPS}/vit`, 12], ["rn", `${DUMPS}/rn.npz`, 18], ["vit", `${DUMPS}/vit_plain.npz`, 6]] as const) {
    test(`${model} vs ${dump}`, async () => {
      const r = await run("parity", "--model", weights(model), "--activations", dump, "--fail-on-jump");
      expect(r.code, r.stderr).toBe(0);
      const rows = reportRows(r.stdout);
      expect(rows.size).toBe(modules);
      for (const [name, rest] of rows) {
        expect(rest, name).toMatch(/ ok$/);
        expect(rest).not.toContain("jump");
      }
      expect(r.stdout).toContain(`${modules}/${modules} within`);
      expect(r.stdout).toContain("no jump");
    });
  }

  test("the golden model directories (same manifest layout) read as dumps too", async () => {
    const r = await run("parity", "--model", weights("vit"), "--activations", goldenDir("vit"));
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain("12/12 within");
    expect(r.stdout).toContain("2 images, 3 texts");
  });
});

describe("parity on a perturbed checkpoint marks where the outputs part ways", () => {
  test("vit: one weight of visual.transformer.resblocks.1 changed", async () => {
    const model = perturbed("vit", "visual.transformer.resblocks.1.mlp.c_fc.weight", 0.5);
    const r = await run("parity", "--model", model, "--activations", `${DUMPS}/vit`);
    expect(r.code, r.stderr).toBe(0);
    const rows = reportRows(r.stdout);
    for (const ok of ["visual.conv1", "visual.ln_pre", "visual.transformer.resblocks.0", "transformer.resblocks.0", "transformer.resblocks.1", "ln_final", "encode_text"]) {
      expect(rows.get(ok), ok).toMatch(/ ok$/);
    }
    expect(rows.get("visual.transformer.resblocks.1")).toMatch(/FAIL\s+<- first jump \(image tower\)$/);
    expect(rows.get("visual.ln_post")).toMatch(/FAIL$/); // downstream, but not a second "first jump"
    expect(r.stdout.match(/first jump/g)?.length).toBe(2); // the marked row and the verdict line
    expect(r.stdout).toContain("first jump in the image tower: visual.transformer.resblocks.1");

    const strict = await run("parity", "--model", model, "--activations", `${DUMPS}/vit`, "--fail-on-jump");
    expect(strict.code).toBe(1);
    expect(strict.stderr).toBe("clip-ts parity: the outputs part ways at visual.transformer.resblocks.1 (--fail-on-jump)\n");
  });

  test("rn (.npz dump): a changed batch norm in visual.layer3.0 is found at visual.layer3.0; the text tower is unaffected", async () => {
    const model = perturbed("rn", "visual.layer3.0.bn3.bias", 0.5);
    const r = await run("parity", "--model", model, "--activations", `${DUMPS}/rn.npz`);
    const rows = reportRows(r.stdout);
    expect(rows.get("visual.layer2")).toMatch(/ ok$/);
    expect(rows.get("visual.layer3.0")).toMatch(/<- first jump \(image tower\)$/);
    expect(rows.get("ln_final")).toMatch(/ ok$/);
  });

  test("a text-tower change is found in the text tower, without a plain-npz manifest too", async () => {
    const model = perturbed("vit", "transformer.resblocks.1.attn.out_proj.bias", 0.5);
    const r = await run("parity", "--model", model, "--activations", `${DUMPS}/vit`);
    const rows = reportRows(r.stdout);
    expect(rows.get("transformer.resblocks.0")).toMatch(/ ok$/);
    expect(rows.get("transformer.resblocks.1")).toMatch(/<- first jump \(text tower\)$/);
    expect(rows.get("visual.ln_post")).toMatch(/ ok$/);

    const visual = perturbed("vit", "visual.ln_pre.weight", 0.25);
    const plain = reportRows((await run("parity", "--model", visual, "--activations", `${DUMPS}/vit_plain.npz`)).stdout);
    expect([...plain.keys()].slice(0, 2)).toEqual(["visual.conv1", "visual.ln_pre"]); // the model's forward order
    expect(plain.get("visual.ln_pre")).toMatch(/<- first jump \(image tower\)$/);
  });
});

describe("dump reading", () => {
  test("the directory and its zip (.npz) give the same dump", async () => {
    const files: Record<string, Uint8Array> = {};
    const dir = `${DUMPS}/vit`;
    const manifest = JSON.parse(readFileSync(`${dir}/manifest.json`, "utf8"));
    for (const p of ["manifest.json", "pixels.npy", "tokens.npy", ...manifest.modules.map((m: { path: string }) => m.path), ...manifest.outputs.map((o: { path: string }) => o.path)]) {
      files[p] = readFileSync(join(dir, p));
    }
    const npz = join(tmp, "vit.npz");
    writeFileSync(npz, zipSync(files, { level: 6 }));
    const a = readDump(memoryIo(), dir), b = readDump(memoryIo(), npz);
    expect(b.modules.map((m) => [m.name, m.layout, m.tensor.shape])).toEqual(a.modules.map((m) => [m.name, m.layout, m.tensor.shape]));
    expect(b.modules.map((m) => m.tensor.data)).toEqual(a.modules.map((m) => m.tensor.data));
    expect(b.outputs).toEqual(a.outputs);
    expect([b.pixels, b.tokens]).toEqual([a.pixels, a.tokens]);
    expect(a.modules.map((m) => m.layout)).toEqual(["NCHW", "NLD", "LND", "LND", "ND", "LND", "LND", "NLD"]);
  });

  test("PyTorch's [L, N, D] is transposed; the layout convention by name", () => {
    const t = { data: Float32Array.from({ length: 2 * 3 * 2 }, (_, i) => i), shape: [2, 3, 2] }; // [L=2, N=3, D=2]
    const y = lndToNld(t);
    expect(y.shape).toEqual([3, 2, 2]);
    for (let l = 0; l < 2; l++) for (let n = 0; n < 3; n++) for (let d = 0; d < 2; d++) {
      expect(y.data[(n * 2 + l) * 2 + d]).toBe(t.data[(l * 3 + n) * 2 + d]);
    }
    expect(conventionalLayout("visual.transformer.resblocks.11", 3)).toBe("LND");
    expect(conventionalLayout("transformer.resblocks.0", 3)).toBe("LND");
    expect(conventionalLayout("visual.ln_pre", 3)).toBe("NLD");
    expect(conventionalLayout("visual.layer1.0", 4)).toBe("NCHW");
    expect(conventionalLayout("visual.attnpool", 2)).toBe("ND");
  });

  test("the committed npz are real zips with the entries the manifest names", () => {
    const zip = readZip(readFileSync(`${DUMPS}/rn.npz`));
    const manifest = JSON.parse(new TextDecoder().decode(zip.read("manifest.json")));
    expect(manifest.format).toBe("clip-ts-activations");
    for (const m of manifest.modules) expect(zip.get(m.path), m.path).toBeDefined();
    const plain = readZip(readFileSync(`${DUMPS}/vit_plain.npz`));
    expect(plain.get("manifest.json")).toBeUndefined();
    expect(plain.get("visual.transformer.resblocks.1.npy")).toBeDefined();
  });

  test("jump rule: factor × the previous module of the same tower, and the floor", () => {
    const row = (name: string, tower: Comparison["tower"], maxRel: number): Comparison =>
      ({ name, tower, shape: [1], maxAbs: maxRel, maxRel, cosine: 1, ok: true, jump: false });
    const rows = [row("a", "image", 1e-7), row("b", "image", 5e-5), row("c", "image", 2e-3), row("d", "image", 5e-1),
      row("t1", "text", 2e-4), row("t2", "text", 1e-1), row("logits_per_image", "logits", 0.4)];
    markJumps(rows, { factor: 10, min: 1e-4 });
    // b is 500× a but under the floor; c is the first above both; d is later; t1 is the text tower's first
    expect(rows.filter((r) => r.jump).map((r) => r.name)).toEqual(["c", "t1"]);
  });

  test("bad dumps: one-line errors", async () => {
    const bad = async (pattern: RegExp, dump: string) => {
      const r = await run("parity", "--model", weights("vit"), "--activations", dump);
      expect(r.code).toBe(1);
      expect(r.stderr.trimEnd().split("\n")).toHaveLength(1);
      expect(r.stderr).toMatch(pattern);
    };
    await bad(/--activations: no such file or directory "nowhere"/, "nowhere");
    await bad(/not a zip|zip:/, weights("vit"));
    const escape = join(tmp, "escape");
    mkdirSync(escape, { recursive: true });
    writeFileSync(join(escape, "pixels.npy"), readFileSync(`${DUMPS}/vit/pixels.npy`));
    writeFileSync(join(escape, "manifest.json"), JSON.stringify({ modules: [{ name: "visual.conv1", path: "../../etc/passwd" }] }));
    await bad(/bad file name "\.\.\/\.\.\/etc\/passwd"/, escape);
    writeFileSync(join(escape, "manifest.json"), JSON.stringify({ modules: [{ name: "visual.conv1", path: "act/none.npy" }] }));
    await bad(/"act\/none\.npy" is missing/, escape);
    writeFileSync(join(escape, "manifest.json"), "{not json");
    await bad(/manifest\.json: .*JSON/, escape);
  });

  test("readDump + runParity as a library", () => {
    const io = memoryIo();
    const dump = readDump(io, `${DUMPS}/vit`);
    expect(dump.pixels?.shape).toEqual([2, 3, 32, 32]);
    expect(dump.tokens?.shape).toEqual([2, 77]);
    const model = buildModel(loadStateDict(readFileSync(weights("vit"))), new TsBackend());
    const rows = runParity(model, dump);
    expect(rows.map((r) => r.name)).toEqual([...dump.modules.map((m) => m.name), "encode_image", "encode_text", "logits_per_image", "logits_per_text"]);
    expect(rows.every((r) => r.ok && r.cosine > 0.999999)).toBe(true);
  });
});

describe("summary", () => {
  /** print(model) of the reference, as the dump script saved it. */
  const printed = (dump: string) => {
    if (dump.endsWith(".npz")) return new TextDecoder().decode(readZip(readFileSync(dump)).read("model.txt")).trimEnd();
    return readFileSync(`${dump}/model.txt`, "utf8").trimEnd();
  };
  const manifestOf = (dump: string) => JSON.parse(dump.endsWith(".npz")
    ? new TextDecoder().decode(readZip(readFileSync(dump)).read("manifest.json"))
    : readFileSync(`${dump}/manifest.json`, "utf8"));

  for (const [name, dump, params] of [["vit", `${DUMPS}/vit`, "598,145"], ["rn", `${DUMPS}/rn.npz`, "489,309"]] as const) {
    test(`${name}: the tree is PyTorch's print(model), the totals are the reference's`, async () => {
      const r = await run("summary", "--model", weights(name));
      expect(r.code, r.stderr).toBe(0);
      const lines = r.stdout.split("\n");
      const header = lines.findIndex((l) => l.startsWith("Output shape"));
      const treeAt = lines[header].indexOf("Module");
      const tree = lines.slice(header + 1, lines.indexOf("", header)).map((l) => l.slice(treeAt));
      expect(tree.join("\n")).toBe(printed(dump));
      expect(r.stdout).toContain(`Total parameters: ${params}`);
      expect(Number(params.replaceAll(",", ""))).toBe(manifestOf(dump).num_params);
      expect(r.stdout).toMatch(/^\[1, 1\]\s+[\d,]+\s+\S+ M\s+CLIP\($/m);
    });

    test(`${name}: analytic FLOPs = torch.profiler's count of the reference; shapes = the model's hooks`, () => {
      const sd = loadStateDict(readFileSync(weights(name)));
      const config = inferConfig(sd);
      const root = moduleTree(config);
      const flops = manifestOf(dump).flops_one_input;
      expect(subtreeFlops(root.children[0])).toBe(flops.encode_image);
      expect(subtreeFlops(root.children[1]) + 2 * config.transformerWidth * config.embedDim).toBe(flops.encode_text);

      const hooked = hookedShapes(buildModel(sd, new TsBackend()));
      expect(hooked.size).toBeGreaterThan(5);
      const byPath = new Map([...walk(root)].map((n) => [n.path, n.shape]));
      for (const [path, shape] of hooked) expect(byPath.get(path), path).toEqual(shape);
    });
  }

  test("OpenAI's nine configurations: parameters per the reference, every weight inside a module of the tree", () => {
    const index = JSON.parse(readFileSync("test/golden/configs/index.json", "utf8")) as Record<string, string>;
    expect(Object.keys(index)).toHaveLength(9);
    for (const file of Object.values(index)) {
      const cfg = JSON.parse(readFileSync(`test/golden/configs/${file}`, "utf8"));
      const sd: StateDict = new Map((cfg.state_dict as [string, number[]][]).map(([k, shape]) => [k, { data: new Float32Array(0), shape }]));
      const c = cfg.config;
      const config: CLIPConfig = inferConfig(sd);
      expect(config).toMatchObject({
        embedDim: c.embed_dim, imageResolution: c.image_resolution,
        vision: Array.isArray(c.vision_layers)
          ? { kind: "resnet", layers: c.vision_layers, width: c.vision_width }
          : { kind: "vit", layers: c.vision_layers, width: c.vision_width, patchSize: c.vision_patch_size },
        contextLength: c.context_length, vocabSize: c.vocab_size,
        transformerWidth: c.transformer_width, transformerHeads: c.transformer_heads, transformerLayers: c.transformer_layers,
      });
      expect(parameterCount(sd, ""), cfg.name).toBe(cfg.num_params);
      const paths = new Set([...walk(moduleTree(config))].map((n) => n.path));
      const owner = (key: string) => (key.includes(".") ? key.slice(0, key.lastIndexOf(".")) : "");
      expect([...sd.keys()].filter((k) => !paths.has(owner(k))), cfg.name).toEqual([]);
    }
  });

  test("ViT-B/32: 8.82 GFLOPs per image and 5.96 per text (2 × fvcore-style MACs)", () => {
    const file = JSON.parse(readFileSync("test/golden/configs/ViT-B-32.json", "utf8"));
    const root = moduleTree(inferConfig(new Map((file.state_dict as [string, number[]][]).map(([k, shape]) => [k, { data: new Float32Array(0), shape }]))));
    // independent arithmetic: 50 tokens of width 768 through 12 blocks (12·D² weights: 4 attention + 8 MLP),
    // attention products 2·L²·D per block, the 32×32 patch conv, and the 768→512 projection
    const L = 50, D = 768;
    const image = 2 * (12 * (L * 12 * D * D + 2 * L * L * D) + 49 * 768 * 3 * 32 * 32 + D * 512);
    expect(subtreeFlops(root.children[0])).toBe(image);
    expect(image / 1e9).toBeCloseTo(8.82, 2);
    const text = 2 * (12 * (77 * 12 * 512 * 512 + 2 * 77 * 77 * 512) + 512 * 512);
    expect(subtreeFlops(root.children[1]) + 2 * 512 * 512).toBe(text);
    expect(text / 1e9).toBeCloseTo(5.96, 2);
  });
});
