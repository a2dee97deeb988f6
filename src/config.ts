// What a state dict cannot tell: each tower's MLP activation, its number of attention heads and its layer-norm eps.
// clip/model.py's build_model hard-codes them (QuickGELU, 64-wide heads, eps 1e-5); open_clip and Hugging Face
// write them in a config, and a GELU model run with QuickGELU gives wrong numbers without any error. So each value
// is taken from where it is written, and one that nothing wrote is recorded as assumed, never taken silently.

/** The activation inside the MLPs: x·sigmoid(1.702x) (OpenAI), or exact GELU (torch.nn.GELU(), the erf form). */
export type MlpActivation = "quickgelu" | "gelu";
export const MLP_ACTIVATIONS: readonly MlpActivation[] = ["quickgelu", "gelu"];

/** A config file that cannot be used: unsupported, inconsistent or malformed. */
export class ConfigError extends Error {
  override name = "ConfigError";
}

/** Values for one tower; any may be absent. heads and headWidth are alternatives (heads wins). */
export interface TowerHints {
  activation?: MlpActivation;
  heads?: number;
  headWidth?: number;
  eps?: number;
  /** The text is pooled at the first position of this token id (Hugging Face), not at the highest id (argmax). */
  eosTokenId?: number;
}

/** What one source says, and its name for messages ("config.json", "--activation", "open_clip ViT-B-32"). */
export interface Hints {
  source: string;
  vision?: TowerHints;
  text?: TowerHints;
}

/** The settings a model is built with, each with where it came from. */
export interface TowerSettings {
  activation: MlpActivation;
  heads: number;
  eps: number;
  /** null: pooled at argmax (the reference's text.argmax(dim=-1)). */
  eosTokenId: number | null;
  /** Per field: the source that gave it, or "assumed" (OpenAI's build_model default). */
  sources: { activation: string; heads: string; eps: string };
}

export const ASSUMED = "assumed";

/** The vision tower, as clip/model.py's CLIP picks it: a tuple of layers is a ModifiedResNet, a number a ViT. */
export type VisionConfig =
  | {
    kind: "resnet";
    layers: [number, number, number, number]; // Bottlenecks per stage
    width: number; // the stem's; the attention pool has width·32 features
    heads: number; // the attention pool's
  }
  | {
    kind: "vit";
    layers: number;
    width: number;
    patchSize: number;
    heads: number;
    activation: MlpActivation;
    eps: number;
    mlpWidth: number; // c_fc's outputs: 4·width in OpenAI's models
  };

/** The arguments of clip/model.py's CLIP, from the state dict, and what it cannot tell (each with its source). */
export interface CLIPConfig {
  embedDim: number;
  // vision
  imageResolution: number;
  vision: VisionConfig;
  // text
  contextLength: number;
  vocabSize: number;
  transformerWidth: number;
  transformerHeads: number;
  transformerLayers: number;
  transformerMlpWidth: number;
  /** The text is pooled at the first position of this id (Hugging Face's eos_token_id); null: at argmax, as the reference. */
  textPoolTokenId: number | null;
  textActivation: MlpActivation;
  textEps: number;
  /**
   * The source that gave each setting the state dict cannot tell, or "assumed" (OpenAI's build_model). A ResNet
   * has no vision activation or eps to tell (its convolutions use ReLU and batch norm), so those two are absent.
   */
  sources: Record<"visionHeads" | "transformerHeads" | "textActivation" | "textEps", string> &
    Partial<Record<"visionActivation" | "visionEps", string>>;
}

/** The settings nothing said and that the model uses, as "name value" phrases; empty when every one was given. */
export function assumedSettings(c: CLIPConfig): string[] {
  const out: string[] = [];
  const v = c.vision;
  const acts = [
    ...(v.kind === "vit" && c.sources.visionActivation === ASSUMED ? [["vision", v.activation]] : []),
    ...(c.sources.textActivation === ASSUMED ? [["text", c.textActivation]] : []),
  ];
  if (acts.length) out.push(`activation ${acts.map(([t, a]) => `${a === "quickgelu" ? "QuickGELU" : "GELU"} (${t})`).join(", ")}`);
  const heads = [
    ...(c.sources.visionHeads === ASSUMED ? [`${v.heads} (vision)`] : []),
    ...(c.sources.transformerHeads === ASSUMED ? [`${c.transformerHeads} (text)`] : []),
  ];
  if (heads.length) out.push(`64-wide attention heads: ${heads.join(", ")}`);
  const eps = [...(c.sources.visionEps === ASSUMED ? ["vision"] : []), ...(c.sources.textEps === ASSUMED ? ["text"] : [])];
  if (eps.length) out.push(`layer-norm eps 1e-5 (${eps.join(", ")})`);
  return out;
}

/**
 * Each tower's settings from the first source that says (sources in priority order: options, then the file's
 * config, then the architecture's name, then what the format implies), else OpenAI's defaults, marked assumed.
 */
export function resolveTower(tower: "vision" | "text", width: number, headWidthDefault: number, sources: readonly Hints[]): TowerSettings {
  const pick = <K extends keyof TowerHints>(key: K): [TowerHints[K], string] | undefined => {
    for (const s of sources) {
      const v = s[tower]?.[key];
      if (v !== undefined) return [v, s.source];
    }
    return undefined;
  };
  const act = pick("activation");
  const eps = pick("eps");
  const heads = pick("heads");
  const headWidth = pick("headWidth");
  const eos = pick("eosTokenId");
  let h: number, hSource: string;
  // a head count from a source of higher priority than a head width wins, and vice versa
  const rank = (p: [unknown, string] | undefined) => (p ? sources.findIndex((s) => s.source === p[1]) : Infinity);
  if (heads && rank(heads) <= rank(headWidth)) {
    [h, hSource] = [heads[0]!, heads[1]];
  } else if (headWidth) {
    const hw = headWidth[0]!;
    checkPositiveInteger(hw, `${tower} head width`, headWidth[1]);
    if (width % hw !== 0) throw new ConfigError(`${headWidth[1]}: the ${tower} width ${width} is not a multiple of the head width ${hw}`);
    [h, hSource] = [width / hw, headWidth[1]];
  } else {
    [h, hSource] = [Math.floor(width / headWidthDefault), ASSUMED];
  }
  checkHeads(tower, width, h, hSource);
  if (eps) checkEps(eps[0]!, `${tower} eps`, eps[1]);
  return {
    activation: act ? act[0]! : "quickgelu",
    heads: h,
    eps: eps ? eps[0]! : 1e-5,
    eosTokenId: eos ? eos[0]! : null,
    sources: { activation: act ? act[1] : ASSUMED, heads: hSource, eps: eps ? eps[1] : ASSUMED },
  };
}

/** The reference's build_model raises for 0 heads; a count that does not divide the width has no head size. */
export function checkHeads(tower: string, width: number, heads: number, source: string): void {
  const from = source === ASSUMED ? `width / 64` : source;
  if (!Number.isInteger(heads) || heads < 1) {
    throw new ConfigError(`${tower} tower: ${heads} attention heads (${from}) for width ${width}; a model needs at least one head` +
      (source === ASSUMED ? " — give the head count (options heads / --heads, or the model's config)" : ""));
  }
  if (width % heads !== 0) throw new ConfigError(`${tower} tower: ${heads} attention heads (${from}) do not divide the width ${width}`);
}

function checkPositiveInteger(v: unknown, what: string, source: string): void {
  if (typeof v !== "number" || !Number.isInteger(v) || v < 1) throw new ConfigError(`${source}: ${what} must be a positive integer, got ${JSON.stringify(v)}`);
}

function checkEps(v: unknown, what: string, source: string): void {
  if (typeof v !== "number" || !Number.isFinite(v) || v <= 0) throw new ConfigError(`${source}: ${what} must be a positive number, got ${JSON.stringify(v)}`);
}

/** An activation name as configs and users spell it. */
export function parseActivation(name: unknown, where: string): MlpActivation {
  switch (name) {
    case "quickgelu": case "quick_gelu": case "QuickGELU": return "quickgelu";
    case "gelu": case "GELU": return "gelu";
  }
  throw new ConfigError(`${where}: activation ${JSON.stringify(name)} is not supported (clip-ts computes quickgelu and gelu, the exact erf form)`);
}

/** Weights files of a folder, in the order they are looked for. */
export const WEIGHTS_NAMES = [
  "open_clip_model.safetensors", "open_clip_pytorch_model.bin",
  "model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json",
];
/** Config files read with the weights (open_clip's first: a folder may hold both). */
export const CONFIG_NAMES = ["open_clip_config.json", "config.json"];
/** Tokenizer files looked for with the weights, in this order; vocab.json goes with merges.txt. */
export const VOCAB_NAMES = ["bpe_simple_vocab_16e6.txt.gz", "vocab.txt.gz", "tokenizer.json", "vocab.json"];

// ---- Hugging Face transformers: config.json of CLIPModel (text_config, vision_config)

type Json = Record<string, unknown>;
const isObject = (v: unknown): v is Json => typeof v === "object" && v !== null && !Array.isArray(v);

/** transformers' CLIPTextConfig / CLIPVisionConfig defaults, which apply where config.json leaves a field out. */
const HF_DEFAULTS = {
  text: { hidden_act: "quick_gelu", num_attention_heads: 8, layer_norm_eps: 1e-5 },
  vision: { hidden_act: "quick_gelu", num_attention_heads: 12, layer_norm_eps: 1e-5 },
} as const;

export function isHfClipConfig(json: unknown): boolean {
  return isObject(json) && (isObject(json.text_config) || isObject(json.vision_config) || json.model_type === "clip");
}

/** Hints from a Hugging Face CLIPModel config.json (transformers' defaults for absent fields). */
export function hintsFromHfConfig(json: unknown, source = "config.json"): Hints {
  if (!isObject(json)) throw new ConfigError(`${source}: not a JSON object`);
  const type = json.model_type;
  if (type !== undefined && type !== "clip") {
    throw new ConfigError(`${source}: model_type "${String(type)}" is not a CLIP model (clip-ts reads model_type "clip": CLIPModel)`);
  }
  const tower = (name: "text" | "vision"): TowerHints => {
    const c = json[`${name}_config`] ?? {};
    if (!isObject(c)) throw new ConfigError(`${source}: ${name}_config is not an object`);
    const d = HF_DEFAULTS[name];
    const act = c.hidden_act ?? d.hidden_act;
    const heads = c.num_attention_heads ?? d.num_attention_heads;
    const eps = c.layer_norm_eps ?? d.layer_norm_eps;
    checkPositiveInteger(heads, `${name}_config.num_attention_heads`, source);
    checkEps(eps, `${name}_config.layer_norm_eps`, source);
    return { activation: parseActivation(act, `${source}: ${name}_config.hidden_act`), heads: heads as number, eps: eps as number };
  };
  const text = json.text_config;
  const eos = isObject(text) ? text.eos_token_id : undefined;
  if (eos !== undefined && (typeof eos !== "number" || !Number.isInteger(eos) || eos < 0)) {
    throw new ConfigError(`${source}: text_config.eos_token_id must be a token id, got ${JSON.stringify(eos)}`);
  }
  // transformers pools at argmax(input_ids) when eos_token_id is 2 (configs written before 4.33), else at the
  // first eos_token_id
  return { source, vision: tower("vision"), text: { ...tower("text"), eosTokenId: eos === 2 ? undefined : eos as number | undefined } };
}

// ---- open_clip: model configs (model_configs/*.json, open_clip_config.json's "model_cfg")

/** The parts of an open_clip model config that change the computation. */
export interface OpenClipModelCfg {
  embed_dim?: number;
  quick_gelu?: boolean;
  vision_cfg?: Json;
  text_cfg?: Json;
  [key: string]: unknown;
}

/** Settings clip-ts computes as open_clip's defaults do; anything else is refused, since it would be ignored. */
const OPEN_CLIP_SUPPORTED: Record<"vision_cfg" | "text_cfg" | "top", Record<string, (v: unknown) => boolean>> = {
  top: {
    embed_dim: () => true, quick_gelu: () => true, vision_cfg: () => true, text_cfg: () => true,
    custom_text: () => true, cast_dtype: () => true, init_logit_scale: () => true, init_logit_bias: (v) => v == null,
  },
  vision_cfg: {
    layers: () => true, width: () => true, head_width: () => true, mlp_ratio: () => true, patch_size: () => true,
    image_size: (v) => typeof v === "number", ls_init_value: (v) => v == null, patch_dropout: () => true,
    attentional_pool: (v) => !v, no_ln_pre: (v) => !v, final_ln_after_pool: (v) => !v, pool_type: (v) => v == null || v === "tok",
    output_tokens: () => true, timm_model_name: (v) => v == null, input_patchnorm: (v) => !v, global_average_pool: (v) => !v,
    norm_kwargs: (v) => isObject(v) && Object.keys(v).every((k) => k === "eps"), act_kwargs: (v) => v == null,
    proj_bias: (v) => !v, proj_type: (v) => v == null || v === "linear", attn_pooler_heads: () => true, n_queries: () => true,
    embed_cls: (v) => !v,
  },
  text_cfg: {
    context_length: () => true, vocab_size: () => true, width: () => true, heads: () => true, layers: () => true,
    mlp_ratio: () => true, ls_init_value: (v) => v == null, hf_model_name: (v) => v == null, hf_tokenizer_name: (v) => v == null,
    embed_cls: (v) => !v, pad_id: () => true, pool_type: (v) => v == null || v === "argmax", proj_bias: (v) => !v,
    proj_type: (v) => v == null || v === "linear", no_causal_mask: (v) => !v, output_tokens: () => true,
    norm_kwargs: (v) => isObject(v) && Object.keys(v).every((k) => k === "eps"), act_kwargs: (v) => v == null,
    final_ln_after_pool: (v) => !v, attn_mask: (v) => v == null || v === true, tokenizer_kwargs: (v) => v == null,
  },
};

/** Hints from an open_clip model config; settings clip-ts does not compute are refused by name. */
export function hintsFromOpenClipConfig(cfg: unknown, source: string, resnet?: boolean): Hints {
  if (!isObject(cfg)) throw new ConfigError(`${source}: the model config is not a JSON object`);
  const check = (obj: Json, table: Record<string, (v: unknown) => boolean>, where: string) => {
    for (const [k, v] of Object.entries(obj)) {
      const ok = table[k];
      if (!ok) throw new ConfigError(`${source}: ${where}${k} is not a setting clip-ts knows; refusing rather than ignoring it`);
      if (!ok(v)) throw new ConfigError(`${source}: ${where}${k} = ${JSON.stringify(v)} is not supported (clip-ts computes the plain CLIP of model.py: ViT or ModifiedResNet with a text transformer)`);
    }
  };
  check(cfg, OPEN_CLIP_SUPPORTED.top, "");
  const vision = cfg.vision_cfg ?? {}, text = cfg.text_cfg ?? {};
  if (!isObject(vision) || !isObject(text)) throw new ConfigError(`${source}: vision_cfg and text_cfg must be objects`);
  check(vision, OPEN_CLIP_SUPPORTED.vision_cfg, "vision_cfg.");
  check(text, OPEN_CLIP_SUPPORTED.text_cfg, "text_cfg.");
  const activation: MlpActivation = cfg.quick_gelu ? "quickgelu" : "gelu"; // open_clip's default is nn.GELU
  const eps = (c: Json) => (isObject(c.norm_kwargs) && typeof c.norm_kwargs.eps === "number" ? c.norm_kwargs.eps : 1e-5);
  const visionResnet = resnet ?? Array.isArray(vision.layers);
  const visionWidth = vision.width ?? (visionResnet ? 64 : 768);
  const headWidth = vision.head_width ?? 64;
  checkPositiveInteger(visionWidth, "vision_cfg.width", source);
  checkPositiveInteger(headWidth, "vision_cfg.head_width", source);
  return {
    source,
    // the ResNet's attention pool has width·32 features in heads of head_width
    vision: { activation, headWidth: visionResnet ? undefined : (headWidth as number), heads: visionResnet ? ((visionWidth as number) * 32) / (headWidth as number) : undefined, eps: eps(vision) },
    text: { activation, heads: (text.heads ?? 8) as number, eps: eps(text) },
  };
}

/** open_clip_config.json as open_clip's push_to_hub writes it: { model_cfg, preprocess_cfg }. */
export function isOpenClipConfigFile(json: unknown): json is { model_cfg: Json; preprocess_cfg?: Json } {
  return isObject(json) && isObject(json.model_cfg);
}

/** The image preprocessing a config asks for; only what clip-ts computes (OpenAI's _transform) is accepted. */
export function checkPreprocessCfg(cfg: unknown, source: string): void {
  if (!isObject(cfg)) return;
  const same = (a: unknown, b: readonly number[]) => Array.isArray(a) && a.length === 3 && a.every((v, i) => Math.abs((v as number) - b[i]!) < 1e-7);
  const mean = cfg.mean ?? cfg.image_mean, std = cfg.std ?? cfg.image_std;
  if (mean !== undefined && !same(mean, [0.48145466, 0.4578275, 0.40821073])) {
    throw new ConfigError(`${source}: image mean ${JSON.stringify(mean)} differs from OpenAI's, which clip-ts's preprocessing uses`);
  }
  if (std !== undefined && !same(std, [0.26862954, 0.26130258, 0.27577711])) {
    throw new ConfigError(`${source}: image std ${JSON.stringify(std)} differs from OpenAI's, which clip-ts's preprocessing uses`);
  }
  for (const [k, ok] of [["interpolation", "bicubic"], ["resize_mode", "shortest"]] as const) {
    if (cfg[k] !== undefined && cfg[k] !== ok) throw new ConfigError(`${source}: ${k} "${String(cfg[k])}" is not supported (clip-ts resizes as OpenAI's _transform: ${ok})`);
  }
}

// ---- every source in priority order

/** A config object as found: HF config.json, open_clip_config.json, or an open_clip model config. */
export interface FileConfig {
  hints: Hints;
}

/** Reads whichever kind of config `json` is; undefined for JSON that is none of them. */
export function readConfig(json: unknown, source: string): FileConfig | undefined {
  if (isOpenClipConfigFile(json)) {
    checkPreprocessCfg(json.preprocess_cfg, source);
    return { hints: hintsFromOpenClipConfig(json.model_cfg, source) };
  }
  if (isObject(json) && (isObject(json.vision_cfg) || isObject(json.text_cfg))) return { hints: hintsFromOpenClipConfig(json, source) };
  if (isHfClipConfig(json) || (isObject(json) && "model_type" in json)) {
    return { hints: hintsFromHfConfig(json, source) };
  }
  return undefined;
}

/** What a caller may say about the hyper-parameters the weights cannot tell. */
export interface HyperParamOptions {
  /** An open_clip architecture ("ViT-B-32", "ViT-B-32-quickgelu", "RN50", "ViT-H-14", …): its config's values. */
  arch?: string;
  /** A config: the object of a Hugging Face config.json, an open_clip_config.json or an open_clip model config. */
  config?: unknown;
  /** The MLP activation, for both towers or per tower; overrides every other source. */
  activation?: MlpActivation | { vision?: MlpActivation; text?: MlpActivation };
  /** Attention heads, for both towers or per tower (the ResNet's attention pool is the vision tower's). */
  heads?: number | { vision?: number; text?: number };
}

/**
 * Every source of the settings, first wins: explicit activation/heads, the architecture named, a config passed in,
 * the file's own config, then what the format implies (`formatHints`).
 */
export function collectHints(
  options: HyperParamOptions, archConfigs: Readonly<Record<string, OpenClipModelCfg>>,
  fileConfig?: { json: unknown; source: string }, formatHints?: Hints, optionSource = "options",
): Hints[] {
  const hints: Hints[] = [];
  const perTower = <T>(v: T | { vision?: T; text?: T } | undefined): { vision?: T; text?: T } =>
    v === undefined ? {} : typeof v === "object" && v !== null ? v as { vision?: T; text?: T } : { vision: v as T, text: v as T };
  const act = perTower(options.activation), heads = perTower(options.heads);
  for (const t of ["vision", "text"] as const) {
    if (act[t] !== undefined) act[t] = parseActivation(act[t], `${optionSource} activation`);
    if (heads[t] !== undefined) checkPositiveInteger(heads[t], `${t} heads`, `${optionSource} heads`);
  }
  if (options.activation !== undefined || options.heads !== undefined) {
    hints.push({ source: optionSource, vision: { activation: act.vision, heads: heads.vision }, text: { activation: act.text, heads: heads.text } });
  }
  if (options.arch !== undefined) {
    const cfg = archConfigs[options.arch];
    if (!cfg) {
      const near = Object.keys(archConfigs).filter((n) => n.toLowerCase().includes(options.arch!.toLowerCase().replace(/[/@]/g, "-").split("-").slice(0, 2).join("-"))).slice(0, 8);
      throw new ConfigError(`unknown architecture "${options.arch}" (open_clip's names, e.g. ${(near.length ? near : ["ViT-B-32", "ViT-B-32-quickgelu", "RN50", "ViT-L-14", "ViT-H-14"]).join(", ")})`);
    }
    hints.push(hintsFromOpenClipConfig(cfg, `open_clip ${options.arch}`));
  }
  for (const [json, source] of [[options.config, `${optionSource} config`], [fileConfig?.json, fileConfig?.source]] as const) {
    if (json === undefined) continue;
    const read = readConfig(json, source!);
    if (!read) {
      if (json === options.config) throw new ConfigError(`${source}: neither a Hugging Face CLIP config nor an open_clip config`);
      continue;
    }
    hints.push(read.hints);
  }
  if (formatHints) hints.push(formatHints);
  return hints;
}

/** OpenAI's TorchScript archives (clip.load's files) are OpenAI's models: QuickGELU, 64-wide heads, eps 1e-5. */
export const OPENAI_HINTS: Hints = {
  source: "OpenAI's model (TorchScript archive)",
  vision: { activation: "quickgelu", headWidth: 64, eps: 1e-5 },
  text: { activation: "quickgelu", headWidth: 64, eps: 1e-5 },
};
