// The commands on checkpoints saved by the peers (test/golden/peers): folders, --arch / --activation / --heads,
// and the one-line note when a setting is assumed.
import { mkdtempSync, rmSync, copyFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, test } from "vitest";
import { memoryIo, runCli } from "../src/cli/cli.js";
import { agreement, npy } from "./helpers/golden.js";

const tmp = mkdtempSync(join(tmpdir(), "clip-ts-cli-ck-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const PEERS = "test/golden/peers";

async function run(...argv: string[]) {
  const io = memoryIo();
  const code = await runCli(argv, io);
  return { code, stdout: io.out(), stderr: io.err() };
}

/** max|a − b| / max|b| between a written .npy and a golden one. */
const maxRel = (path: string, expected: string) => agreement(npy(path), npy(expected)).maxRel;

describe("embed-image on peer checkpoints", () => {
  test("a Hugging Face folder (GELU, 32-wide heads): no note, the peer's features", async () => {
    const out = join(tmp, "hf.npy");
    const r = await run("embed-image", "--model", `${PEERS}/hf_gelu_h32`, "--pixels", `${PEERS}/hf_gelu_h32/pixels.npy`, "--out", out);
    expect(r).toEqual({ code: 0, stdout: "", stderr: "" });
    expect(maxRel(out, `${PEERS}/hf_gelu_h32/image_features.npy`)).toBeLessThanOrEqual(1e-5);
  });

  test("bare open_clip weights: a one-line note names what was assumed and the options that change it", async () => {
    const out = join(tmp, "bare.npy");
    const r = await run("embed-image", "--model", `${PEERS}/oc_vit_gelu/model.safetensors`, "--heads", "vision=2,text=1",
      "--pixels", `${PEERS}/oc_vit_gelu/pixels.npy`, "--out", out);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr.trimEnd().split("\n")).toHaveLength(1);
    expect(r.stderr).toMatch(/^note: ".*model\.safetensors" comes with no config .*assumed OpenAI's: activation QuickGELU \(vision\), QuickGELU \(text\); layer-norm eps 1e-5.*--arch NAME, --activation gelu/);
    expect(maxRel(out, `${PEERS}/oc_vit_gelu/image_features.npy`)).toBeGreaterThan(1e-3); // and indeed wrong
  });

  test("--activation gelu --heads: the peer's features, no note about them", async () => {
    const out = join(tmp, "act.npy");
    const r = await run("embed-image", "--model", `${PEERS}/oc_vit_gelu/model.safetensors`, "--activation", "gelu",
      "--heads", "vision=2,text=1", "--pixels", `${PEERS}/oc_vit_gelu/pixels.npy`, "--out", out);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/assumed OpenAI's: layer-norm eps 1e-5 \(vision, text\)\. /); // only what nothing said
    expect(r.stderr).not.toMatch(/QuickGELU|attention heads/);
    expect(maxRel(out, `${PEERS}/oc_vit_gelu/image_features.npy`)).toBeLessThanOrEqual(1e-5);
  });

  test("an open_clip config.json beside the weights is read", async () => {
    const dir = mkdtempSync(join(tmp, "oc-"));
    copyFileSync(`${PEERS}/oc_rn_gelu/model.safetensors`, join(dir, "weights.safetensors"));
    copyFileSync(`${PEERS}/oc_rn_gelu/model_cfg.json`, join(dir, "config.json"));
    const out = join(tmp, "rn.npy");
    const r = await run("embed-text", "--model", join(dir, "weights.safetensors"), "--tokens", `${PEERS}/oc_rn_gelu/tokens.npy`, "--out", out);
    expect(r).toEqual({ code: 0, stdout: "", stderr: "" });
    expect(maxRel(out, `${PEERS}/oc_rn_gelu/text_features.npy`)).toBeLessThanOrEqual(1e-5);
  });

  test("one-line errors: unknown --arch, a bad --activation, an unsupported config, a bad --heads", async () => {
    const cases: [RegExp, string[]][] = [
      [/unknown architecture "ViT-Q-99"/, ["--arch", "ViT-Q-99"]],
      [/--activation must be one of quickgelu, gelu, got "relu"/, ["--activation", "relu"]],
      [/--activation takes a value, or vision=VALUE,text=VALUE/, ["--activation", "audio=gelu"]],
      [/--heads must be an integer/, ["--heads", "x"]],
      [/--threads must be an integer in \[1, 256\], got "300"/, ["--threads", "300"]],
      [/open_clip convnext_base: vision_cfg.timm_model_name = "convnext_base" is not supported/, ["--arch", "convnext_base"]],
    ];
    for (const [pattern, flags] of cases) {
      const r = await run("embed-image", "--model", `${PEERS}/oc_vit_gelu/model.safetensors`, ...flags, "--pixels", `${PEERS}/oc_vit_gelu/pixels.npy`);
      expect(r.code, r.stderr).not.toBe(0);
      expect(r.stderr.trimEnd().split("\n"), r.stderr).toHaveLength(1);
      expect(r.stderr).toMatch(pattern);
    }
    const refused = await run("embed-image", "--model", `${PEERS}/hf_gelu_new`, "--pixels", `${PEERS}/hf_gelu_h32/pixels.npy`);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/^clip-ts embed-image: --model ".*hf_gelu_new": config\.json: text_config\.hidden_act: activation "gelu_new" is not supported/);
  });

  test("--arch of a full-size architecture checks its shapes against the weights: a clear error, not a wrong model", async () => {
    const r = await run("embed-image", "--model", `${PEERS}/oc_vit_gelu/model.safetensors`, "--arch", "ViT-H-14", "--pixels", `${PEERS}/oc_vit_gelu/pixels.npy`);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/--model .*: .*(head width 80|not a multiple)/);
  });

  test("summary names each tower's activation and heads", async () => {
    const r = await run("summary", "--model", `${PEERS}/hf_gelu_h32`);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/VisionTransformer 32px, patch 8, width 64, 2 layers, 2 heads, GELU; text: .*1 head, GELU/);
    expect(r.stdout).toMatch(/\(gelu\): GELU\(approximate='none'\)/);
  });
});
