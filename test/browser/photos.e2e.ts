// "Search your photos" on the demo page, in Chromium: a folder picked on the page is embedded there (clip-ts's own
// decoders, the built-in model) and kept in IndexedDB with the same bits as Node's; a text or an image finds the
// photos Node's CollectionDb ranks first, with the same scores; a corrupt file is listed, not fatal; picking the
// folder again embeds only what changed; a reload keeps the collection and its thumbnails.
//
// UPDATE_SCREENSHOT=1 also writes docs/search-photos.png (the README's picture) from the results page.
import { createHash } from "node:crypto";
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, unlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { chromium, type BrowserContext, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { EMBEDDED_MODEL_URLS } from "../../src/browser.js";
import { load } from "../../src/clip.js";
import { CollectionDb } from "../../src/collection/db.js";
import { normalize } from "../../src/model.js";
// @ts-expect-error: plain ESM without types
import { serve } from "../../examples/web/serve.mjs";

const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const ARGS = [
  "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync",
];
const root = new URL("../../", import.meta.url).pathname;
const MODEL = join(root, "weights", basename(new URL(EMBEDDED_MODEL_URLS.weights).pathname));
const EXAMPLES = readdirSync(join(root, "examples")).filter((f) => f.endsWith(".png")).sort();
const QUERY = "a red diamond";
const BROKEN = "photos/broken.png";

interface Hit { path: string; score: number }

describe("search your photos (demo page, Chromium)", () => {
  let server: { url: string; close(): Promise<void> };
  let context: BrowserContext;
  let page: Page;
  let work: string, folder: string, profile: string;
  const logs: string[] = [];
  const node = {
    modelSha256: "",
    embeddings: new Map<string, Float32Array>(), // photos/<name> → normalised image embedding
    text: new Float32Array(0) as Float32Array<ArrayBufferLike>,
    db: undefined as CollectionDb | undefined,
  };

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), "clip-ts-photos-"));
    folder = join(work, "photos");
    mkdirSync(folder);
    for (const f of EXAMPLES) copyFileSync(join(root, "examples", f), join(folder, f));
    writeFileSync(join(folder, "broken.png"), readFileSync(join(root, "examples", EXAMPLES[0])).subarray(0, 300)); // cut short
    writeFileSync(join(folder, "notes.txt"), "not a photo\n");

    // Node: the library from source, the same model file as the page's built-in one
    const clip = await load(undefined, { backend: "wasm", threads: 1 });
    try {
      for (const f of EXAMPLES) {
        const e = normalize(clip.model.encodeImage(clip.preprocess(new Uint8Array(readFileSync(join(folder, f))))));
        node.embeddings.set(`photos/${f}`, e.data);
      }
      node.text = normalize(clip.model.encodeText(clip.tokenize([QUERY]))).data;
    } finally {
      clip.model.dispose();
    }
    node.modelSha256 = createHash("sha256").update(readFileSync(MODEL)).digest("hex");
    node.db = CollectionDb.open(join(work, "node.db"), { dim: node.text.length });
    node.db.upsert([...node.embeddings].map(([path, embedding]) => ({
      path, size: 0, mtimeMs: 0, sha256: "0".repeat(64), modelSha256: node.modelSha256, embedding,
    })));

    server = await serve({ port: 0 });
    profile = join(work, "profile");
    context = await chromium.launchPersistentContext(profile, { executablePath: CHROMIUM, headless: true, args: ARGS, viewport: { width: 800, height: 900 } });
    page = await context.newPage();
    page.on("console", (m) => logs.push(`console.${m.type()}: ${m.text()}`));
    page.on("pageerror", (e) => logs.push(`pageerror: ${e.message}`));
    await open();
  });

  afterAll(async () => {
    node.db?.close();
    await context?.close();
    await server?.close();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  const withLog = (e: Error) => {
    throw new Error(`${e.message}\npage log:\n${logs.join("\n")}`);
  };

  /** Opens (or reloads) the page and waits for the built-in model and the collection's summary. */
  async function open(): Promise<string> {
    if (page.url().startsWith(server.url)) await page.reload();
    else await page.goto(`${server.url}examples/web/`);
    await page.waitForFunction(() => document.getElementById("photos-summary")!.dataset.state === "ready", undefined, { timeout: 120_000 }).catch(withLog);
    return (await page.locator("#photos-summary").textContent())!;
  }

  /** Picks the folder on the page and waits for the end of that indexing; its status line. */
  async function pick(): Promise<string> {
    return pickFolder(folder);
  }
  async function pickFolder(dir: string): Promise<string> {
    const before = await page.locator("#photos-status").getAttribute("data-run");
    await page.setInputFiles("#photos-dir", dir);
    await page.waitForFunction((before) => {
      const s = document.getElementById("photos-status")!;
      return s.dataset.run !== before && ["done", "error"].includes(s.dataset.state!);
    }, before, { timeout: 120_000 }).catch(withLog);
    expect(await page.locator("#photos-status").getAttribute("data-state")).toBe("done");
    return (await page.locator("#photos-status").textContent())!;
  }

  /** Runs a search and reads the hits shown. */
  async function search(start: () => Promise<void>): Promise<{ hits: Hit[]; status: string; images: number; missing: number }> {
    const before = await page.locator("#photos-search-status").getAttribute("data-run");
    await start();
    await page.waitForFunction((before) => {
      const s = document.getElementById("photos-search-status")!;
      return s.dataset.run !== before && ["done", "error"].includes(s.dataset.state!);
    }, before, { timeout: 120_000 }).catch(withLog);
    const status = (await page.locator("#photos-search-status").textContent())!;
    expect(await page.locator("#photos-search-status").getAttribute("data-state"), status).toBe("done");
    const hits = await page.$$eval("#photos-results figure", (fs) => fs.map((f) => ({ path: f.dataset.path!, score: Number(f.dataset.score) })));
    // every thumbnail shown has loaded (a broken object URL or blob has naturalWidth 0)
    await page.waitForFunction(() => Array.from(document.querySelectorAll<HTMLImageElement>("#photos-results img")).every((i) => i.complete));
    const images = await page.$$eval("#photos-results img", (is) => (is as HTMLImageElement[]).filter((i) => i.naturalWidth > 0).length);
    const missing = await page.locator("#photos-results .missing").count();
    return { hits, status, images, missing };
  }

  /** The rows of IndexedDB, read by the test itself (not through the page's code). */
  async function stored(): Promise<{ photos: { path: string; size: number; lastModified: number; modelSha256: string; bytes: number[] }[]; failed: { path: string; error: string }[]; thumbs: number }> {
    return page.evaluate(async () => {
      const db = await new Promise<IDBDatabase>((resolve, reject) => {
        const r = indexedDB.open("clip-ts-photos");
        r.onsuccess = () => resolve(r.result);
        r.onerror = () => reject(r.error);
      });
      const all = <T>(store: string) => new Promise<T[]>((resolve, reject) => {
        const r = db.transaction(store).objectStore(store).getAll();
        r.onsuccess = () => resolve(r.result as T[]);
        r.onerror = () => reject(r.error);
      });
      type Row = { path: string; size: number; lastModified: number; modelSha256: string; embedding: ArrayBuffer };
      const photos = (await all<Row>("photos")).map((r) => ({ ...r, embedding: undefined, bytes: Array.from(new Uint8Array(r.embedding)) }));
      const failed = await all<{ path: string; error: string }>("failed");
      const thumbs = (await all<{ blob: Blob }>("thumbs")).filter((t) => t.blob instanceof Blob && t.blob.size > 0).length;
      db.close();
      return { photos, failed, thumbs };
    });
  }

  const bytesOf = (a: Float32Array) => Array.from(new Uint8Array(a.buffer, a.byteOffset, a.byteLength));
  const nodeSearch = (q: Float32Array): Hit[] => node.db!.search(q, 12, { modelSha256: node.modelSha256 });

  test("a picked folder is embedded in the page: 7 photos, the corrupt one listed with its error, the text file skipped", async () => {
    expect(await page.locator("#photos-summary").textContent()).toBe("0 photos indexed with the built-in tiny model.");
    const status = await pick();
    expect(status).toMatch(new RegExp(`^${EXAMPLES.length} files embedded in \\d+\\.\\d s \\(\\d+\\.\\d files/s\\), 1 failed, 1 other file skipped \\(not PNG or JPEG\\)\\.$`));
    expect(await page.locator("#photos-summary").textContent()).toBe(`${EXAMPLES.length} photos indexed with the built-in tiny model.`);
    expect(await page.locator("#photos-failed-box").isVisible()).toBe(true);
    expect(await page.locator("#photos-failed-title").textContent()).toBe("1 file could not be indexed");
    const failed = await page.locator("#photos-failed li").allTextContents();
    expect(failed).toHaveLength(1);
    expect(failed[0]).toMatch(/^photos\/broken\.png: \S.*/);
    expect(failed[0]).not.toMatch(/\n/);
    console.log(`the corrupt file on the page: ${failed[0]}; ${status}`);
    expect(logs.filter((l) => /^(pageerror|console\.error)/.test(l))).toEqual([]);
  });

  test("the embeddings stored in IndexedDB are Node's, bit for bit, under the model file's SHA-256", async () => {
    const s = await stored();
    expect(s.photos.map((p) => p.path).sort()).toEqual([...node.embeddings.keys()].sort());
    for (const p of s.photos) {
      expect(p.modelSha256).toBe(node.modelSha256);
      expect(p.size).toBe(statSync(join(work, p.path)).size);
      expect(p.bytes, p.path).toEqual(bytesOf(node.embeddings.get(p.path)!));
    }
    expect(s.failed.map((f) => f.path)).toEqual([BROKEN]);
    expect(s.thumbs).toBe(EXAMPLES.length);
  });

  test(`"${QUERY}": the red diamond first; the hits and scores are those of Node's CollectionDb.search`, async () => {
    await page.fill("#photos-query", QUERY);
    const r = await search(() => page.click("#photos-search"));
    expect(r.hits[0].path).toBe("photos/red_diamond.png");
    expect(r.hits).toEqual(nodeSearch(node.text));
    expect(r.hits).toHaveLength(EXAMPLES.length);
    expect(r.images).toBe(EXAMPLES.length); // the picked files themselves
    expect(r.status).toMatch(new RegExp(`^“${QUERY}”: best ${EXAMPLES.length} of ${EXAMPLES.length} photos \\(exact cosine, \\d+\\.\\d ms\\)$`));
    console.log(`"${QUERY}": ${r.hits.slice(0, 3).map((h) => `${h.path} ${h.score.toFixed(4)}`).join(", ")}`);
  });

  test("an image as the query, and a click on a result: that image first, scoring as in Node", async () => {
    const star = await search(() => page.setInputFiles("#photos-image", join(root, "examples/blue_star.png")));
    expect(star.hits[0].path).toBe("photos/blue_star.png");
    expect(star.hits).toEqual(nodeSearch(node.embeddings.get("photos/blue_star.png")!));
    expect(star.hits[0].score).toBeCloseTo(1, 6);
    const similar = await search(() => page.click('#photos-results figure[data-path="photos/green_circle.png"]'));
    expect(similar.hits[0].path).toBe("photos/green_circle.png");
    expect(similar.hits).toEqual(nodeSearch(node.embeddings.get("photos/green_circle.png")!));
    expect(similar.status).toMatch(/^photos like photos\/green_circle\.png: best 7 of 7 photos/);
  });

  test("picking the folder again embeds only what changed: unchanged skipped, a new file added, a deleted one removed", async () => {
    expect(await pick()).toMatch(/^0 files embedded in \d+\.\d s \(\d+\.\d files\/s\), 7 unchanged, 1 failed, 1 other file skipped/);
    copyFileSync(join(root, "examples/red_diamond.png"), join(folder, "red_diamond_copy.png"));
    unlinkSync(join(folder, "yellow_heart.png"));
    try {
      expect(await pick()).toMatch(/^1 file embedded in \d+\.\d s \(\d+\.\d files\/s\), 6 unchanged, 1 gone from the folder, removed, 1 failed/);
      const s = await stored();
      expect(s.photos.map((p) => p.path).sort()).toContain("photos/red_diamond_copy.png");
      expect(s.photos.map((p) => p.path)).not.toContain("photos/yellow_heart.png");
      const copy = s.photos.find((p) => p.path === "photos/red_diamond_copy.png")!;
      expect(copy.bytes).toEqual(bytesOf(node.embeddings.get("photos/red_diamond.png")!)); // same bytes, same bits
      await page.fill("#photos-query", QUERY);
      const r = await search(() => page.click("#photos-search"));
      // equal scores: ties by path, as in Node
      expect(r.hits.slice(0, 2).map((h) => h.path)).toEqual(["photos/red_diamond.png", "photos/red_diamond_copy.png"]);
      expect(r.hits[0].score).toBe(r.hits[1].score);
    } finally {
      unlinkSync(join(folder, "red_diamond_copy.png"));
      copyFileSync(join(root, "examples/yellow_heart.png"), join(folder, "yellow_heart.png"));
    }
    // back as it was: the copy goes, the heart (a new lastModified) is embedded again
    expect(await pick()).toMatch(/^1 file embedded .*, 6 unchanged, 1 gone from the folder, removed, 1 failed/);
  });

  test("after a reload the collection is still there: searchable, with its stored thumbnails", async () => {
    const summary = await open();
    expect(summary).toBe(`${EXAMPLES.length} photos indexed with the built-in tiny model.`);
    expect(await page.locator("#photos-failed li").allTextContents()).toEqual([expect.stringMatching(/^photos\/broken\.png: /)]);
    await page.fill("#photos-query", QUERY);
    const r = await search(() => page.click("#photos-search"));
    expect(r.hits).toEqual(nodeSearch(node.text));
    expect(r.images).toBe(EXAMPLES.length); // from IndexedDB: the picked files are gone with the reload
    expect(r.missing).toBe(0);
    expect(await page.$$eval("#photos-results img", (is) => is.every((i) => (i as HTMLImageElement).src.startsWith("blob:")))).toBe(true);
    if (process.env.UPDATE_SCREENSHOT) {
      await page.click("#photos-failed-title"); // open the list of failed files
      await page.evaluate(() => window.scrollTo(0, 0)); // boxes in page coordinates, as fullPage's clip
      const top = await page.locator("#photos").boundingBox();
      const bottom = await page.locator("#photos-results").boundingBox();
      const out = join(root, "docs/search-photos.png");
      mkdirSync(join(root, "docs"), { recursive: true });
      await page.screenshot({ path: out, fullPage: true, clip: { x: 0, y: top!.y - 12, width: 800, height: bottom!.y + bottom!.height - top!.y + 24 } });
      console.log(`wrote ${out} (${statSync(out).size} bytes)`);
      expect(statSync(out).size).toBeLessThan(150_000); // kept small in the repository
    }
    expect(logs.filter((l) => /^(pageerror|console\.error)/.test(l))).toEqual([]);
  });

  test("another model does not mix in: its collection is empty until the folder is picked again", async () => {
    await page.setInputFiles("#vocab-file", join(root, "weights/vocab.txt.gz")); // its 628 tokens are not OpenAI's
    const [vit] = await Promise.all([
      page.waitForFunction(() => document.getElementById("model-status")!.dataset.state === "ready" && document.getElementById("model-status")!.textContent!.startsWith("clip-tiny-vit")),
      page.setInputFiles("#model-file", join(root, "weights/clip-tiny-vit.safetensors")),
    ]);
    expect(vit).toBeTruthy();
    await page.waitForFunction(() => /^0 photos indexed with clip-tiny-vit\.safetensors/.test(document.getElementById("photos-summary")!.textContent!));
    expect(await page.locator("#photos-summary").textContent()).toBe(
      `0 photos indexed with clip-tiny-vit.safetensors (${EXAMPLES.length} more embedded by another model: pick the folder again to embed them with this one).`,
    );
    await page.fill("#photos-query", QUERY);
    const before = await page.locator("#photos-search-status").getAttribute("data-run");
    await page.click("#photos-search");
    await page.waitForFunction((b) => document.getElementById("photos-search-status")!.dataset.run !== b && document.getElementById("photos-search-status")!.dataset.state === "done", before);
    expect(await page.locator("#photos-search-status").textContent()).toBe("nothing indexed with this model yet: pick a folder");
    expect(await pick()).toMatch(/^7 files embedded .*, 1 failed/); // re-embedded by this model, not mixed
    const s = await stored();
    const vitSha = createHash("sha256").update(readFileSync(join(root, "weights/clip-tiny-vit.safetensors"))).digest("hex");
    expect(new Set(s.photos.map((p) => p.modelSha256))).toEqual(new Set([vitSha]));
  });

  test("Stop ends an indexing between two files; picking the folder again embeds the rest, each file once", async () => {
    const many = join(work, "many");
    mkdirSync(many);
    const N = 60;
    for (let i = 0; i < N; i++) copyFileSync(join(root, "examples", EXAMPLES[i % EXAMPLES.length]), join(many, `${String(i).padStart(2, "0")}.png`));
    const before = await page.locator("#photos-status").getAttribute("data-run");
    await page.setInputFiles("#photos-dir", many);
    await page.waitForFunction(() => /^embedding ([4-9]|\d\d) \//.test(document.getElementById("photos-status")!.textContent!), undefined, { timeout: 120_000 }).catch(withLog);
    await page.click("#photos-cancel");
    await page.waitForFunction((b) => {
      const s = document.getElementById("photos-status")!;
      return s.dataset.run !== b && s.dataset.state === "done";
    }, before, { timeout: 120_000 }).catch(withLog);
    const stopped = (await page.locator("#photos-status").textContent())!;
    const first = Number(/^stopped: (\d+) files? embedded/.exec(stopped)?.[1]);
    expect(first, stopped).toBeGreaterThanOrEqual(4);
    expect(first, stopped).toBeLessThan(N);
    expect(await page.locator("#photos-cancel").isVisible()).toBe(false);
    const rest = Number(/^(\d+) files? embedded/.exec(await pickFolder(many))?.[1]);
    expect(first + rest).toBe(N);
    const s = await stored();
    expect(s.photos.filter((p) => p.path.startsWith("many/")).map((p) => p.path).sort()).toEqual(
      Array.from({ length: N }, (_, i) => `many/${String(i).padStart(2, "0")}.png`),
    );
    expect(logs.filter((l) => /^(pageerror|console\.error)/.test(l))).toEqual([]);
  });

  test("a second tab sees what the first one indexes, without a reload", async () => {
    const other = await context.newPage();
    try {
      await other.goto(`${server.url}examples/web/`);
      await other.waitForFunction(() => document.getElementById("photos-summary")!.dataset.state === "ready", undefined, { timeout: 120_000 });
      expect(await other.locator("#photos-summary").textContent()).toMatch(/^0 photos indexed with the built-in tiny model \(\d+ more/);
      // the first tab goes back to the built-in model and indexes the folder with it
      await page.bringToFront();
      await page.click("#model-embedded");
      await page.waitForFunction(() => /^0 photos indexed with the built-in tiny model/.test(document.getElementById("photos-summary")!.textContent!));
      expect(await pick()).toMatch(/^7 files embedded/);
      await other.bringToFront();
      await other.fill("#photos-query", QUERY);
      await other.click("#photos-search");
      await other.waitForFunction(() => document.getElementById("photos-search-status")!.dataset.state === "done", undefined, { timeout: 60_000 });
      expect(await other.locator("#photos-search-status").textContent()).toMatch(/^“a red diamond”: best 7 of 7 photos/);
      expect(await other.$$eval("#photos-results figure", (fs) => fs.map((f) => ({ path: f.dataset.path!, score: Number(f.dataset.score) }))))
        .toEqual(nodeSearch(node.text));
    } finally {
      await other.close();
      await page.bringToFront();
    }
  });

  test("JPEGs (baseline, progressive with restarts, CMYK, grey; any case of extension) in subfolders: Node's bits", async () => {
    const jpegs = join(work, "jpegs");
    const files = {
      "jpegs/a/baseline.jpg": "jpeg_420_640x480.jpg",
      "jpegs/a/b/progressive.JPEG": "cjpeg_420_restart_3mcu_prog_90x70_n64.jpg",
      "jpegs/cmyk.Jpg": "jpeg_cmyk_100x80_n64.jpg",
      "jpegs/grey.jpeg": "jpeg_grey_prog_77x130_n32.jpg",
    };
    for (const [path, golden] of Object.entries(files)) {
      mkdirSync(join(work, path, ".."), { recursive: true });
      copyFileSync(join(root, "test/golden/preprocess", golden), join(work, path));
    }
    await page.click("#model-embedded");
    await page.waitForFunction(() => document.getElementById("photos-summary")!.textContent!.includes("with the built-in tiny model"));
    expect(await pickFolder(jpegs)).toMatch(/^4 files embedded/);
    const rows = new Map((await stored()).photos.map((p) => [p.path, p]));
    const clip = await load(undefined, { backend: "wasm", threads: 1 });
    try {
      for (const path of Object.keys(files)) {
        const e = normalize(clip.model.encodeImage(clip.preprocess(new Uint8Array(readFileSync(join(work, path))))));
        expect(rows.get(path)?.bytes, path).toEqual(bytesOf(e.data));
      }
    } finally {
      clip.model.dispose();
    }
  });

  test("Forget the collection empties IndexedDB; a search then says to pick a folder", async () => {
    await page.click("#photos-clear");
    await page.waitForFunction(() => document.getElementById("photos-status")!.textContent === "the collection is forgotten");
    expect(await page.locator("#photos-summary").textContent()).toBe("0 photos indexed with the built-in tiny model.");
    expect(await page.locator("#photos-failed-box").isVisible()).toBe(false);
    const s = await stored();
    expect([s.photos.length, s.failed.length, s.thumbs]).toEqual([0, 0, 0]);
    await page.fill("#photos-query", QUERY);
    const before = await page.locator("#photos-search-status").getAttribute("data-run");
    await page.click("#photos-search");
    await page.waitForFunction((b) => document.getElementById("photos-search-status")!.dataset.run !== b && document.getElementById("photos-search-status")!.dataset.state === "done", before);
    expect(await page.locator("#photos-search-status").textContent()).toBe("nothing indexed with this model yet: pick a folder");
    expect(await page.locator("#photos-results figure").count()).toBe(0);
  });
});
