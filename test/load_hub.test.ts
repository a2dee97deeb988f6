// load() and --model by name or URL, through the download cache (src/hub.ts, tested on its own in hub.test.ts), on
// a loopback server: the same model as from the file, a cache that works offline, clear one-line errors.
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { memoryIo, runCli } from "../src/cli/cli.js";
import { load, loadModel } from "../src/clip.js";

const weights = readFileSync("test/golden/models/vit/weights_torchscript.pt");
const sha = createHash("sha256").update(weights).digest("hex");
const tmp = mkdtempSync(join(tmpdir(), "clip-ts-load-hub-"));
let server: Server;
let base = "";
const requests: string[] = [];
const saved = { cache: process.env.CLIP_TS_CACHE, base: process.env.CLIP_TS_MODEL_BASE_URL };

beforeAll(async () => {
  server = createServer((req, res) => {
    requests.push(req.url!);
    if (req.url!.startsWith("/vit.pt")) res.end(weights);
    else res.writeHead(404).end();
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  process.env.CLIP_TS_CACHE = join(tmp, "cache");
  process.env.CLIP_TS_MODEL_BASE_URL = base;
});
afterAll(async () => {
  await new Promise((r) => server.close(r));
  for (const [k, v] of [["CLIP_TS_CACHE", saved.cache], ["CLIP_TS_MODEL_BASE_URL", saved.base]] as const) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
  rmSync(tmp, { recursive: true, force: true });
});

describe("models by URL and by name", () => {
  test("a URL with its SHA-256 loads the same model as the file; a second load comes from the cache", async () => {
    const fromFile = await loadModel("test/golden/models/vit/weights_torchscript.pt", { backend: "ts" });
    const progress: number[] = [];
    const fromUrl = await loadModel(`${base}/vit.pt`, { backend: "ts", sha256: sha, onProgress: (d) => progress.push(d) });
    expect({ ...fromUrl.config, sources: null }).toEqual({ ...fromFile.config, sources: null });
    expect(fromUrl.config.sources.textActivation).toBe("OpenAI's model (TorchScript archive)");
    expect(progress.at(-1)).toBe(weights.length);
    const n = requests.length;
    (await loadModel(`${base}/vit.pt`, { backend: "ts", sha256: sha })).dispose();
    expect(requests.length).toBe(n);
    fromFile.dispose();
    fromUrl.dispose();
  });

  test("a wrong SHA-256 is refused naming both sums", async () => {
    await expect(loadModel(`${base}/vit.pt?x`, { backend: "ts", sha256: "0".repeat(64) })).rejects.toThrow(new RegExp(`expected 0{64}, got ${sha}`));
  });

  test("a name of clip.load maps to clip.py's URL under CLIP_TS_MODEL_BASE_URL", async () => {
    await expect(load("ViT-B/32", { backend: "ts" })).rejects.toThrow(/HTTP 404 .*\/clip\/models\/40d36571[0-9a-f]+\/ViT-B-32\.pt/);
    expect(requests.at(-1)).toMatch(/^\/clip\/models\/40d36571[0-9a-f]{56}\/ViT-B-32\.pt$/);
  });

  test("a path that is neither a file nor a name: one line listing the names", async () => {
    await expect(load("ViT-B-32", { backend: "ts" })).rejects.toThrow(/no model file or model named "ViT-B-32" \(did you mean "ViT-B\/32"\?\)/);
    const io = memoryIo();
    expect(await runCli(["embed-image", "--model", "ViT-B-32", "--pixels", "test/golden/models/vit/pixels.npy"], io)).toBe(1);
    expect(io.err()).toMatch(/^clip-ts embed-image: --model: no such file "ViT-B-32", nor a model name \(names are openai\/CLIP's: RN50, .*\)\n$/);
  });

  test("CLI: --model URL --sha256 gives the golden features; a .pt by URL needs no vocab file (OpenAI's ships)", async () => {
    const io = memoryIo();
    const out = join(tmp, "f.npy");
    const code = await runCli(["embed-image", "--model", `${base}/vit.pt`, "--sha256", sha, "--pixels", "test/golden/models/vit/pixels.npy", "--out", out], io);
    expect(code, io.err()).toBe(0);
    const { readNpy } = await import("../src/npy.js");
    const a = readNpy(readFileSync(out)).data as Float32Array, b = readNpy(readFileSync("test/golden/models/vit/encode_image.npy")).data as Float32Array;
    expect(Math.max(...a.map((v, i) => Math.abs(v - b[i])))).toBeLessThan(1e-5);
  });
});
