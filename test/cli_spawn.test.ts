// The built executable (package.json "bin" → dist/src/cli/main.js) in a child process: exit statuses, stderr,
// and paths resolved against the caller's directory while the embedded model is found from the package.
import { spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { agreement, goldenDir, npy } from "./helpers/golden.js";
import { ensureBuilt } from "./helpers/dist.js";

const root = process.cwd();
const main = resolve(root, "dist/src/cli/main.js");
const tmp = mkdtempSync(join(tmpdir(), "clip-ts-spawn-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

beforeAll(() => ensureBuilt(["src/cli", "src"]));

function clip(args: string[], cwd = root) {
  const r = spawnSync(process.execPath, [main, ...args], { cwd, encoding: "utf8", env: { ...process.env, CLIP_TS_DEBUG: "" } });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

test("the executable starts with a node shebang", () => {
  expect(readFileSync(main, "utf8").split("\n")[0]).toBe("#!/usr/bin/env node");
});

test("success: status 0, the output file, nothing on stderr (not a TTY: no progress bar)", () => {
  const dir = resolve(goldenDir("vit"));
  const r = clip(["embed-image", "--model", "weights.safetensors", "--pixels", "pixels.npy", "--out", join(tmp, "y.npy")], dir);
  expect(r).toEqual({ status: 0, stdout: "", stderr: "" });
  expect(agreement(npy(join(tmp, "y.npy")), npy(join(dir, "encode_image.npy"))).ok).toBe(true);
});

test("usage error: status 2; file error: status 1; one stderr line each, no stack trace", () => {
  const bad = clip(["embed-image", "--bogus"]);
  expect(bad.status).toBe(2);
  expect(bad.stderr).toBe("clip-ts embed-image: unknown option --bogus (see clip-ts embed-image --help)\n");
  const missing = clip(["logits", "--model", `${goldenDir("vit")}/weights.safetensors`, "--pixels", "nope.npy", "--tokens", "nope.npy"]);
  expect(missing.status).toBe(1);
  expect(missing.stderr).toBe('clip-ts logits: --pixels: no such file "nope.npy"\n');
  expect(missing.stdout).toBe("");
});

test("--version, and the embedded default model from any working directory", () => {
  expect(clip(["--version"]).stdout.trim()).toBe(JSON.parse(readFileSync("package.json", "utf8")).version);
  const r = clip(["summary"], tmp);
  expect(r.stderr).toBe("");
  expect(r.status).toBe(0);
  expect(r.stdout).toMatch(/^weights\/clip-tiny-rn\.safetensors \(embedded\): ModifiedResNet 64px/);
  expect(r.stdout).toMatch(/Total parameters: 1,478,681 /);
});

describe("a write cut short by the file-size limit (bash ulimit -f: Node ignores SIGXFSZ, the write fails with EFBIG)", () => {
  /** The executable under a 1 KiB file-size limit, in a fresh directory holding an old out.npy. */
  function limited(args: string[]) {
    const dir = mkdtempSync(join(tmp, "ulimit-"));
    const old = Buffer.from("an older out.npy that must survive\n");
    writeFileSync(join(dir, "out.npy"), old);
    const r = spawnSync("bash", ["-c", 'ulimit -f 1 && exec "$0" "$@"', process.execPath, main, ...args], {
      cwd: dir, encoding: "utf8", env: { ...process.env, CLIP_TS_DEBUG: "" },
    });
    return { status: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr, dir, old };
  }

  test.each([
    ["tokenize", ["a", "b", "c", "d", "--out", "out.npy"]], // 4 × 77 int32 = 1232 bytes of data
    ["preprocess", [resolve(root, "test/golden/preprocess/rgb_2x3.png"), "--size", "32", "--out", "out.npy"]], // 12 KiB
  ])("%s: status 1, one line naming the path, the old file's bytes unchanged, no temporary file", (command, args) => {
    const r = limited([command, ...args]);
    expect(r.signal).toBe(null);
    expect(r.stderr).toBe(`clip-ts ${command}: --out: cannot write "out.npy" (file too large, EFBIG); "out.npy" is left as it was\n`);
    expect(r.status).toBe(1);
    expect(readFileSync(join(r.dir, "out.npy"))).toEqual(r.old);
    expect(readdirSync(r.dir)).toEqual(["out.npy"]);
  });

  test("within the limit the file is replaced", () => {
    const r = limited(["tokenize", "a", "--context-length", "8", "--out", "out.npy"]);
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    expect(readFileSync(join(r.dir, "out.npy")).subarray(0, 6).toString("latin1")).toBe("\x93NUMPY");
    expect(readdirSync(r.dir)).toEqual(["out.npy"]);
  });
});
