// The public API of clip-ts.
export { loadModel, createBackend, readBytes, type LoadOptions, type BackendName } from "./clip.js";
export { CLIP, buildModel, inferConfig, normalize, StateDictError, type CLIPConfig, type ForwardHook, type TokenTensor } from "./model.js";
export { loadStateDict } from "./weights/index.js";
export { WeightsError } from "./weights/errors.js";
export { readNpy, readNpyFloat32, readNpyTokens, writeNpy, NpyError } from "./npy.js";
export type { Tensor, StateDict } from "./tensor.js";
export type { Backend } from "./backend/backend.js";
