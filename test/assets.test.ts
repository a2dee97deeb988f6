// The package's own files are named in src/assets.ts alone; Node paths, browser URLs and the CLI's defaults all
// come from there, in the repository (src/) and once built (dist/src/).
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { expect, test } from "vitest";
import * as assets from "../src/assets.js";
import { EMBEDDED_MODEL_URLS, OPENAI_VOCAB_URL } from "../src/browser.js";
import { DEFAULT_MODEL, DEFAULT_VOCAB, packageRoot } from "../src/cli/common.js";
import { embeddedModelPaths } from "../src/clip.js";

const root = process.cwd();
const names = Object.keys(assets.ASSET_FILES) as assets.Asset[];

test("every asset is found, in the package root, from src/ and from dist/src/", async () => {
  expect(fileURLToPath(assets.PACKAGE_ROOT)).toBe(join(root, "/"));
  expect(packageRoot()).toBe(join(root, "/"));
  expect(existsSync("dist/src/assets.js"), "dist/ is built by `npm run build:ts`").toBe(true);
  const built = (await import(pathToFileURL(join(root, "dist/src/assets.js")).href)) as typeof assets;
  for (const name of names) {
    const path = join(root, assets.ASSET_FILES[name]);
    expect(existsSync(path), path).toBe(true);
    expect(await assets.assetPath(name)).toBe(path);
    expect(await built.assetPath(name)).toBe(path);
  }
  expect(await assets.openaiVocabPath()).toBe(join(root, assets.ASSET_FILES.openaiVocab));
});

test("the library, the browser entry and the CLI ask assets.ts", async () => {
  expect(await embeddedModelPaths()).toEqual({ weights: await assets.assetPath("embeddedWeights"), vocab: await assets.assetPath("embeddedVocab") });
  expect(EMBEDDED_MODEL_URLS).toEqual({ weights: assets.assetUrl("embeddedWeights").href, vocab: assets.assetUrl("embeddedVocab").href });
  expect(OPENAI_VOCAB_URL).toBe(assets.assetUrl("openaiVocab").href);
  expect([DEFAULT_MODEL, DEFAULT_VOCAB]).toEqual([assets.ASSET_FILES.embeddedWeights, assets.ASSET_FILES.embeddedVocab]);
  // No other source file spells out where one of them is.
  const files = readdirSync("src", { recursive: true, encoding: "utf8" }).filter((f) => f.endsWith(".ts") && f !== "assets.ts");
  for (const f of files) {
    const text = readFileSync(join("src", f), "utf8");
    for (const name of names) expect(text.includes(assets.ASSET_FILES[name]), `src/${f} names ${assets.ASSET_FILES[name]}`).toBe(false);
  }
});
