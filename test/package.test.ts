import { existsSync } from "node:fs";
import { expect, test } from "vitest";

// The package imports by its own name from inside its folder (package.json "exports", built into dist/ by npm ci).
test('import { loadModel, load } from "clip-ts"', async () => {
  expect(existsSync("dist/src/index.js"), "dist/ is built by `npm ci` (prepare) or `npm run build`").toBe(true);
  const api = await import("clip-ts");
  for (const name of ["load", "loadModel", "loadTokenizer", "preprocess", "zeroShot", "buildModel", "loadStateDict"]) {
    expect(typeof (api as Record<string, unknown>)[name], name).toBe("function");
  }
  const golden = await api.loadModel("test/golden/models/vit/weights.safetensors", { backend: "ts" });
  expect(golden.config).toMatchObject({ embedDim: 64, imageResolution: 32, vision: { kind: "vit", layers: 2, patchSize: 8 }, vocabSize: 512 });
  golden.dispose();
});

// `npx clip-ts …` (the README's first command) runs package.json's bin as a program: tsc writes it without the
// executable bit, which build:ts sets; without it the shell answers "Permission denied".
test("the clip-ts bin is executable and runs with a shebang", async () => {
  const { readFileSync, statSync } = await import("node:fs");
  const bin = (JSON.parse(readFileSync("package.json", "utf8")) as { bin: Record<string, string> }).bin["clip-ts"];
  expect(statSync(bin).mode & 0o111, `${bin} mode ${statSync(bin).mode.toString(8)}`).toBe(0o111);
  expect(readFileSync(bin, "utf8").startsWith("#!/usr/bin/env node\n")).toBe(true);
  const { execFileSync } = await import("node:child_process");
  expect(execFileSync(bin, ["--help"], { encoding: "utf8" })).toMatch(/clip-ts/);
});

// The README's API example, extracted and run as written (it imports "clip-ts", so it runs against dist/).
test("the README's API example runs as written", async () => {
  const { readFileSync, writeFileSync, rmSync } = await import("node:fs");
  const readme = readFileSync("README.md", "utf8");
  const api = readme.slice(readme.indexOf("## API"));
  const code = /```ts\n([\s\S]*?)```/.exec(api)?.[1];
  expect(code, "a ts block under ## API").toBeDefined();
  const file = `test/.readme-api-${process.pid}.mjs`; // inside the package, so "clip-ts" resolves to it
  writeFileSync(file, code!);
  try {
    const { execFileSync } = await import("node:child_process");
    const out = execFileSync(process.execPath, [file], { encoding: "utf8" });
    expect(out).toMatch(/Float32Array|\d\.\d/);
  } finally {
    rmSync(file, { force: true });
  }
});
