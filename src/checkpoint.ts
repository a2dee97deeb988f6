// What a model path names, in Node: a weights file, a sharded checkpoint's index, or a folder as Hugging Face's
// save_pretrained or open_clip's push_to_hub writes it; with the config and the tokenizer files found with it.
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { checkPreprocessCfg, CONFIG_NAMES, ConfigError, VOCAB_NAMES, WEIGHTS_NAMES } from "./config.js";

export interface CheckpointFiles {
  /** The weights: one file, or the shards of an index. */
  weights: string[];
  /** The .index.json of a sharded checkpoint and, per shard, the keys it must hold. */
  index?: { path: string; keysByFile: Map<string, string[]> };
  /** The first config file found with the weights. */
  config?: { path: string; json: unknown };
  /** A tokenizer file, or the folder when it holds vocab.json with merges.txt. */
  vocab?: string;
}

/** The files behind a model path (a weights file, an .index.json, or a folder). */
export function findCheckpoint(path: string): CheckpointFiles {
  let stat;
  try {
    stat = statSync(path);
  } catch {
    throw new ConfigError(`no such file or folder "${path}"`);
  }
  const dir = stat.isDirectory() ? path : dirname(path);
  let weightsPath = path;
  if (stat.isDirectory()) {
    const found = WEIGHTS_NAMES.find((n) => existsSync(join(dir, n)));
    if (found) weightsPath = join(dir, found);
    else {
      const candidates = readdirSync(dir).filter((n) => /\.(safetensors|pt|pth|bin)$/.test(n));
      if (candidates.length !== 1) {
        throw new ConfigError(`folder "${path}" holds ${candidates.length ? `several weights files (${candidates.slice(0, 4).join(", ")})` : "no weights file"}; ` +
          `looked for ${WEIGHTS_NAMES.join(", ")}${candidates.length ? " — pass the file itself" : ""}`);
      }
      weightsPath = join(dir, candidates[0]!);
    }
  }
  const out: CheckpointFiles = { weights: [weightsPath] };
  if (weightsPath.endsWith(".index.json")) {
    out.index = readShardIndex(weightsPath);
    out.weights = [...out.index.keysByFile.keys()].map((f) => join(dir, f));
  }
  for (const name of CONFIG_NAMES) {
    const p = join(dir, name);
    if (!existsSync(p) || p === weightsPath) continue;
    out.config = { path: p, json: readJson(p, 16 << 20) };
    break;
  }
  // Hugging Face's image processor settings: only OpenAI's normalisation is what clip-ts's preprocessing computes
  const processor = join(dir, "preprocessor_config.json");
  if (existsSync(processor)) checkPreprocessCfg(readJson(processor, 1 << 20), "preprocessor_config.json");
  out.vocab = vocabIn(dir);
  return out;
}

/** The tokenizer files in a folder: a vocab file, or the folder itself for vocab.json + merges.txt. */
export function vocabIn(dir: string): string | undefined {
  for (const name of VOCAB_NAMES) {
    const p = join(dir, name);
    if (!existsSync(p)) continue;
    if (name === "vocab.json") return existsSync(join(dir, "merges.txt")) ? dir : undefined;
    return p;
  }
  return undefined;
}

function readJson(path: string, maxBytes: number): unknown {
  const size = statSync(path).size;
  if (size > maxBytes) throw new ConfigError(`${basename(path)}: ${size} bytes is more than a config of ${maxBytes} bytes can be`);
  try {
    return JSON.parse(readFileSync(path, "utf8"));
  } catch (e) {
    throw new ConfigError(`${basename(path)}: not valid JSON (${(e as Error).message})`);
  }
}

/** model.safetensors.index.json / pytorch_model.bin.index.json: { weight_map: { key: shard file } }. */
export function readShardIndex(path: string): { path: string; keysByFile: Map<string, string[]> } {
  const json = readJson(path, 64 << 20) as { weight_map?: unknown };
  const map = json && typeof json === "object" ? json.weight_map : undefined;
  if (!map || typeof map !== "object" || Array.isArray(map)) throw new ConfigError(`${basename(path)}: no "weight_map" object`);
  const keysByFile = new Map<string, string[]>();
  for (const [key, file] of Object.entries(map as Record<string, unknown>)) {
    // a shard is a file beside the index: nothing else (no folders, no "..") may be read through it
    if (typeof file !== "string" || file === "" || /[\\/]/.test(file) || file === "." || file === "..") {
      throw new ConfigError(`${basename(path)}: weight_map["${key}"] = ${JSON.stringify(file)} is not a file name beside the index`);
    }
    let keys = keysByFile.get(file);
    if (!keys) keysByFile.set(file, (keys = []));
    keys.push(key);
  }
  if (keysByFile.size === 0) throw new ConfigError(`${basename(path)}: weight_map is empty`);
  for (const file of keysByFile.keys()) {
    if (!existsSync(join(dirname(path), file))) throw new ConfigError(`${basename(path)}: shard "${file}" is missing`);
  }
  return { path, keysByFile };
}
