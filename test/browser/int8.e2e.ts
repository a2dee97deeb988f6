// precision "int8" in Chromium: the bundle (dist/browser/clip-ts.js, wasm on Web Workers) gives Node's bits for the
// int8 path too, on 1, 2 and 4 threads: the SHA-256 of the image and text embeddings of the embedded ViT (whose
// image tower, unlike the ResNet's, has int8 layers). Debian's Chromium at /usr/bin/chromium (or $CHROMIUM_PATH);
// without it the test fails, naming what is missing.
import { createHash } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium, type BrowserContext, type Page } from "playwright-core";
import { afterAll, beforeAll, expect, test } from "vitest";
import { load } from "../../src/clip.js";
// @ts-expect-error: plain ESM without types
import { serve } from "../../examples/web/serve.mjs";

const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const root = new URL("../../", import.meta.url).pathname;
const MODEL = "weights/clip-tiny-vit.safetensors", VOCAB = "weights/vocab.txt.gz", IMAGE = "examples/blue_star.png";
const PROMPTS = ["a photo of a blue star.", "a photo of a red diamond, drawn large on a white background."];

const missing = [CHROMIUM, ...["dist/browser/clip-ts.js", "build/clip.wasm", "build/clip-threads.wasm", MODEL, VOCAB, IMAGE].map((f) => join(root, f))]
  .filter((f) => !existsSync(f));

let server: { url: string; close(): Promise<void> };
let context: BrowserContext;
let page: Page;
let profile: string;

beforeAll(async () => {
  if (missing.length > 0) throw new Error(`the browser test cannot run: missing ${missing.join(", ")} (npm run build; apt-get install -y chromium)`);
  server = await serve({ port: 0 });
  profile = mkdtempSync(join(tmpdir(), "clip-ts-chromium-"));
  context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM, headless: true, args: ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"],
  });
  page = await context.newPage();
  await page.goto(`${server.url}examples/web/`); // cross-origin isolated (serve.mjs): threads can share memory
});

afterAll(async () => {
  await context?.close();
  await server?.close();
  if (profile) rmSync(profile, { recursive: true, force: true });
});

/** Run in the page: in a module Worker (the main thread may not Atomics.wait), the bundle's loadInBrowser with
 *  precision int8, and the SHA-256 of both embeddings. */
const WORKER = `onmessage = async ({ data: { base, model, vocab, image, prompts, threads } }) => {
  try {
    const m = await import(base + "dist/browser/clip-ts.js");
    const hex = async (a) => Array.from(new Uint8Array(await crypto.subtle.digest("SHA-256", a.slice().buffer)), (b) => b.toString(16).padStart(2, "0")).join("");
    const clip = await m.loadInBrowser(base + model, { threads, precision: "int8", vocab: base + vocab, cache: false });
    const bytes = new Uint8Array(await (await fetch(base + image)).arrayBuffer());
    const out = {
      threads: clip.model.backend.threads,
      image: await hex(clip.model.encodeImage(clip.preprocess(bytes)).data),
      text: await hex(clip.model.encodeText(clip.tokenize(prompts)).data),
    };
    clip.model.dispose();
    postMessage(out);
  } catch (e) {
    postMessage({ error: String(e) });
  }
};`;
const IN_PAGE = `(args) => new Promise((resolve) => {
  const w = new Worker(URL.createObjectURL(new Blob([${JSON.stringify(WORKER)}], { type: "text/javascript" })), { type: "module" });
  w.onmessage = (e) => { resolve(e.data); w.terminate(); };
  w.onerror = (e) => resolve({ error: e.message });
  w.postMessage(args);
})`;

function sha256(data: Float32Array): string {
  return createHash("sha256").update(new Uint8Array(data.buffer, data.byteOffset, data.byteLength)).digest("hex");
}

test("int8 embeddings in Chromium = Node's, bit for bit, on 1, 2 and 4 threads", async () => {
  const node = await load(join(root, MODEL), { threads: 1, precision: "int8", vocab: join(root, VOCAB) });
  const expected = {
    image: sha256(node.model.encodeImage(node.preprocess(new Uint8Array(readFileSync(join(root, IMAGE))))).data),
    text: sha256(node.model.encodeText(node.tokenize(PROMPTS)).data),
  };
  node.model.dispose();
  for (const threads of [1, 2, 4]) {
    // a string, not a function: vitest would rewrite a function's import() into its own loader, absent in the page
    const got = await page.evaluate(`(${IN_PAGE})(${JSON.stringify({ base: server.url, model: MODEL, vocab: VOCAB, image: IMAGE, prompts: PROMPTS, threads })})`);
    expect(got).toEqual({ threads, ...expected });
  }
});
