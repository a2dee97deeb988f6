// The public API of clip-ts.
export {
  load, loadModel, createBackend, readBytes, embeddedModelPaths, openaiVocabPath, readCheckpoint, checkpointFromBytes,
  modelFromCheckpoint, localModelPath, type Checkpoint,
  type LoadOptions, type ClipLoadOptions, type LoadedClip, type BackendName,
} from "./clip.js";
export { CLIP, buildModel, inferConfig, normalize, type TokenTensor, type Towers } from "./model.js";
export { StateDictError, type ForwardHook } from "./nn.js";
export { ConfigError, assumedSettings, type CLIPConfig, type VisionConfig, type MlpActivation, type HyperParamOptions, type Hints } from "./config.js";
export { OPEN_CLIP_CONFIGS } from "./open_clip_configs.js";
export { MODELS, availableModels, HubError, type ModelEntry } from "./hub_models.js";
export { loadTokenizer, SimpleTokenizer, TokenizerFormatError, ContextLengthError, type TokenizerSource } from "./simple_tokenizer.js";
export { preprocess, decodeImage, ImageError, type RawImage } from "./image/index.js";
export { zeroShot, IMAGENET_TEMPLATES, IMAGENET_TEMPLATES_7 } from "./zero_shot.js";
export { loadStateDict, loadStateDictWithFormat, writeSafetensors, type WeightsFormat } from "./weights/index.js";
export { WeightsError } from "./weights/errors.js";
export { readNpy, readNpyFloat32, readNpyTokens, writeNpy, NpyError } from "./npy.js";
export type { Tensor, StateDict } from "./tensor.js";
export type { Backend } from "./backend/backend.js";
export {
  openIndex, indexFiles, modelSha256, createDecoder, type PhotoIndex, type OpenIndexOptions, type IndexQuery, type QueryModel,
  type SearchHit, type IndexOptions, type IndexReport, type IndexProblem, type IndexModel, type Decoder, type Decoded,
} from "./collection/index.js";
export { mergeCollections, MergeError, type MergeOptions, type MergeResult } from "./collection/merge.js";
export { parseShard, inShard, type Shard } from "./collection/shard.js";
export { listTar, readTarEntry, TarError, type TarEntry, type TarLimits } from "./collection/tar.js";
