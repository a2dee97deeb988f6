// The clip-ts commands run in-process (runCli with an in-memory Io) on the golden models of test/golden/models.
import * as fs from "node:fs";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, test } from "vitest";
import { CliError } from "../src/cli/args.js";
import { COMMANDS, memoryIo, runCli } from "../src/cli/cli.js";
import { DEFAULT_MODEL as DEFAULT_MODEL_PATH, imageLoader, writeOutput } from "../src/cli/common.js";
import { batchedLogits } from "../src/cli/logits.js";
import { imageLogits } from "../src/cli/zero_shot.js";
import { loadModel } from "../src/clip.js";
import { zeroShotLogits } from "../src/zero_shot.js";
import type { OutputFs } from "../src/cli/output.js";
import { Progress } from "../src/cli/progress.js";
import { DEFAULT_MAX_BATCH, normalize } from "../src/model.js";
import { readNpyTokens, writeNpy } from "../src/npy.js";
import { agreement, goldenDir, npy } from "./helpers/golden.js";

const tmp = mkdtempSync(join(tmpdir(), "clip-ts-cli-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

async function run(...argv: string[]) {
  const io = memoryIo();
  const code = await runCli(argv, io);
  return { code, stdout: io.out(), stderr: io.err() };
}

/** A user error: the status, and exactly one line on stderr that names the problem, no stack trace. */
async function expectError(status: number, pattern: RegExp, ...argv: string[]) {
  const r = await run(...argv);
  expect(r.code, r.stderr).toBe(status);
  expect(r.stderr.endsWith("\n")).toBe(true);
  expect(r.stderr.trimEnd().split("\n"), r.stderr).toHaveLength(1);
  expect(r.stderr).not.toMatch(/\n\s+at /);
  expect(r.stderr).toMatch(pattern);
  expect(r.stdout).toBe("");
  return r.stderr;
}

const within = (actual: ReturnType<typeof npy>, expected: ReturnType<typeof npy>) => {
  const a = agreement(actual, expected);
  expect(a.ok, `max abs ${a.maxAbs}, max rel ${a.maxRel}`).toBe(true);
};

for (const name of ["vit", "rn"]) {
  const dir = goldenDir(name);
  const model = `${dir}/weights.safetensors`;

  describe(`${name}: model commands against the PyTorch goldens`, () => {
    test("embed-image --pixels --out = encode_image", async () => {
      const out = join(tmp, `${name}_image.npy`);
      const r = await run("embed-image", "--model", model, "--pixels", `${dir}/pixels.npy`, "--out", out);
      expect(r).toEqual({ code: 0, stdout: "", stderr: "" });
      within(npy(out), npy(`${dir}/encode_image.npy`));
    });

    test("embed-text --tokens --out = encode_text (int64 and int32 ids)", async () => {
      const out = join(tmp, `${name}_text.npy`);
      expect((await run("embed-text", "--model", model, "--tokens", `${dir}/tokens.npy`, "--out", out)).code).toBe(0);
      within(npy(out), npy(`${dir}/encode_text.npy`));

      const t64 = readNpyTokens(readFileSync(`${dir}/tokens.npy`));
      expect(t64.data).toBeInstanceOf(BigInt64Array);
      const i32 = join(tmp, `${name}_tokens_i32.npy`);
      writeFileSync(i32, writeNpy({ data: Int32Array.from(t64.data, Number), shape: t64.shape }));
      const out32 = join(tmp, `${name}_text32.npy`);
      expect((await run("embed-text", "--model", model, "--tokens", i32, "--out", out32)).code).toBe(0);
      expect(npy(out32).data).toEqual(npy(out).data);
    });

    test("logits --out = logits_per_image", async () => {
      const out = join(tmp, `${name}_logits.npy`);
      const r = await run("logits", "--model", model, "--pixels", `${dir}/pixels.npy`, "--tokens", `${dir}/tokens.npy`, "--out", out);
      expect(r.code, r.stderr).toBe(0);
      within(npy(out), npy(`${dir}/logits_per_image.npy`));
    });
  });
}

describe("output forms", () => {
  const dir = goldenDir("vit");
  const model = `${dir}/weights.safetensors`;

  test("without --out: JSON rows that read back to the same float32 values", async () => {
    const r = await run("embed-image", "--model", model, "--pixels", `${dir}/pixels.npy`);
    expect(r.code).toBe(0);
    const rows = JSON.parse(r.stdout) as number[][];
    const expected = npy(`${dir}/encode_image.npy`);
    expect(rows.length).toBe(2);
    within({ data: Float32Array.from(rows.flat()), shape: [2, rows[0].length] }, expected);
    const viaNpy = join(tmp, "json_vs_npy.npy");
    await run("embed-image", "--model", model, "--pixels", `${dir}/pixels.npy`, "--out", viaNpy);
    expect(Float32Array.from(rows.flat())).toEqual(npy(viaNpy).data); // 9 digits round-trip float32 exactly

    const logits = JSON.parse((await run("logits", "--model", model, "--pixels", `${dir}/pixels.npy`, "--tokens", `${dir}/tokens.npy`)).stdout);
    within({ data: Float32Array.from(logits.flat()), shape: [2, 3] }, npy(`${dir}/logits_per_image.npy`));
  });

  test("--normalize gives unit rows in the direction of the raw features", async () => {
    const out = join(tmp, "normalized.npy");
    expect((await run("embed-text", "--model", model, "--tokens", `${dir}/tokens.npy`, "--normalize", "--out", out)).code).toBe(0);
    const y = npy(out);
    within(y, normalize(npy(`${dir}/encode_text.npy`)));
    for (let r = 0; r < 3; r++) {
      const row = y.data.subarray(r * 64, (r + 1) * 64);
      expect(Math.hypot(...row)).toBeCloseTo(1, 6);
    }
  });

  test("--batch-size does not change the result", async () => {
    const a = join(tmp, "b1.npy"), b = join(tmp, "b2.npy");
    await run("embed-image", "--model", model, "--pixels", `${dir}/pixels.npy`, "--batch-size", "1", "--out", a);
    await run("embed-image", "--model", model, "--pixels", `${dir}/pixels.npy`, "--out", b);
    expect(npy(a).data).toEqual(npy(b).data);
  });
});

describe("images through the reference preprocessing", () => {
  const pre = "test/golden/preprocess";
  const cases = JSON.parse(readFileSync(`${pre}/cases.json`, "utf8")).cases as { name: string; input: string; nPx: number; tensorNpy?: string }[];
  const small = cases.filter((c) => c.nPx === 32 && c.tensorNpy && c.input.endsWith(".png")).slice(0, 2);

  test("preprocess --out matches torchvision's tensors", async () => {
    expect(small.length).toBe(2);
    for (const c of small) {
      const out = join(tmp, `${c.name}.npy`);
      const r = await run("preprocess", `${pre}/${c.input}`, "--size", "32", "--out", out);
      expect(r.code, r.stderr).toBe(0);
      const got = npy(out), want = npy(`${pre}/${c.tensorNpy}`);
      expect(got.shape).toEqual([1, 3, 32, 32]);
      within({ data: got.data, shape: want.shape }, want);
    }
  });

  test("embed-image on image files = embed-image on their preprocessed pixels", async () => {
    const model = `${goldenDir("vit")}/weights.safetensors`;
    const files = small.map((c) => `${pre}/${c.input}`);
    const pixels = join(tmp, "two.npy");
    expect((await run("preprocess", ...files, "--size", "32", "--out", pixels)).code).toBe(0);
    expect(npy(pixels).shape).toEqual([2, 3, 32, 32]);
    const a = join(tmp, "from_files.npy"), b = join(tmp, "from_pixels.npy");
    expect((await run("embed-image", ...files, "--model", model, "--out", a)).code).toBe(0);
    expect((await run("embed-image", "--pixels", pixels, "--model", model, "--out", b)).code).toBe(0);
    expect(npy(a).data).toEqual(npy(b).data);
    const json = JSON.parse((await run("embed-image", ...files, "--model", model, "--normalize")).stdout);
    expect(json.map((x: { image: string }) => x.image)).toEqual(files);
    expect(Math.hypot(...json[0].embedding)).toBeCloseTo(1, 5);
  });
});

describe("bad arguments: one line on stderr, non-zero status", () => {
  const dir = goldenDir("vit");
  const model = `${dir}/weights.safetensors`;

  test("usage errors exit with 2", async () => {
    await expectError(2, /unknown option --bogus/, "embed-image", "--bogus", "--pixels", "x.npy");
    await expectError(2, /unknown command "frobnicate"/, "frobnicate");
    await expectError(2, /missing --tokens/, "logits", "--model", model, "--pixels", `${dir}/pixels.npy`);
    await expectError(2, /--backend must be one of ts, wasm, got "gpu"/, "embed-image", "--model", model, "--pixels", `${dir}/pixels.npy`, "--backend", "gpu");
    await expectError(2, /--threads must be an integer/, "embed-image", "--model", model, "--pixels", `${dir}/pixels.npy`, "--threads", "0");
    await expectError(2, /either --pixels or image files/, "embed-image", "--model", model, "--pixels", `${dir}/pixels.npy`, "a.png");
    await expectError(2, /unexpected argument stray/, "logits", "stray");
    await expectError(2, /option '--out <value>' argument missing/i, "preprocess", "a.png", "--out");
    await expectError(2, /--size must be an integer/, "preprocess", "a.png", "--size", "big", "--out", "x.npy");
    await expectError(2, /missing texts to tokenize/, "tokenize");
  });

  test("missing files name the file", async () => {
    await expectError(1, /--pixels: no such file "nope\.npy"/, "embed-image", "--model", model, "--pixels", "nope.npy");
    await expectError(1, /--model: no such file "missing\.safetensors"/, "embed-image", "--model", "missing.safetensors", "--pixels", `${dir}/pixels.npy`);
    await expectError(1, /is a directory/, "embed-image", "--model", model, "--pixels", dir);
    await expectError(1, /image: no such file "nope\.png"/, "preprocess", "nope.png", "--out", join(tmp, "x.npy"));
  });

  test("wrong dtypes and shapes", async () => {
    await expectError(1, /--pixels ".*tokens\.npy".*expected float32 values, found dtype/, "embed-image", "--model", model, "--pixels", `${dir}/tokens.npy`);
    await expectError(1, /--tokens ".*pixels\.npy".*expected int32 or int64 token ids/, "embed-text", "--model", model, "--tokens", `${dir}/pixels.npy`);
    await expectError(1, /expected pixels of shape \[N, 3, 32, 32\], got \[2, 3, 64, 64\]/, "embed-image", "--model", model, "--pixels", `${goldenDir("rn")}/pixels.npy`);
    const flat = join(tmp, "flat.npy");
    writeFileSync(flat, writeNpy({ data: new Int32Array(77), shape: [77] }));
    await expectError(1, /--tokens .*expected shape \[N, context_length\], found \[77\]/, "embed-text", "--model", model, "--tokens", flat);
    const short = join(tmp, "short.npy");
    writeFileSync(short, writeNpy({ data: new Int32Array(2 * 64), shape: [2, 64] }));
    await expectError(1, /expected token ids of shape \[N, 77\], got \[2, 64\]/, "embed-text", "--model", model, "--tokens", short);
    await expectError(1, /weights\.safetensors": .*not a \.npy file/, "embed-image", "--model", model, "--pixels", model);
    const oob = join(tmp, "oob.npy");
    writeFileSync(oob, writeNpy({ data: new Int32Array(77).fill(9999), shape: [1, 77] }));
    await expectError(1, /token id 9999 .* outside the vocabulary \[0, 512\)/, "embed-text", "--model", model, "--tokens", oob);
  });

  test("texts need a vocab that fits the model", async () => {
    await expectError(1, /no tokenizer vocab next to ".*vit\/weights\.safetensors" \(looked for .*\); pass --vocab/, "embed-text", "hi", "--model", model);
    await expectError(1, /--vocab "weights\/vocab\.txt\.gz" has \d+ tokens but the model's token_embedding has 512/, "zero-shot", "x.png", "--labels", "a,b", "--model", model, "--vocab", "weights/vocab.txt.gz");
    await expectError(1, /--vocab: no such file "none\.txt"/, "tokenize", "hi", "--vocab", "none.txt");
  });

  test("a file that is not weights", async () => {
    await expectError(1, /--model ".*pixels\.npy": unrecognised weights format/, "embed-image", "--model", `${dir}/pixels.npy`, "--pixels", `${dir}/pixels.npy`);
  });
});

describe("help", () => {
  test("every command has --help on stdout with status 0", async () => {
    for (const c of COMMANDS) {
      const r = await run(c.name, "--help");
      expect(r.code).toBe(0);
      expect(r.stderr).toBe("");
      expect(r.stdout).toMatch(new RegExp(`^Usage:\\n  clip-ts ${c.name} `));
    }
  });

  test("the command list, and no command = usage with status 2", async () => {
    const r = await run("--help");
    expect(r.code).toBe(0);
    for (const c of COMMANDS) expect(r.stdout).toContain(`  ${c.name} `);
    expect((await run()).code).toBe(2);
    expect((await run("help")).stdout).toBe(r.stdout);
  });

  test("help <command> is that command's --help; an unknown or second name is a usage error", async () => {
    for (const c of COMMANDS) {
      const r = await run("help", c.name);
      expect(r).toEqual({ code: 0, stdout: (await run(c.name, "--help")).stdout, stderr: "" });
    }
    expect((await run("help", "zero-shot")).stdout).toMatch(/^Usage:\n  clip-ts zero-shot /);
    await expectError(2, /^clip-ts: unknown command "frobnicate"/, "help", "frobnicate");
    await expectError(2, /^clip-ts help: takes one command name, got 2\n$/, "help", "tokenize", "logits");
  });

  test("--version and -v print the package's version", async () => {
    const version = `${JSON.parse(readFileSync("package.json", "utf8")).version}\n`;
    expect(await run("--version")).toEqual({ code: 0, stdout: version, stderr: "" });
    expect(await run("-v")).toEqual({ code: 0, stdout: version, stderr: "" });
  });
});

describe("an option given twice", () => {
  // One single-value option of every command that has one (models has only --json and the repeatable --download).
  const repeated: [string, string[]][] = [
    ["embed-image", ["--pixels", "a.npy", "--pixels", "b.npy"]],
    ["embed-text", ["--tokens", "a.npy", "--tokens", "b.npy"]],
    ["logits", ["--pixels", "a.npy", "--tokens", "t.npy", "--pixels", "b.npy"]],
    ["tokenize", ["hi", "--context-length", "5", "--context-length", "6"]],
    ["preprocess", ["a.png", "--size", "32", "--out", "x.npy", "--size", "64"]],
    ["zero-shot", ["a.png", "--labels", "cat,dog", "--labels", "car"]],
    ["summary", ["--model", "a.pt", "--model", "b.pt"]],
    ["parity", ["--activations", "a/", "--activations", "b/"]],
    ["merge", ["--db", "a.db", "--db", "b.db", "p.db"]],
    ["index", ["photos", "--db", "a.db", "--db", "b.db"]],
    ["search", ["--db", "a.db", "--text", "x", "--db", "b.db"]],
    ["export", ["--db", "a.db", "--format", "npy", "--db", "b.db"]],
  ];
  test("covers every command but models", () => {
    expect(repeated.map(([c]) => c).sort()).toEqual(COMMANDS.map((c) => c.name).filter((c) => c !== "models").sort());
  });
  test.each(repeated)("%s: refused, not the last one silently kept", async (command, args) => {
    const flag = args.find((a, i) => a.startsWith("--") && args.indexOf(a) !== i)!;
    await expectError(2, new RegExp(`^clip-ts ${command}: ${flag} given more than once; it takes one value \\(see clip-ts ${command} --help\\)\n$`), command, ...args);
  });
  test("repeatable options still repeat; -h twice is fine", async () => {
    await expectError(1, /--model: no such file "nope\.pt"/, "zero-shot", "x.png", "--labels", "a,b", "--template", "a {}", "--template", "the {}", "--model", "nope.pt");
    expect((await run("tokenize", "-h", "--help")).code).toBe(0);
  });
});

describe("tokenize", () => {
  test("rows as JSON: start, BPE ids, end, zero padding; --out writes the same ids", async () => {
    const r = await run("tokenize", "a photo of a cat", "hi", "--context-length", "16");
    expect(r.code, r.stderr).toBe(0);
    const rows = JSON.parse(r.stdout) as number[][];
    expect(rows.map((x) => x.length)).toEqual([16, 16]);
    const sot = rows[0][0], eot = Math.max(...rows[0]);
    expect(rows[1][0]).toBe(sot);
    for (const row of rows) {
      const end = row.indexOf(eot);
      expect(end).toBeGreaterThan(1);
      expect(row.slice(end + 1).every((x) => x === 0)).toBe(true);
    }
    const out = join(tmp, "tok.npy");
    expect((await run("tokenize", "a photo of a cat", "hi", "--context-length", "16", "--out", out)).code).toBe(0);
    const t = readNpyTokens(readFileSync(out));
    expect(t.shape).toEqual([2, 16]);
    expect(Array.from(t.data, Number)).toEqual(rows.flat());
  });

  test("too long without --truncate is an error; with it the row ends in the end token", async () => {
    const long = "a photo of a cat ".repeat(10);
    await expectError(1, /context length 8/, "tokenize", long, "--context-length", "8");
    const r = await run("tokenize", long, "--context-length", "8", "--truncate");
    const [row] = JSON.parse(r.stdout) as number[][];
    expect(row[7]).toBe(Math.max(...row));
  });
});

test("no progress bar unless stderr is a TTY", async () => {
  const dir = goldenDir("vit");
  const io = memoryIo(process.cwd(), false);
  expect(await runCli(["embed-image", "--model", `${dir}/weights.safetensors`, "--pixels", `${dir}/pixels.npy`, "--batch-size", "1"], io)).toBe(0);
  expect(io.err()).toBe("");
});

describe("progress bar", () => {
  test("drawn only on a TTY, throttled, always showing the end, erased by finish()", () => {
    const writes: string[] = [];
    let now = 0;
    const bar = new Progress({ write: (s) => void writes.push(s), isTTY: true, columns: 60 }, "encoding", 4, "items", () => now);
    bar.update(1);
    now = 50;
    bar.update(2); // within 100 ms of the last draw: skipped
    now = 200;
    bar.update(3);
    now = 210;
    bar.update(4); // the last step is always drawn
    bar.finish();
    expect(writes).toHaveLength(4);
    expect(writes[0]).toMatch(/^\rencoding \[#+\.+\]  25% 1\/4\x1b\[K$/);
    expect(writes[2]).toMatch(/^\rencoding \[#+\] 100% 4\/4\x1b\[K$/);
    expect(writes[3]).toBe("\r\x1b[K");

    const silent: string[] = [];
    const off = new Progress({ write: (s) => void silent.push(s), isTTY: false }, "x", 4);
    off.update(4);
    off.finish();
    expect(silent).toEqual([]);
    expect(new Progress({ write: () => {}, isTTY: true }, "weights", 3 * 2 ** 20, "bytes").render(2 ** 20)).toMatch(/ 33% 1\.0\/3\.0 MiB$/);
  });

  test("a batched command on a TTY draws the bar on stderr and leaves a clean line", async () => {
    const dir = goldenDir("vit");
    const io = memoryIo(process.cwd(), true);
    expect(await runCli(["embed-image", "--model", `${dir}/weights.safetensors`, "--pixels", `${dir}/pixels.npy`, "--batch-size", "1", "--out", join(tmp, "tty.npy")], io)).toBe(0);
    expect(io.err()).toMatch(/^\rencoding images \[#+\.+\]  50% 1\/2\x1b\[K\rencoding images \[#+\] 100% 2\/2\x1b\[K\r\x1b\[K$/);
    expect(io.out()).toBe("");
  });
});

test("--backend wasm --threads 2 gives the bits of --backend ts", async () => {
  const dir = goldenDir("vit");
  const a = join(tmp, "ts.npy"), b = join(tmp, "wasm.npy");
  const args = ["logits", "--model", `${dir}/weights.safetensors`, "--pixels", `${dir}/pixels.npy`, "--tokens", `${dir}/tokens.npy`];
  expect((await run(...args, "--backend", "ts", "--out", a)).code).toBe(0);
  const r = await run(...args, "--backend", "wasm", "--threads", "2", "--out", b);
  expect(r.code, r.stderr).toBe(0);
  expect(npy(b).data).toEqual(npy(a).data);
});

describe("zero-shot and texts, on the golden ViT with a token embedding sized for the embedded vocab", () => {
  const images = ["test/golden/preprocess/rgb_land_97x61_n32.png", "test/golden/preprocess/p1_64x40_n32.png"];
  const labels = ["red star", "blue circle", "green square"];
  let model = "";
  const setup = async () => {
    if (model) return model;
    const { loadTokenizer } = await import("../src/simple_tokenizer.js");
    const { loadStateDict, writeSafetensors } = await import("../src/weights/index.js");
    const V = (await loadTokenizer("weights/vocab.txt.gz")).vocabSize;
    const sd = loadStateDict(readFileSync(`${goldenDir("vit")}/weights.safetensors`));
    const emb = new Float32Array(V * 128);
    for (let i = 0; i < emb.length; i++) emb[i] = Math.sin(i * 12.9898) * 0.8; // any fixed values
    sd.set("token_embedding.weight", { data: emb, shape: [V, 128] });
    model = join(tmp, "vit_vocab.safetensors");
    writeFileSync(model, writeSafetensors(sd, "F32"));
    return model;
  };

  test("per image, the labels sorted by probability; --json; the library's zeroShot", async () => {
    const m = await setup();
    const r = await run("zero-shot", ...images, "--labels", labels.join(","), "--model", m, "--vocab", "weights/vocab.txt.gz");
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stdout.trimEnd().split("\n");
    expect(lines).toHaveLength(2 * (1 + labels.length));
    expect([lines[0], lines[4]]).toEqual(images);
    const pct = lines.filter((l) => l.startsWith("  ")).map((l) => Number(/^\s+([\d.]+)%  /.exec(l)![1]));
    for (const block of [pct.slice(0, 3), pct.slice(3)]) {
      expect(block).toEqual([...block].sort((a, b) => b - a));
      expect(block.reduce((a, b) => a + b, 0)).toBeCloseTo(100, 1);
    }

    const json = JSON.parse((await run("zero-shot", ...images, "--labels", labels.join(", "), "--model", m, "--vocab", "weights/vocab.txt.gz", "--json")).stdout);
    expect(json.map((x: { image: string }) => x.image)).toEqual(images);
    const { load } = await import("../src/clip.js");
    const { zeroShot } = await import("../src/zero_shot.js");
    const clip = await load(m, { vocab: "weights/vocab.txt.gz" });
    try {
      const px = images.map((p) => clip.preprocess(readFileSync(p)));
      const pixels = { data: Float32Array.from([...px[0].data, ...px[1].data]), shape: [2, 3, 32, 32] };
      const probs = zeroShot(clip.model, clip.tokenizer, pixels, labels);
      json.forEach((entry: { labels: { label: string; probability: number }[] }, i: number) => {
        expect(entry.labels.map((l) => l.label).sort()).toEqual([...labels].sort());
        for (const l of entry.labels) expect(l.probability).toBeCloseTo(probs[i][labels.indexOf(l.label)], 12);
      });
    } finally {
      clip.model.dispose();
    }
  });

  test("template options: imagenet7, repeated --template, --top", async () => {
    const m = await setup();
    const base = ["zero-shot", images[0], "--labels", labels.join(","), "--model", m, "--vocab", "weights/vocab.txt.gz", "--json"];
    const seven = JSON.parse((await run(...base, "--templates", "imagenet7")).stdout)[0].labels;
    const one = JSON.parse((await run(...base)).stdout)[0].labels;
    const two = JSON.parse((await run(...base, "--template", "a photo of a {}.", "--template", "a {} shape")).stdout)[0].labels;
    const prob = (ls: { label: string; probability: number }[], l: string) => ls.find((x) => x.label === l)!.probability;
    expect(Math.abs(prob(seven, "red star") - prob(one, "red star"))).toBeGreaterThan(1e-6);
    expect(Math.abs(prob(two, "red star") - prob(one, "red star"))).toBeGreaterThan(1e-6);
    expect(JSON.parse((await run(...base, "--top", "1")).stdout)[0].labels).toEqual(one.slice(0, 1));
  });

  test("zero-shot usage errors", async () => {
    await expectError(2, /either --template or --templates/, "zero-shot", "a.png", "--labels", "a,b", "--template", "{}", "--templates", "imagenet7");
    await expectError(2, /--templates must be one of imagenet80, imagenet7, got "imagenet5"/, "zero-shot", "a.png", "--labels", "a,b", "--templates", "imagenet5");
    await expectError(2, /--labels "a,,b" has an empty label/, "zero-shot", "a.png", "--labels", "a,,b");
    await expectError(2, /missing --labels/, "zero-shot", "a.png");
    await expectError(1, /--template: template "no placeholder" must contain "\{\}" exactly once/, "zero-shot", "a.png", "--labels", "a", "--template", "no placeholder");
  });

  test("embed-text on texts = embed-text on their tokenize --out ids", async () => {
    const m = await setup();
    const texts = ["a photo of a cat", "a red star"];
    const ids = join(tmp, "texts.npy"), a = join(tmp, "ta.npy"), b = join(tmp, "tb.npy");
    expect((await run("tokenize", ...texts, "--out", ids)).code).toBe(0);
    expect((await run("embed-text", ...texts, "--model", m, "--vocab", "weights/vocab.txt.gz", "--out", a)).code).toBe(0);
    expect((await run("embed-text", "--tokens", ids, "--model", m, "--out", b)).code).toBe(0);
    expect(npy(a).data).toEqual(npy(b).data);
    const json = JSON.parse((await run("embed-text", ...texts, "--model", m, "--vocab", "weights/vocab.txt.gz")).stdout);
    expect(json.map((x: { text: string }) => x.text)).toEqual(texts);
    expect(Float32Array.from(json.flatMap((x: { embedding: number[] }) => x.embedding))).toEqual(npy(a).data);
  });
});

describe("an --out is replaced whole or not at all", () => {
  // The file-system calls with one that fails the way a full disk or a file-size limit does, after some bytes.
  const failing = (call: "writeSync" | "fsyncSync" | "renameSync", code: string) => ({
    ...fs,
    [call]: (...args: unknown[]) => {
      if (call === "writeSync") (fs.writeSync as (...a: unknown[]) => number)(args[0], (args[1] as Uint8Array).subarray(0, 100));
      throw Object.assign(new Error(`${code}: simulated`), { code });
    },
  }) as OutputFs;

  const freshDir = (name: string) => {
    const dir = join(tmp, name);
    fs.mkdirSync(dir);
    return dir;
  };

  for (const [call, code, text] of [
    ["writeSync", "ENOSPC", "no space left on the device"], ["writeSync", "EFBIG", "file too large"],
    ["fsyncSync", "EIO", "input/output error"], ["renameSync", "EACCES", "permission denied"],
  ] as const) {
    test(`${call} failing with ${code}: the old file unchanged, no temporary left, one line naming the path`, () => {
      const dir = freshDir(`fail_${call}_${code}`);
      const old = writeNpy({ data: Float32Array.of(1, 2, 3), shape: [3] });
      fs.writeFileSync(join(dir, "out.npy"), old);
      const io = memoryIo(dir);
      const big = new Uint8Array(100_000).fill(7);
      let message = "";
      try {
        writeOutput(io, "out.npy", big, "--out", failing(call, code));
      } catch (e) {
        expect(e).toBeInstanceOf(CliError);
        message = (e as Error).message;
      }
      expect(message).toBe(`--out: cannot write "out.npy" (${text}, ${code}); "out.npy" is left as it was`);
      expect(fs.readFileSync(join(dir, "out.npy"))).toEqual(Buffer.from(old));
      expect(fs.readdirSync(dir)).toEqual(["out.npy"]);

      // with no file before, none after
      expect(() => writeOutput(io, "new.npy", big, "--out", failing(call, code))).toThrow(`--out: cannot write "new.npy" (${text}, ${code}); nothing was written`);
      expect(fs.readdirSync(dir)).toEqual(["out.npy"]);
    });
  }

  test("a command failing midway (an undecodable image after a good one) keeps the old file", async () => {
    const dir = freshDir("midway");
    fs.writeFileSync(join(dir, "bad.png"), Buffer.from("\x89PNG\r\n\x1a\n not really"));
    fs.writeFileSync(join(dir, "x.npy"), "old bytes");
    const good = join(process.cwd(), "test/golden/preprocess/rgb_2x3.png");
    const r = await run("preprocess", good, join(dir, "bad.png"), "--size", "8", "--out", join(dir, "x.npy"));
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^clip-ts preprocess: image ".*bad\.png": .*\n$/);
    expect(fs.readFileSync(join(dir, "x.npy"), "utf8")).toBe("old bytes");
    expect(fs.readdirSync(dir).sort()).toEqual(["bad.png", "x.npy"]);
  });

  test("success replaces the bytes and keeps the file's permissions; a symbolic link keeps pointing at it", async () => {
    const dir = freshDir("replace");
    const real = join(dir, "real.npy"), link = join(dir, "link.npy");
    fs.writeFileSync(real, "old");
    fs.chmodSync(real, 0o640);
    fs.symlinkSync("real.npy", link);
    expect((await run("tokenize", "a cat", "--context-length", "5", "--out", link)).code).toBe(0);
    expect(fs.lstatSync(link).isSymbolicLink()).toBe(true);
    expect(fs.statSync(real).mode & 0o777).toBe(0o640);
    expect(readNpyTokens(fs.readFileSync(real)).data).toHaveLength(5);
    expect(fs.readdirSync(dir).sort()).toEqual(["link.npy", "real.npy"]);
  });

  test("a device is written in place (--out /dev/null); a directory or a missing directory is one line", async () => {
    expect(await run("tokenize", "a cat", "--out", "/dev/null")).toEqual({ code: 0, stdout: "", stderr: "" });
    await expectError(1, /--out: ".*" is a directory, expected a file\n$/, "tokenize", "a", "--out", tmp);
    await expectError(1, /--out: cannot create ".*nowhere\/x\.npy" \(no such directory, ENOENT\); nothing was written\n$/, "tokenize", "a", "--out", join(tmp, "nowhere", "x.npy"));
  });
});

describe("more rows than the model's maxBatch go through in batches", () => {
  const rows = DEFAULT_MAX_BATCH + 1;
  // A model that refuses batches over 3 stands for the default limit of 1024: 10 rows are then "too many".
  const small = (path: string) => loadModel(path, { threads: 1, maxBatch: 3 });

  test("zero-shot's image logits over 10 image files, maxBatch 3: each image's logits as when encoded alone", async () => {
    const model = await small(DEFAULT_MODEL_PATH);
    try {
      const images = ["test/golden/preprocess/rgb_land_97x61_n32.png", "test/golden/preprocess/p1_64x40_n32.png"];
      const many = Array.from({ length: 10 }, (_, i) => images[i % 2]);
      const io = memoryIo();
      const R = model.config.imageResolution, E = model.config.embedDim;
      const load = await imageLoader(io, R, many);
      const classes = normalize({ data: Float32Array.from({ length: 3 * E }, (_, i) => Math.sin(i)), shape: [3, E] });
      const got = imageLogits(io, model, load, many, classes, 16);
      expect(got.shape).toEqual([10, 3]);
      const alone = zeroShotLogits(model, load(images), classes);
      for (let i = 0; i < 10; i++) expect(got.data.subarray(i * 3, i * 3 + 3)).toEqual(alone.data.subarray((i % 2) * 3, (i % 2) * 3 + 3));
      expect(() => zeroShotLogits(model, load(many), classes)).toThrow(/a batch of 10 images is more than the limit of 3/); // what the command did before
    } finally {
      model.dispose();
    }
  });

  test("logits over 10 pixel rows and 10 token rows, maxBatch 3 = the small logits, tiled", async () => {
    const dir = goldenDir("vit");
    const model = await small(`${dir}/weights.safetensors`);
    try {
      const pixels = npy(`${dir}/pixels.npy`), tokens = readNpyTokens(readFileSync(`${dir}/tokens.npy`));
      const [P, T, N] = [pixels.shape[0], tokens.shape[0], 10];
      const tile = <A extends Float32Array | BigInt64Array | Int32Array>(data: A, n: number): A => {
        const per = data.length / n;
        const out = new (data.constructor as new (k: number) => A)(N * per);
        for (let i = 0; i < N; i++) out.set(data.subarray((i % n) * per, (i % n + 1) * per) as never, i * per);
        return out;
      };
      const many = { data: tile(pixels.data, P), shape: [N, ...pixels.shape.slice(1)] };
      const manyTokens = { data: tile(tokens.data, T), shape: [N, tokens.shape[1]] };
      const got = batchedLogits(memoryIo(), model, many, manyTokens, 16, ["pixels", "tokens"]);
      const want = model.forward(pixels, tokens).logitsPerImage;
      expect(got.shape).toEqual([N, N]);
      for (let i = 0; i < N; i++) for (let j = 0; j < N; j++) expect(got.data[i * N + j], `[${i}, ${j}]`).toBe(want.data[(i % P) * T + (j % T)]);
      expect(() => model.forward(many, manyTokens)).toThrow(/more than the limit of 3/); // what the command did before
    } finally {
      model.dispose();
    }
  });

  test("--batch-size above maxBatch is a usage error", async () => {
    for (const args of [["embed-image", "--pixels", "x.npy"], ["embed-text", "--tokens", "t.npy"], ["logits"], ["zero-shot", "a.png", "--labels", "a"]]) {
      await expectError(2, new RegExp(`--batch-size must be an integer in \\[1, ${DEFAULT_MAX_BATCH}\\], got "${rows}"`), ...args, "--batch-size", String(rows));
    }
  });
});
