// The promise of "Anywhere": the demo page (examples/web/, the bundle dist/browser/clip-ts.js, the wasm backend on
// Web Workers) gives in Chromium the same bits as the library in Node: the same SHA-256 of the preprocessed pixels,
// of the image embedding and of the text embeddings, and the same zero-shot probabilities, on 1, 2 and 4 threads;
// and the image bits are those committed in test/golden/determinism.json. A checkpoint the user picks (a file with
// its config and vocab, or a URL) gives Node's bits too; a bad file or a failed checksum is one line on the page.
//
// Debian's Chromium at /usr/bin/chromium (or $CHROMIUM_PATH), driven by playwright-core; no browser is downloaded.
// Without it the test fails, naming what is missing: it never skips.
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { chromium, type BrowserContext, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { EMBEDDED_MODEL_URLS } from "../../src/browser.js";
import { load, type LoadedClip } from "../../src/clip.js";
import { zeroShot } from "../../src/zero_shot.js";
import { MODELS } from "../../src/hub_models.js";
// @ts-expect-error: plain ESM without types
import { serve } from "../../examples/web/serve.mjs";

const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const ARGS = [
  "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync",
];
const LABELS = ["black triangle", "blue star", "green circle", "red diamond"]; // the embedded model's world
const THREADS = [1, 2, 4];
const root = new URL("../../", import.meta.url).pathname;
/** The page loads loadInBrowser's embedded model; Node loads the same file. */
const MODEL = `weights/${basename(new URL(EMBEDDED_MODEL_URLS.weights).pathname)}`;
/** Its committed hashes (test/determinism.test.ts). */
const golden = (JSON.parse(readFileSync(join(root, "test/golden/determinism.json"), "utf8")) as {
  models: { file: string; images: Record<string, { pixels: string; embedding: string }> }[];
}).models.find((m) => m.file === MODEL);

/** A checkpoint picked on the page: the embedded ViT (not the page's default ResNet), which has no config of its own. */
const PICKED = "weights/clip-tiny-vit.safetensors";
const VOCAB = "weights/vocab.txt.gz";
/** Its settings as an open_clip model config says them (the same as OpenAI's, so the same bits). */
const PICKED_CONFIG = {
  embed_dim: 64, quick_gelu: true,
  vision_cfg: { image_size: 64, layers: 4, width: 64, patch_size: 8, head_width: 64 },
  text_cfg: { context_length: 77, vocab_size: 628, width: 64, heads: 1, layers: 2 },
};

interface PageResult {
  model: string;
  threads: number;
  backend: string;
  crossOriginIsolated: boolean;
  labels: string[];
  prompts: string[];
  probs: number[];
  pixelsSha256: string;
  imageSha256: string;
  textSha256: string;
  timingsMs: Record<string, number>;
}

function sha256(data: Float32Array): string {
  return createHash("sha256").update(new Uint8Array(data.buffer, data.byteOffset, data.byteLength)).digest("hex");
}

/** What the page computes, computed here by the library from source. */
function inNode(clip: LoadedClip, bytes: Uint8Array, labels: string[]) {
  const t0 = performance.now();
  const pixels = clip.preprocess(bytes);
  const image = clip.model.encodeImage(pixels);
  const t1 = performance.now();
  const text = clip.model.encodeText(clip.tokenize(labels.map((l) => `a photo of a ${l}.`)));
  const t2 = performance.now();
  const [probs] = zeroShot(clip.model, clip.tokenizer, pixels, labels);
  const t3 = performance.now();
  return {
    probs, pixelsSha256: sha256(pixels.data), imageSha256: sha256(image.data), textSha256: sha256(text.data),
    timingsMs: { image: t1 - t0, text: t2 - t1, zeroShot: t3 - t2 },
  };
}

const missing: string[] = [];
if (!existsSync(CHROMIUM)) missing.push(`Chromium (${CHROMIUM}: apt-get install -y chromium)`);
for (const f of ["dist/browser/clip-ts.js", "build/clip.wasm", "build/clip-threads.wasm"]) {
  if (!existsSync(join(root, f))) missing.push(`${f} (npm run build)`);
}
const images = existsSync(join(root, "examples")) ? readdirSync(join(root, "examples")).filter((f) => /\.(png|jpe?g)$/i.test(f)).sort() : [];
if (images.length === 0) missing.push("an example image examples/*.png");
for (const f of [MODEL, PICKED, VOCAB]) if (!existsSync(join(root, f))) missing.push(`the embedded model's ${f}`);

describe("the demo page in Chromium gives Node's bits", () => {
  let server: { url: string; close(): Promise<void> };
  let context: BrowserContext;
  let page: Page;
  let profile: string;
  let mirror: string;
  const logs: string[] = [];

  beforeAll(async () => {
    if (missing.length > 0) throw new Error(`the browser test cannot run: missing ${missing.join("; ")}`);
    // a mirror whose ViT-B-32.pt is not OpenAI's (the tiny ViT): the page must refuse it by its SHA-256
    mirror = mkdtempSync(join(tmpdir(), "clip-ts-mirror-"));
    const published = join(mirror, new URL(MODELS["ViT-B/32"].url).pathname);
    mkdirSync(join(published, ".."), { recursive: true });
    writeFileSync(published, readFileSync(join(root, PICKED)));
    writeFileSync(join(mirror, "config.json"), JSON.stringify(PICKED_CONFIG));
    server = await serve({ port: 0, mirror });
    profile = mkdtempSync(join(tmpdir(), "clip-ts-chromium-"));
    context = await chromium.launchPersistentContext(profile, { executablePath: CHROMIUM, headless: true, args: ARGS });
    page = await context.newPage();
    page.on("console", (m) => logs.push(`console.${m.type()}: ${m.text()}`));
    page.on("pageerror", (e) => logs.push(`pageerror: ${e.message}`));
    await loadModel(() => page.goto(`${server.url}examples/web/`).then(() => {}));
  });

  afterAll(async () => {
    await context?.close();
    await server?.close();
    if (profile) rmSync(profile, { recursive: true, force: true });
    if (mirror) rmSync(mirror, { recursive: true, force: true });
  });

  /** `start`s a load and waits for the latest one to end (the status names it by its id). */
  async function loadModel(start: () => Promise<void>, on = page): Promise<{ state: string; status: string; assumed: string | null; progress: string | null }> {
    const before = await on.evaluate(() => document.getElementById("model-status")?.dataset.load ?? null);
    await start();
    await on.waitForFunction((before) => {
      const s = document.getElementById("model-status");
      return !!s && (s.dataset.load ?? null) !== before && ["ready", "error"].includes(s.dataset.state!);
    }, before, { timeout: 120_000 }).catch((e: Error) => {
      throw new Error(`${e.message}\npage log:\n${logs.join("\n")}`);
    });
    const text = async (id: string) => (await on.locator(id).isVisible() ? await on.locator(id).textContent() : null);
    return {
      state: (await on.locator("#model-status").getAttribute("data-state"))!,
      status: (await on.locator("#model-status").textContent())!,
      assumed: await text("#model-assumed"),
      progress: await text("#model-progress"),
    };
  }

  /** Sets the labels and threads, then `start`s a run (the page also starts one when the threads change and an
   *  image is there), and reads the result of the latest run, the only one the page shows. A new file sets the
   *  status to "reading" at once, so the result read is never that of an earlier image. */
  async function classify(threads: number, start: () => Promise<void>): Promise<PageResult> {
    await page.fill("#labels", LABELS.join(", "));
    await page.selectOption("#threads", String(threads));
    await start();
    // the latest run has ended when the status is done (or failed) and the result is that run's
    await page.waitForFunction(() => {
      const status = document.getElementById("status")!, result = document.getElementById("result")!;
      return ["done", "error"].includes(status.dataset.state!) && result.dataset.run === status.dataset.run;
    }, undefined, { timeout: 120_000 }).catch((e: Error) => {
      throw new Error(`${e.message}\npage log:\n${logs.join("\n")}`);
    });
    const result = page.locator("#result");
    const json = JSON.parse((await result.textContent()) ?? "null") as PageResult | { error: string };
    if ("error" in json) throw new Error(`the page failed: ${json.error}\npage log:\n${logs.join("\n")}`);
    return json;
  }

  function expectSameAsNode(r: PageResult, node: ReturnType<typeof inNode>, threads: number, isolated = true, model = "the built-in tiny model"): void {
    expect(r.model).toBe(model);
    expect(r.threads).toBe(threads);
    expect(r.backend).toBe("wasm");
    expect(r.crossOriginIsolated).toBe(isolated);
    expect(r.labels).toEqual(LABELS);
    expect(r.pixelsSha256).toBe(node.pixelsSha256);
    expect(r.imageSha256).toBe(node.imageSha256);
    expect(r.textSha256).toBe(node.textSha256);
    expect(r.probs).toEqual(node.probs); // exact: doubles survive JSON
  }

  const nodeResults = new Map<string, ReturnType<typeof inNode>>();
  async function nodeResult(file: string, model = MODEL) {
    const key = `${model}|${file}`;
    const known = nodeResults.get(key);
    if (known) return known;
    const bytes = new Uint8Array(readFileSync(file));
    const clip = await load(join(root, model), { backend: "wasm", threads: 1, vocab: join(root, VOCAB) });
    try {
      inNode(clip, bytes, LABELS); // warm-up, so that the timings compare like with like
      nodeResults.set(key, inNode(clip, bytes, LABELS));
      return nodeResults.get(key)!;
    } finally {
      clip.model.dispose();
    }
  }

  test("the page is cross-origin isolated (COOP/COEP from serve.mjs), so threads can share wasm memory", async () => {
    expect(await page.evaluate(() => crossOriginIsolated)).toBe(true);
  });

  test("the page says in one visible line what the built-in model knows, and what to pick for photos", async () => {
    const note = page.locator("#model-note");
    expect(await note.isVisible()).toBe(true);
    const text = (await note.innerText()).replace(/\s+/g, " ");
    expect(text).toMatch(/7 shapes and 8 colours/);
    expect(text).toMatch(/ViT-B\/32/);
    expect(text).toMatch(/photos/);
    expect(await page.locator("#model-status").getAttribute("data-state")).toBe("ready");
    expect(await page.locator("#model-status").textContent()).toMatch(/^the built-in tiny model: ResNet 64 px/);
    expect(await page.locator("#model-assumed").isVisible()).toBe(false);
  });

  test(`${images[0] ?? "an example image"}: probabilities and SHA-256 of the embeddings equal Node's and the committed ones on ${THREADS.join(", ")} threads, run after run`, async () => {
    const file = join(root, "examples", images[0]);
    const node = await nodeResult(file);
    const committed = golden?.images[`examples/${images[0]}`];
    expect(committed, `${MODEL} and examples/${images[0]} in test/golden/determinism.json`).toBeDefined();
    expect(node.pixelsSha256).toBe(committed?.pixels);
    expect(node.imageSha256).toBe(committed?.embedding);
    for (const [i, threads] of THREADS.entries()) {
      // the first run starts with the file, the next ones with the change of threads; then the same again by click
      const first = await classify(threads, i === 0 ? () => page.setInputFiles("#file", file) : async () => {});
      const again = await classify(threads, () => page.click("#run"));
      expectSameAsNode(first, node, threads);
      expectSameAsNode(again, node, threads);
      const t = again.timingsMs;
      console.log(
        `chromium, wasm, ${threads} thread(s): image ${t.image.toFixed(1)} ms, text ${t.text.toFixed(1)} ms, zero-shot ${t.zeroShot.toFixed(1)} ms ` +
          `(first run: image ${first.timingsMs.image.toFixed(1)} ms); ` +
          `image ${again.imageSha256.slice(0, 16)}…, text ${again.textSha256.slice(0, 16)}…`,
      );
    }
    const t = node.timingsMs;
    console.log(`node, wasm, 1 thread: image ${t.image.toFixed(1)} ms, text ${t.text.toFixed(1)} ms, zero-shot ${t.zeroShot.toFixed(1)} ms`);
    console.log(`probabilities (${LABELS.join(", ")}): ${node.probs.map((p) => p.toFixed(6)).join(", ")}`);
    expect(logs.filter((l) => /^(pageerror|console\.error)/.test(l))).toEqual([]);
  });

  test("a progressive JPEG with restart markers: our decoder in the browser gives Node's bits (2 threads)", async () => {
    const file = join(root, "test/golden/preprocess/cjpeg_420_restart_3mcu_prog_90x70_n64.jpg");
    const node = await nodeResult(file);
    expectSameAsNode(await classify(2, () => page.setInputFiles("#file", file)), node, 2);
    expect(logs.filter((l) => /^(pageerror|console\.error)/.test(l))).toEqual([]);
  });

  test(`a checkpoint file picked on the page (${PICKED} + ${VOCAB}): a warning names what was assumed, and the bits are Node's`, async () => {
    const file = join(root, "examples", images[0]);
    const node = await nodeResult(file, PICKED);
    await page.setInputFiles("#vocab-file", join(root, VOCAB)); // kept for the checkpoint to come; the built-in model stays
    expect(await page.locator("#model-status").textContent()).toMatch(/^the built-in tiny model/);
    const loaded = await loadModel(() => page.setInputFiles("#model-file", join(root, PICKED)));
    expect(loaded.state, loaded.status).toBe("ready");
    expect(loaded.status).toMatch(/^clip-tiny-vit\.safetensors: ViT 64 px, patch 8, 4 layers × 64; text 2 layers × 64, 628 tokens/);
    expect(loaded.assumed).toMatch(/^⚠ assumed \(no config says otherwise\): activation QuickGELU \(vision\), QuickGELU \(text\); 64-wide attention heads: 1 \(vision\), 1 \(text\)/);
    expect(loaded.progress).toBeNull(); // nothing downloaded
    const r = await classify(2, () => page.setInputFiles("#file", file));
    expectSameAsNode(r, node, 2, true, "clip-tiny-vit.safetensors");
    expect(r.imageSha256).not.toBe((await nodeResult(file)).imageSha256); // another model than the built-in one
    expect(logs.filter((l) => /^(pageerror|console\.error)/.test(l))).toEqual([]);
  });

  test("its config.json (open_clip) says what was assumed: the warning goes, the bits stay", async () => {
    const file = join(root, "examples", images[0]);
    const node = await nodeResult(file, PICKED);
    const status = page.locator("#status");
    const loaded = await loadModel(() => page.setInputFiles("#config-file", join(mirror, "config.json")));
    expect(loaded.state, loaded.status).toBe("ready");
    expect(loaded.assumed).toBeNull();
    // the load started a run on the image already there
    await page.waitForFunction(() => document.getElementById("status")!.dataset.state === "done");
    expect(await status.textContent()).toMatch(/^clip-tiny-vit\.safetensors: done on 2 threads/);
    expectSameAsNode(await classify(2, () => page.click("#run")), node, 2, true, "clip-tiny-vit.safetensors");
  });

  test("a URL typed in: downloaded with a progress line in MiB, then Node's bits", async () => {
    const file = join(root, "examples", images[0]);
    const node = await nodeResult(file, PICKED);
    const url = `${server.url}${PICKED}`;
    await page.fill("#model-name", url);
    const loaded = await loadModel(() => page.click("#model-fetch"));
    expect(loaded.state, loaded.status).toBe("ready");
    const mib = (readFileSync(join(root, PICKED)).byteLength / 1048576).toFixed(2);
    expect(loaded.progress).toBe(`downloaded ${mib} / ${mib} MiB (100%)`);
    expect(loaded.status.startsWith(`${url}: ViT 64 px`), loaded.status).toBe(true);
    const r = await classify(1, async () => {});
    expectSameAsNode(r, node, 1, true, url);
    // kept in the Cache API, under the URL
    expect(await page.evaluate(async (u) => !!(await (await caches.open("clip-ts-models")).match(u)), url)).toBe(true);
  });

  test("a name resolved through a mirror (?baseUrl=) whose file is not OpenAI's: one line on the page, SHA-256 mismatch", async () => {
    const other = await context.newPage();
    const errors: string[] = [];
    other.on("pageerror", (e) => errors.push(e.message));
    try {
      await loadModel(() => other.goto(`${server.url}examples/web/?baseUrl=${server.url}mirror`).then(() => {}), other);
      await other.fill("#model-name", "ViT-B/32");
      const loaded = await loadModel(() => other.press("#model-name", "Enter"), other);
      expect(loaded.state).toBe("error");
      const mirrored = `${server.url}mirror${new URL(MODELS["ViT-B/32"].url).pathname}`;
      expect(loaded.status).toBe(
        `could not load ViT-B/32: SHA-256 mismatch for ${mirrored}: expected ${MODELS["ViT-B/32"].sha256}, ` +
          `got ${createHash("sha256").update(readFileSync(join(root, PICKED))).digest("hex")} (the download was discarded)`,
      );
      expect(loaded.progress).toMatch(/^downloaded 0\.\d\d \/ 0\.\d\d MiB \(100%\)$/);
      expect(await other.locator("#run").isDisabled()).toBe(true);
      expect(errors).toEqual([]);
    } finally {
      await other.close();
    }
  });

  test("a PNG picked as the checkpoint: a one-line error on the page; the built-in model loads again after it", async () => {
    const png = join(root, "examples", images[0]);
    const loaded = await loadModel(() => page.setInputFiles("#model-file", png));
    expect(loaded.state).toBe("error");
    expect(loaded.status).toBe(
      `could not load ${images[0]}: unrecognised weights format (expected safetensors, a torch .pt/.pth zip, or a TorchScript archive)`,
    );
    expect(loaded.assumed).toBeNull();
    expect(await page.locator("#status").textContent()).toBe("no model loaded: choose another");
    expect(await page.locator("#run").isDisabled()).toBe(true);
    expect(await page.locator("#probs tr").count()).toBe(0); // the last model's results are gone
    expect(logs.filter((l) => /^(pageerror|console\.error)/.test(l))).toEqual([]);
    const again = await loadModel(() => page.click("#model-embedded"));
    expect(again.state, again.status).toBe("ready");
    expectSameAsNode(await classify(1, async () => {}), await nodeResult(png), 1);
  });

  test("without COOP/COEP the page offers 1 thread, and a run asked for 2 falls back to 1 with a warning, same bits", async () => {
    const file = join(root, "examples", images[0]);
    const node = await nodeResult(file);
    const plain = await serve({ port: 0, isolate: false });
    const other = await context.newPage();
    const warnings: string[] = [];
    other.on("console", (m) => warnings.push(m.text()));
    try {
      await other.goto(`${plain.url}examples/web/`);
      expect(await other.evaluate(() => crossOriginIsolated)).toBe(false);
      expect(await other.locator("#isolation").isVisible()).toBe(true);
      expect(await other.evaluate(() => Array.from((document.getElementById("threads") as HTMLSelectElement).options, (o) => o.disabled)))
        .toEqual([false, true, true]);
      // the page's worker, asked directly for what the page no longer offers
      const reply = await other.evaluate(async ({ bytes, labels }) => {
        const worker = new Worker(new URL("worker.js", location.href), { type: "module" });
        const ask = (message: object) => new Promise<{ result?: unknown; error?: string }>((resolve) => {
          worker.onmessage = (e) => resolve(e.data);
          worker.postMessage({ id: 1, ...message });
        });
        const loaded = await ask({ type: "load", source: { kind: "embedded" }, threads: 2 });
        return loaded.error ? loaded : ask({ type: "run", image: new Uint8Array(bytes).buffer, labels });
      }, { bytes: Array.from(readFileSync(file)), labels: LABELS });
      if (reply.error) throw new Error(`the page failed: ${reply.error}`);
      expectSameAsNode(reply.result as PageResult, node, 1, false);
      expect(warnings.some((w) => /cross-origin isolated.*running on 1 thread/.test(w)), warnings.join("\n")).toBe(true);
    } finally {
      await other.close();
      await plain.close();
    }
  });
});
